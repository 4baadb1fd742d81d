//! Which door an event came through: the qualifier of the ARN it was invoked by. On AWS each
//! door is an alias whose invoke permission IAM grants to exactly its senders, so the door
//! says who may have sent an event, and a door accepts only its own kinds of events.

/// The alias the Function URL is attached to: only HTTP requests come through it.
pub const URL_QUALIFIER: &str = "url";
/// The alias only the deployer (and the registration custom resource) may invoke: `register`
/// and any other administrative event.
pub const ADMIN_QUALIFIER: &str = "admin";

/// A door of the orchestrator function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The Function URL's alias (`url`).
    Url,
    /// The administrative alias (`admin`).
    Admin,
    /// The function itself (unqualified, or any other qualifier): events from the orchestrator
    /// itself, its schedules and handlers, each proven by a tag (see `durable_protocol::auth`).
    Control,
}

impl Door {
    /// The door of an invocation through `invoked_arn`.
    pub fn of(invoked_arn: &str) -> Self {
        match qualifier(invoked_arn) {
            Some(URL_QUALIFIER) => Door::Url,
            Some(ADMIN_QUALIFIER) => Door::Admin,
            _ => Door::Control,
        }
    }
}

/// The qualifier of a function ARN (`arn:aws:lambda:<region>:<account>:function:<name>:<q>`).
fn qualifier(arn: &str) -> Option<&str> {
    arn.split(':').nth(7)
}

/// The ARN without its qualifier: the control door, which timers and handlers target.
pub fn unqualified(arn: &str) -> String {
    arn.split(':').take(7).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doors_are_told_by_the_qualifier() {
        let f = "arn:aws:lambda:us-east-1:000000000000:function:orch";
        assert_eq!(Door::of(f), Door::Control);
        assert_eq!(Door::of(&format!("{f}:url")), Door::Url);
        assert_eq!(Door::of(&format!("{f}:admin")), Door::Admin);
        assert_eq!(Door::of(&format!("{f}:7")), Door::Control);
        assert_eq!(Door::of(&format!("{f}:$LATEST")), Door::Control);
        assert_eq!(unqualified(&format!("{f}:url")), f);
        assert_eq!(unqualified(f), f);
    }
}
