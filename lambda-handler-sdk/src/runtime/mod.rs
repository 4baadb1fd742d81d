//! The per-attempt runtime that the user-facing contexts are built on. Nothing here depends on
//! `context`: the contexts call in, never the other way.
//!
//! * [`attempt`]: the state of one attempt (replay cursor, completions, suspension tracking,
//!   the signal that ends it early).
//! * [`abort`]: why an attempt ends early, and the signal that carries it.
//! * [`progress`]: suspension tracking (what the handler waits on, what makes progress).
//! * [`replay`]: the replay cursor (recorded entries, step failures, numbering).
//! * [`scope`]: operation numbering by scope, and the check of creation order on replay.
//! * [`journal`]: recording entries, waiting for completions, divergence failures.
//! * [`divergence`]: the failure of a replay that diverged from the journal.
//! * [`ops`]: what the outbox carries, and the dispatcher that starts children.
//! * [`outbox`]: the worker that records ops in program order and dispatches them.
//! * [`idle`]: whether the handler future is parked (the suspension watcher's input).
//! * [`keyed`]: a keyed attempt's object and state view.
//! * [`faults`]: failures a test runner injects into steps.

pub(crate) mod abort;
pub(crate) mod attempt;
pub(crate) mod divergence;
pub(crate) mod faults;
pub(crate) mod idle;
pub(crate) mod journal;
pub(crate) mod keyed;
pub(crate) mod ops;
pub(crate) mod outbox;
pub(crate) mod progress;
pub(crate) mod replay;
pub(crate) mod scope;
