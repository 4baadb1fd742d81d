//! The contract shared by the orchestrator and the handler SDK. It holds no storage code and no
//! AWS dependency: both sides serialize and parse the same types from here.
//!
//! * [`auth`]: the keys and tags that make awakeable ids and control events unforgeable.
//! * [`ids`]: typed identifiers (invocations, services, handlers, keys) and their validation.
//! * [`journal`]: the journal entry model that replay is built on.
//! * [`headers`]: the request headers handed to a handler and its children.
//! * [`bytes`]: raw bytes as a handler's input or output (`application/octet-stream`).
//! * [`envelope`]: what the orchestrator pushes to a handler Lambda and what it answers.
//! * [`control`]: the control events the orchestrator receives from itself, timers and handlers.
//! * [`status`]: the lifecycle states of an invocation.
//! * [`keyed`]: virtual objects and workflows: object references, promise waiters, limits.
//! * [`payload`]: references to large values kept outside the journal, and the offload limits.
//! * [`trace`]: W3C trace context carried from a caller to its invocation and its children.
//! * [`views`]: the read API's bodies (listings, timelines, objects), shared by all readers.
//! * [`clock`]: wall-clock milliseconds, as both sides record them.
//! * [`crash`]: crash points that tests arm to kill a process at a chosen place.

pub mod auth;
pub mod bytes;
pub mod clock;
pub mod control;
pub mod crash;
pub mod envelope;
pub mod headers;
pub mod ids;
pub mod journal;
pub mod keyed;
pub mod payload;
pub mod status;
pub mod trace;
pub mod views;

pub use auth::AwakeableId;
pub use bytes::Bytes;
pub use control::{ControlEvent, MinuteRange};
pub use envelope::{
    DiscoveryResponse, EagerState, HandlerDescriptor, HandlerKind, HandlerRequest, HandlerResponse,
    InvokeRequest, ServiceDescriptor, ServiceKind, StepFailures, Timer, PROTOCOL_VERSION,
};
pub use headers::Headers;
pub use ids::{HandlerName, IdError, IdempotencyKey, InvocationId, ObjectKey, ServiceName};
pub use journal::{
    AwakeableTimeout, ChildStart, EntryKind, EntryTag, JournalEntry, OpPath, StateDelta,
    StepResult, Target, TerminalFailure,
};
pub use status::Status;
