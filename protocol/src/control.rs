//! Control events: what the orchestrator receives besides HTTP requests. The orchestrator sends
//! most of them to itself (hand-offs), EventBridge Scheduler sends timers and the sweep, the SDK
//! sends `dispatch`, `resume`, `cancel_child`, `complete_awakeable` and `complete_promise`, and the deployer sends `register`. Every sender serializes these
//! types and the orchestrator parses them, so a renamed field cannot break one side silently.

use crate::auth::{AwakeableId, InvocationKey, Purpose, SigningKey, Tag};
use crate::ids::InvocationId;
use serde::{Deserialize, Serialize};

/// An event for the orchestrator that is not an HTTP request. Every event that names an
/// invocation carries a `proof`: a tag made with that invocation's key (see [`crate::auth`]),
/// so a handler can only make the orchestrator act on its own invocations. `register` is
/// accepted only through the orchestrator's `admin` qualifier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlEvent {
    /// Register (or re-register) the services a handler Lambda serves. `services`, when given,
    /// are the only services it may serve: the ones its IAM policy was scoped to (the CDK
    /// construct sends them), so a Lambda cannot take over a service it was not granted.
    Register {
        function_arn: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        services: Option<Vec<crate::ids::ServiceName>>,
        /// How long its services' finished invocations are kept (seconds), instead of the
        /// orchestrator's `DURABLE_RETENTION_SECS`; fixed for each invocation when it starts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retention_secs: Option<u64>,
    },
    /// Drive an invocation whose driver gave it up or died.
    Drive {
        invocation_id: InvocationId,
        proof: Tag,
    },
    /// A timer is due (sent by EventBridge Scheduler).
    Wake {
        invocation_id: InvocationId,
        entry: u32,
        proof: Tag,
    },
    /// An entry was completed (e.g. an awakeable resolved): resume the invocation if it waits.
    Resume {
        invocation_id: InvocationId,
        entry: u32,
        proof: Tag,
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
        proof: Tag,
    },
    /// A handler cancels the child of its call or send entry `entry` (cooperatively, as
    /// `POST /invocations/{child}/cancel` does); proven with the parent's key, so a handler can
    /// cancel only children of its own invocations.
    CancelChild {
        invocation_id: InvocationId,
        entry: u32,
        proof: Tag,
    },
    /// A handler completes an awakeable (of any invocation) whose id it was given: the id's
    /// tag is the proof, as it is for `POST /awakeables/{id}/resolve`.
    CompleteAwakeable {
        awakeable_id: AwakeableId,
        result: crate::StepResult,
    },
    /// A handler completes promise `name` of workflow `workflow` at `key`, as
    /// `POST /{workflow}/{key}/promises/{name}/resolve` (or `/reject`) does; sent by a step of
    /// invocation `invocation_id` and proven with its key.
    CompletePromise {
        invocation_id: InvocationId,
        proof: Tag,
        workflow: crate::ids::ServiceName,
        key: crate::ids::ObjectKey,
        name: String,
        result: crate::StepResult,
    },
}

impl ControlEvent {
    /// A `dispatch` of entry `entry`, proven with the invocation's key.
    pub fn dispatch(invocation_id: InvocationId, entry: u32, key: &InvocationKey) -> Self {
        let proof = key.tag(Purpose::Dispatch, entry);
        ControlEvent::Dispatch {
            invocation_id,
            entry,
            proof,
        }
    }

    /// A `resume` for entry `entry`, proven with the invocation's key.
    pub fn resume(invocation_id: InvocationId, entry: u32, key: &InvocationKey) -> Self {
        let proof = key.tag(Purpose::Resume, entry);
        ControlEvent::Resume {
            invocation_id,
            entry,
            proof,
        }
    }

    /// A `wake` for timer entry `entry`, proven with the invocation's key.
    pub fn wake(invocation_id: InvocationId, entry: u32, key: &InvocationKey) -> Self {
        let proof = key.tag(Purpose::Wake, entry);
        ControlEvent::Wake {
            invocation_id,
            entry,
            proof,
        }
    }

    /// A `cancel_child` of the child of entry `entry`, proven with the parent's key.
    pub fn cancel_child(invocation_id: InvocationId, entry: u32, key: &InvocationKey) -> Self {
        let proof = key.tag(Purpose::CancelChild, entry);
        ControlEvent::CancelChild {
            invocation_id,
            entry,
            proof,
        }
    }

    /// A `complete_promise` of promise `name` of `workflow` sent by `invocation_id`, proven
    /// with that invocation's key.
    pub fn complete_promise(
        invocation_id: InvocationId,
        (workflow, name): (crate::keyed::ObjectRef, String),
        result: crate::StepResult,
        key: &InvocationKey,
    ) -> Self {
        let proof = key.tag(Purpose::CompletePromise, 0);
        ControlEvent::CompletePromise {
            invocation_id,
            proof,
            workflow: workflow.service,
            key: workflow.key,
            name,
            result,
        }
    }

    /// A `drive`, proven with the invocation's key.
    pub fn drive(invocation_id: InvocationId, key: &InvocationKey) -> Self {
        let proof = key.tag(Purpose::Drive, 0);
        ControlEvent::Drive {
            invocation_id,
            proof,
        }
    }

