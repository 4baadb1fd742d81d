//! The replay cursor of an attempt: the entries earlier attempts recorded, how often the step
//! they stopped at failed, and the numbering that hands out journal indexes.

use crate::runtime::scope::Numbering;
use durable_protocol::{JournalEntry, StepFailures};
use std::collections::HashMap;

/// What this attempt replays.
pub(crate) struct Replay {
    recorded: HashMap<u32, JournalEntry>,
    step_failures: Option<StepFailures>,
    /// Journal indexes by operation path.
    pub(crate) numbering: Numbering,
}

impl Replay {
    pub(crate) fn new(journal: Vec<JournalEntry>, step_failures: Option<StepFailures>) -> Self {
        Self {
            numbering: Numbering::new(&journal),
            recorded: journal.into_iter().map(|e| (e.index, e)).collect(),
            step_failures,
        }
    }

    /// The entry recorded at `index` by an earlier attempt, if any.
    pub(crate) fn recorded(&self, index: u32) -> Option<&JournalEntry> {
        self.recorded.get(&index)
    }

    /// Failed attempts so far of the step whose failure key (see [`Replay::step_key`]) is `key`.
    pub(crate) fn previous_failures(&self, key: u32) -> u32 {
        match self.step_failures {
            Some(f) if f.index == key => f.count,
            _ => 0,
        }
    }

    /// What the orchestrator counts a step's failures under: its journal index when that is
    /// implied by its place (the handler's own operations), else a hash of its operation path
    /// with the high bit set (a new step inside a scope may get another index next attempt).
    pub(crate) fn step_key(&self, index: u32) -> u32 {
        match self.numbering.path_of(index) {
            Some(path) if !path.is_implied_by(index) => {
                // FNV-1a over the path's segments: stable across processes and versions.
                let mut hash: u32 = 0x811c_9dc5;
                for byte in path.segments().iter().flat_map(|s| s.to_le_bytes()) {
                    hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
                }
                hash | 0x8000_0000
            }
            _ => index,
        }
    }
}
