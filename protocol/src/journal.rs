//! The journal: the recorded history of one invocation that replay is built on.

use serde::{Deserialize, Serialize};

/// A terminal failure: it is recorded, replayed as is, and never retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalFailure {
    /// An HTTP-like status the ingress answers with (4xx or 5xx; 500 by default).
    pub code: u16,
    /// A message meant for the caller.
    pub message: String,
}

impl TerminalFailure {
    /// Status code for a replay that diverged from the journal (as Restate uses).
    pub const NON_DETERMINISM: u16 = 570;

    /// A failure with a status code and message.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The recorded outcome of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepResult {
    /// The step returned this value (JSON).
    Value(serde_json::Value),
    /// The step failed terminally; replay returns the same failure.
    Failure(TerminalFailure),
}

/// What an entry records. New kinds (sleep, call, awakeable, state) extend this enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryKind {
    /// A `ctx.run` step and its result.
    Run { name: String, result: StepResult },
}

impl EntryKind {
    /// A short label ("run") for messages and the `kind` attribute.
    pub fn label(&self) -> &'static str {
        match self {
            EntryKind::Run { .. } => "run",
        }
    }

    /// The user-given name of the entry.
    pub fn name(&self) -> &str {
        match self {
            EntryKind::Run { name, .. } => name,
        }
    }

    /// Whether replaying code that asks for `other` may adopt this recorded entry:
    /// same kind and same name (results may differ, the recorded one wins).
    pub fn same_command(&self, other: &EntryKind) -> bool {
        self.label() == other.label() && self.name() == other.name()
    }
}

/// One journal entry at a fixed position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Position in the journal, from 0.
    pub index: u32,
    /// What was recorded.
    #[serde(flatten)]
    pub kind: EntryKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_json() {
        let e = JournalEntry {
            index: 3,
            kind: EntryKind::Run {
                name: "charge".into(),
                result: StepResult::Value(serde_json::json!({"ok": true})),
            },
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["kind"], "run");
        assert_eq!(json["index"], 3);
        assert_eq!(serde_json::from_value::<JournalEntry>(json).unwrap(), e);
    }

    #[test]
    fn same_command_compares_kind_and_name_only() {
        let a = EntryKind::Run {
            name: "x".into(),
            result: StepResult::Value(1.into()),
        };
        let b = EntryKind::Run {
            name: "x".into(),
            result: StepResult::Value(2.into()),
        };
        let c = EntryKind::Run {
            name: "y".into(),
            result: StepResult::Value(1.into()),
        };
        assert!(a.same_command(&b));
        assert!(!a.same_command(&c));
    }
}
