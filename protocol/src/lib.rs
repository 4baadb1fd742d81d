//! The contract shared by the orchestrator and the handler SDK.
//!
//! * [`ids`]: typed identifiers (invocations, services, handlers) and their validation.
//! * [`journal`]: the journal entry model that replay is built on.
//! * [`envelope`]: what the orchestrator pushes to a handler Lambda and what it answers.
//! * [`store`]: the DynamoDB item layout and the conditional append of journal entries.
//! * [`keyed`]: the items of virtual objects and workflows: state and durable promises.
//! * [`payload`]: large values in S3, behind small references.

pub mod envelope;
pub mod ids;
pub mod journal;
pub mod keyed;
pub mod payload;
pub mod store;

pub use envelope::{
    DiscoveryResponse, EagerState, HandlerDescriptor, HandlerKind, HandlerRequest, HandlerResponse,
    InvokeRequest, ServiceDescriptor, ServiceKind, StepFailures, Timer, PROTOCOL_VERSION,
};
pub use ids::{
    AwakeableId, HandlerName, IdError, IdempotencyKey, InvocationId, ObjectKey, ServiceName,
};
pub use journal::{EntryKind, JournalEntry, StateDelta, StepResult, Target, TerminalFailure};
