//! The items of virtual objects and workflows that handlers and the orchestrator both touch:
//! state (`s#<name>`, read here, written by the orchestrator when an invocation finishes) and
//! durable promises (`p#<name>`: a result, written once, and the journal entries waiting on it).

use crate::ids::{InvocationId, ObjectKey, ServiceName};
use crate::journal::StepResult;

/// The largest state value or promise result, in bytes of JSON: both live in one DynamoDB item
/// (400 KB at most), with room for the attributes around them.
pub const MAX_VALUE_BYTES: usize = 300 * 1024;

/// State up to this size (in bytes of JSON) is pushed with the invocation; larger state is read
/// key by key when the handler asks.
pub const EAGER_STATE_BYTES: usize = 64 * 1024;

/// Longest state key or promise name, in bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// One object or workflow instance: a service and a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    pub service: ServiceName,
    pub key: ObjectKey,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.service, self.key)
    }
}

/// Why a state key or promise name was refused.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("a {what} must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("a {what} is at most {MAX_NAME_BYTES} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("a {what} must not contain control characters"));
    }
    Ok(())
}

/// How completing a promise went.
#[derive(Debug, Clone, PartialEq)]
pub enum PromiseCompletion {
    /// This completion took; these journal entries wait for it.
    Completed { waiters: Vec<Waiter> },
    /// The promise had a result already (kept), completed by `by`; its waiters are listed so
    /// that a retried completion can make sure they were told.
    AlreadyCompleted {
        result: StepResult,
        by: String,
        waiters: Vec<Waiter>,
    },
}

/// A journal entry waiting for a promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub invocation: InvocationId,
    pub index: u32,
}

impl Waiter {
    /// The waiter as stored in a promise's waiter set: `<invocation>:<entry>`.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.invocation, self.index)
    }

    /// Reads a waiter written by [`Waiter::encode`].
    pub fn decode(text: &str) -> Option<Self> {
        let (id, index) = text.split_once(':')?;
        Some(Self {
            invocation: InvocationId::parse(id).ok()?,
            index: index.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_round_trip() {
        let w = Waiter {
            invocation: InvocationId::random(&crate::ServiceName::new("s").unwrap()),
            index: 7,
        };
        assert_eq!(Waiter::decode(&w.encode()), Some(w));
        assert_eq!(Waiter::decode("nope"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("state key", "count").is_ok());
        assert!(check_name("state key", "").is_err());
        assert!(check_name("state key", &"x".repeat(201)).is_err());
        assert!(check_name("state key", "a\nb").is_err());
    }
}
