//! The lifecycle states of an invocation, as stored and shown.

/// Where an invocation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// An exclusive handler of an object waiting in the object's inbox for the lock.
    Queued,
    /// Being driven (or waiting to be re-driven after its lease ran out).
    Running,
    /// Waiting for a completion (timer, awakeable); nothing runs until one arrives.
    Suspended,
    /// Finished with an output.
    Completed,
    /// Finished with a terminal failure.
    Failed,
}

impl Status {
    /// The name stored and shown for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Suspended => "suspended",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }

    /// The status named `v`, as [`Status::as_str`] writes it.
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "queued" => Some(Status::Queued),
            "running" => Some(Status::Running),
            "suspended" => Some(Status::Suspended),
            "completed" => Some(Status::Completed),
            "failed" => Some(Status::Failed),
            _ => None,
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
        for status in [
            Status::Queued,
            Status::Running,
            Status::Suspended,
            Status::Completed,
            Status::Failed,
        ] {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
        assert!("paused?".parse::<Status>().is_err());
    }
}
