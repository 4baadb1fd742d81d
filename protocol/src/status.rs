//! The lifecycle states of an invocation, as stored and shown.

use crate::journal::TerminalFailure;

/// Where an invocation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// An exclusive handler of an object waiting in the object's inbox for the lock.
    Queued,
    /// Being driven (or waiting to be re-driven after its lease ran out, or for a retry).
    Running,
    /// Waiting for a completion (timer, awakeable); nothing runs until one arrives.
    Suspended,
    /// Stopped by an operator or after its last attempt: nothing runs, retries or is scheduled
    /// until it is resumed (an exclusive one keeps its object's lock).
    Paused,
    /// Finished with an output.
    Completed,
    /// Finished with a terminal failure.
    Failed,
    /// Finished after a cancellation reached its handler (`409 cancelled`).
    Cancelled,
    /// Stopped at once by a kill (`409 killed`): no more handler code ran.
    Killed,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 8] = [
        Status::Queued,
        Status::Running,
        Status::Suspended,
        Status::Paused,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
        Status::Killed,
    ];

    /// The name stored and shown for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Suspended => "suspended",
            Status::Paused => "paused",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Killed => "killed",
        }
    }

    /// The status named `v`, as [`Status::as_str`] writes it.
    pub fn parse(v: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == v)
    }

    /// Whether it has an outcome (nothing of it will run again unless it is restarted).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::Cancelled | Status::Killed
        )
    }

    /// The finished status of an invocation that failed with `failure`.
    pub fn of_failure(failure: &TerminalFailure) -> Self {
        if failure.is_killed() {
            Status::Killed
        } else if failure.is_cancelled() {
            Status::Cancelled
        } else {
            Status::Failed
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::parse(s).ok_or_else(|| format!("unknown invocation status {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
        assert!("paused?".parse::<Status>().is_err());
    }

    #[test]
    fn failures_of_cancellations_and_kills_have_their_own_status() {
        assert_eq!(
            Status::of_failure(&TerminalFailure::cancelled()),
            Status::Cancelled
        );
        assert_eq!(
            Status::of_failure(&TerminalFailure::killed()),
            Status::Killed
        );
        assert_eq!(
            Status::of_failure(&TerminalFailure::new(409, "no")),
            Status::Failed
        );
        assert!(!Status::Paused.is_finished());
        assert!(Status::Killed.is_finished());
    }
}
