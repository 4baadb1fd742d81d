//! Control events: what the orchestrator receives besides HTTP requests. The orchestrator sends
//! most of them to itself (hand-offs), EventBridge Scheduler sends timers and the sweep, the SDK
//! sends `dispatch` and `resume`, and the deployer sends `register`. Every sender serializes these
//! types and the orchestrator parses them, so a renamed field cannot break one side silently.

use crate::ids::InvocationId;
use serde::{Deserialize, Serialize};

/// An event for the orchestrator that is not an HTTP request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlEvent {
    /// Register (or re-register) the services a handler Lambda serves.
    Register { function_arn: String },
    /// Drive an invocation whose driver gave it up or died.
    Drive { invocation_id: InvocationId },
    /// A timer is due (sent by EventBridge Scheduler).
    Wake {
        invocation_id: InvocationId,
        entry: u32,
    },
    /// An entry was completed (e.g. an awakeable resolved): resume the invocation if it waits.
    Resume {
        invocation_id: InvocationId,
        entry: u32,
    },
    /// Re-drive running invocations whose lease expired (sent every minute by a schedule).
    /// `minutes` looks at those minutes' dated invocations again (an operator after an
    /// outage, tests), instead of the minutes after the sweep's cursor.
    Sweep {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        minutes: Option<MinuteRange>,
    },
    /// A call or send entry was recorded: create (and drive) its child.
    Dispatch {
        invocation_id: InvocationId,
        entry: u32,
    },
}

/// Minutes since the Unix epoch, both included.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct MinuteRange {
    pub from: u32,
    pub to: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_their_senders_write_them() {
        let id = InvocationId::random();
        assert_eq!(
            serde_json::to_value(ControlEvent::Dispatch {
                invocation_id: id.clone(),
                entry: 3
            })
            .unwrap(),
            serde_json::json!({"type": "dispatch", "invocation_id": id.as_str(), "entry": 3})
        );
        assert_eq!(
            serde_json::to_value(ControlEvent::Sweep { minutes: None }).unwrap(),
            serde_json::json!({"type": "sweep"})
        );
    }

    #[test]
    fn sweep_events_parse_with_and_without_minutes() {
        assert_eq!(
            serde_json::from_str::<ControlEvent>(r#"{"type":"sweep"}"#).unwrap(),
            ControlEvent::Sweep { minutes: None },
            "what the schedule sends"
        );
        assert_eq!(
            serde_json::from_str::<ControlEvent>(
                r#"{"type":"sweep","minutes":{"from":29400000,"to":29400002}}"#
            )
            .unwrap(),
            ControlEvent::Sweep {
                minutes: Some(MinuteRange {
                    from: 29_400_000,
                    to: 29_400_002
                })
            }
        );
    }

    #[test]
    fn control_events_parse() {
        let e: ControlEvent =
            serde_json::from_str(r#"{"type":"register","function_arn":"arn:x"}"#).unwrap();
        assert_eq!(
            e,
            ControlEvent::Register {
                function_arn: "arn:x".into()
            }
        );
    }
}