    /// The invocation, purpose and index this event's proof must be a tag of (`None` for
    /// events that name no invocation).
    pub fn proven(&self) -> Option<(&InvocationId, Purpose, u32, &Tag)> {
        match self {
            ControlEvent::Drive {
                invocation_id,
                proof,
            } => Some((invocation_id, Purpose::Drive, 0, proof)),
            ControlEvent::Wake {
                invocation_id,
                entry,
                proof,
            } => Some((invocation_id, Purpose::Wake, *entry, proof)),
            ControlEvent::Resume {
                invocation_id,
                entry,
                proof,
            } => Some((invocation_id, Purpose::Resume, *entry, proof)),
            ControlEvent::Dispatch {
                invocation_id,
                entry,
                proof,
            } => Some((invocation_id, Purpose::Dispatch, *entry, proof)),
            ControlEvent::CancelChild {
                invocation_id,
                entry,
                proof,
            } => Some((invocation_id, Purpose::CancelChild, *entry, proof)),
            ControlEvent::CompletePromise {
                invocation_id,
                proof,
                ..
            } => Some((invocation_id, Purpose::CompletePromise, 0, proof)),
            ControlEvent::CompleteAwakeable { awakeable_id, .. } => Some((
                &awakeable_id.invocation,
                Purpose::Awakeable,
                awakeable_id.index,
                &awakeable_id.tag,
            )),
            ControlEvent::Register { .. } | ControlEvent::Sweep { .. } => None,
        }
    }

    /// Whether the event's proof verifies under `key` (events without one are not proven here).
    pub fn proof_holds(&self, key: &SigningKey) -> bool {
        match self.proven() {
            Some((id, purpose, index, proof)) => key.verify(id, purpose, index, proof),
            None => true,
        }
    }
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
        let id = InvocationId::random(&crate::ServiceName::new("svc").unwrap());
        let signing = SigningKey::random();
        let key = signing.invocation_key(&id);
        let event = ControlEvent::dispatch(id.clone(), 3, &key);
        let proof = key.tag(Purpose::Dispatch, 3).to_string();
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"type": "dispatch", "invocation_id": id.as_str(), "entry": 3, "proof": proof})
        );
        assert!(event.proof_holds(&signing));
        assert!(!event.proof_holds(&SigningKey::random()));
        let forged = ControlEvent::resume(id.clone(), 3, &SigningKey::random().invocation_key(&id));
        assert!(!forged.proof_holds(&signing));
        assert!(
            !ControlEvent::Resume {
                invocation_id: id.clone(),
                entry: 3,
                proof: key.tag(Purpose::Dispatch, 3)
            }
            .proof_holds(&signing),
            "a dispatch proof is no resume proof"
        );
        assert_eq!(
            serde_json::to_value(ControlEvent::Sweep { minutes: None }).unwrap(),
            serde_json::json!({"type": "sweep"})
        );
    }

    #[test]
    fn an_awakeable_completion_is_proven_by_the_awakeable_ids_tag() {
        let id = InvocationId::random(&crate::ServiceName::new("svc").unwrap());
        let signing = SigningKey::random();
        let awakeable = AwakeableId {
            invocation: id.clone(),
            index: 2,
            tag: signing.invocation_key(&id).tag(Purpose::Awakeable, 2),
        };
        let event = ControlEvent::CompleteAwakeable {
            awakeable_id: awakeable.clone(),
            result: crate::StepResult::Value(serde_json::json!("ok")),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "complete_awakeable");
        assert_eq!(json["awakeable_id"], awakeable.to_string());
        assert_eq!(serde_json::from_value::<ControlEvent>(json).unwrap(), event);
        assert!(event.proof_holds(&signing));
        let moved = ControlEvent::CompleteAwakeable {
            awakeable_id: AwakeableId {
                index: 3,
                ..awakeable
            },
            result: crate::StepResult::Value(serde_json::json!("ok")),
        };
        assert!(!moved.proof_holds(&signing), "the tag names its entry");
    }

    #[test]
    fn a_child_is_cancelled_only_with_its_parents_proof_for_that_entry() {
        let parent = InvocationId::random(&crate::ServiceName::new("svc").unwrap());
        let signing = SigningKey::random();
        let key = signing.invocation_key(&parent);
        let event = ControlEvent::cancel_child(parent.clone(), 4, &key);
        let proof = key.tag(Purpose::CancelChild, 4).to_string();
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"type": "cancel_child", "invocation_id": parent.as_str(), "entry": 4, "proof": proof})
        );
        assert!(event.proof_holds(&signing));
        let moved = ControlEvent::CancelChild {
            invocation_id: parent.clone(),
            entry: 5,
            proof: key.tag(Purpose::CancelChild, 4),
        };
        assert!(!moved.proof_holds(&signing), "a proof names its entry");
        let dispatch_proof = ControlEvent::CancelChild {
            invocation_id: parent,
            entry: 4,
            proof: key.tag(Purpose::Dispatch, 4),
        };
        assert!(
            !dispatch_proof.proof_holds(&signing),
            "a dispatch proof is no cancel proof"
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
                function_arn: "arn:x".into(),
                services: None,
                retention_secs: None,
            }
        );
    }
}
