//! The per-attempt runtime that the user-facing contexts are built on. Nothing here depends on
//! `context`: the contexts call in, never the other way.
//!
//! * [`attempt`]: the state of one attempt (replay cursor, completions, suspension tracking,
//!   the signal that ends it early).
//! * [`journal`]: recording entries, waiting for completions, divergence failures.
//! * [`outbox`]: calls, sends and state changes recorded in program order and dispatched.
//! * [`idle`]: whether the handler future is parked (the suspension watcher's input).
//! * [`keyed`]: a keyed attempt's object and state view.

pub(crate) mod attempt;
pub(crate) mod idle;
pub(crate) mod journal;
pub(crate) mod keyed;
pub(crate) mod outbox;
