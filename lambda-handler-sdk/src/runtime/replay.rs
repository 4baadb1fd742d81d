//! The replay cursor of an attempt: the entries earlier attempts recorded, how often the step
//! they stopped at failed, and the next journal index to hand out.

use durable_protocol::{JournalEntry, StepFailures};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

/// What this attempt replays.
pub(crate) struct Replay {
    recorded: HashMap<u32, JournalEntry>,
    step_failures: Option<StepFailures>,
    next_index: AtomicU32,
}

impl Replay {
    pub(crate) fn new(journal: Vec<JournalEntry>, step_failures: Option<StepFailures>) -> Self {
        Self {
            recorded: journal.into_iter().map(|e| (e.index, e)).collect(),
            step_failures,
            next_index: AtomicU32::new(0),
        }
    }

    /// Takes the next journal index. Called when an operation is created, in program order,
    /// so that replay assigns the same indexes.
    pub(crate) fn allocate_index(&self) -> u32 {
        self.next_index.fetch_add(1, Ordering::SeqCst)
    }

    /// The entry recorded at `index` by an earlier attempt, if any.
    pub(crate) fn recorded(&self, index: u32) -> Option<&JournalEntry> {
        self.recorded.get(&index)
    }

    /// Failed attempts so far of the step at `index`.
    pub(crate) fn previous_failures(&self, index: u32) -> u32 {
        match self.step_failures {
            Some(f) if f.index == index => f.count,
            _ => 0,
        }
    }
}
