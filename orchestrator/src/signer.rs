//! The orchestrator's side of `durable_protocol::auth`: the events it sends carry proofs made
//! with its signing key, and the events and awakeable ids it receives are checked against it.

use durable_protocol::auth::{InvocationKey, Purpose, ServiceKey, SigningKey, Tag};
use durable_protocol::{ControlEvent, InvocationId, ServiceName};
use std::sync::Arc;

/// The signing key, shared by the services of one process.
#[derive(Clone, Debug)]
pub struct Signer(Arc<SigningKey>);

impl Signer {
    /// A signer over `key`.
    pub fn new(key: SigningKey) -> Self {
        Self(Arc::new(key))
    }

    /// The key pushed to the handlers of `service`.
    pub fn service_key(&self, service: &ServiceName) -> ServiceKey {
        self.0.service_key(service)
    }

    /// The key of invocation `id`.
    pub fn invocation_key(&self, id: &InvocationId) -> InvocationKey {
        self.0.invocation_key(id)
    }

    /// Whether `tag` was made by `id`'s handler (or this orchestrator) for (`purpose`, `index`).
    pub fn verify(&self, id: &InvocationId, purpose: Purpose, index: u32, tag: &Tag) -> bool {
        self.0.verify(id, purpose, index, tag)
    }

    /// Whether a control event's proof holds.
    pub fn proves(&self, event: &ControlEvent) -> bool {
        event.proof_holds(&self.0)
    }

    /// A proven `drive` of `id`.
    pub fn drive(&self, id: InvocationId) -> ControlEvent {
        let key = self.invocation_key(&id);
        ControlEvent::drive(id, &key)
    }

    /// A proven `resume` of `id` for entry `entry`.
    pub fn resume(&self, id: InvocationId, entry: u32) -> ControlEvent {
        let key = self.invocation_key(&id);
        ControlEvent::resume(id, entry, &key)
    }

    /// A proven `dispatch` of `id`'s entry `entry`.
    pub fn dispatch(&self, id: InvocationId, entry: u32) -> ControlEvent {
        let key = self.invocation_key(&id);
        ControlEvent::dispatch(id, entry, &key)
    }

    /// A proven `wake` of `id`'s timer entry `entry`.
    pub fn wake(&self, id: InvocationId, entry: u32) -> ControlEvent {
        let key = self.invocation_key(&id);
        ControlEvent::wake(id, entry, &key)
    }
}
