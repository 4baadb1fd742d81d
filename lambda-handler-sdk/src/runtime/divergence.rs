//! The failure a replay gets when the code asks for another operation than the journal
//! recorded at a position.

use durable_protocol::{EntryKind, TerminalFailure};

/// The failure for replayed code that asks for `asked` where the journal recorded `recorded`.
pub(crate) fn mismatch(index: u32, recorded: &EntryKind, asked: &EntryKind) -> TerminalFailure {
    TerminalFailure::new(
        TerminalFailure::NON_DETERMINISM,
        format!(
            "non-deterministic replay at journal entry {index}: the journal recorded {} {:?}, \
             the code now asks for {} {:?}; handler code must take the same steps in the \
             same order on every replay",
            recorded.label(),
            recorded.name(),
            asked.label(),
            asked.name()
        ),
    )
}
