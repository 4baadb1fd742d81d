//! Failures a test runner injects into steps, so that a unit test can exercise a handler's
//! retry and compensation paths without a flaky dependency. Production attempts have none.

use crate::HandlerError;
use durable_protocol::InvocationId;

/// Decides, before a step's closure runs, whether this run of it fails instead.
pub trait StepFaults: Send + Sync {
    /// The error step `step` of `invocation` fails with on its `attempt`-th run (1 the first
    /// time), instead of running its closure; `None` runs the closure.
    fn step_fault(
        &self,
        invocation: &InvocationId,
        step: &str,
        attempt: u32,
    ) -> Option<HandlerError>;
}
