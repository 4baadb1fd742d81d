//! Write durable handlers as ordinary Rust Lambdas.
//!
//! A handler is an `async fn(Context, Input) -> Result<Output, HandlerError>`. Every
//! [`DurableContext::run`] step is recorded in the orchestrator's journal (one conditional
//! DynamoDB write) before the code moves on; when the invocation is retried after a crash or a
//! failure, recorded steps return their recorded results instead of running again.
//!
//! ```no_run
//! use lambda_handler_sdk::prelude::*;
//!
//! async fn greet(ctx: Context, name: String) -> Result<String, HandlerError> {
//!     let greeting: String = ctx.run("compose", || async { Ok(format!("Hello, {name}!")) }).await?;
//!     Ok(greeting)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     init_tracing();
//!     serve(Endpoint::new().service(Service::new("greeter").handler("greet", greet))).await
//! }
//! ```
//!
//! # Contexts and capabilities
//!
//! Each handler kind gets its own context, and what a context can do is the set of capability
//! traits it implements (all sealed: only this crate's contexts implement them), so misuse does
//! not compile:
//!
//! | context | handler kind | capabilities |
//! |---|---|---|
//! | [`Context`] | service handler | [`DurableContext`], [`CallContext`] |
//! | [`ObjectContext`] | exclusive object handler | + [`KeyedContext`], [`ReadState`], [`WriteState`] |
//! | [`SharedObjectContext`] | shared object handler | + [`KeyedContext`], [`ReadState`] (recorded reads) |
//! | [`WorkflowContext`] | a workflow's `run` | + [`KeyedContext`], [`ReadState`], [`WriteState`], [`PromiseContext`] |
//! | [`SharedWorkflowContext`] | a workflow's shared handler | + [`KeyedContext`], [`ReadState`] (recorded), [`PromiseContext`] |
//!
//! `use lambda_handler_sdk::prelude::*;` brings the contexts, the capability traits, the error
//! types and the endpoint builders into scope.
//!
//! # The determinism contract
//!
//! A replay re-runs the handler from the start and matches every durable operation against the
//! journal by its place in the program: its scope (the handler itself, a
//! [`DurableContext::scope`], an item of [`DurableContext::map`] or a branch of
//! [`DurableContext::parallel`]) and the order it was created in there. So a handler must:
//!
//! * create its durable operations (steps, sleeps, awakeables, calls, sends, selects, scopes,
//!   state and promise operations) in the same order within each scope on every attempt, given
//!   the same input and the same recorded results: branch only on the input and on what durable
//!   operations returned;
//! * keep non-deterministic work (clocks, random numbers, I/O, reading the environment) inside
//!   `ctx.run` steps, whose results are recorded, or use [`DurableContext::now`],
//!   [`DurableContext::rng`] and [`DurableContext::uuid`];
//! * run concurrent blocks that each await several operations in their own scopes (or as the
//!   items of a map or the branches of a parallel): their operations never depend on timing.
//!
//! Concurrent blocks sharing one scope (plain `tokio::join!` of multi-step branches) replay
//! correctly as long as each block creates its next operation right after receiving the result
//! it depends on: every new entry records which result of its scope the code had received last
//! (`after`), and a replay hands recorded results over only once the operations created before
//! them exist again, which reproduces the first attempt's interleaving. A block that awaits
//! something else in between (a channel, a plain `tokio::time::sleep`) may break that, and a
//! replay that cannot follow the recorded order fails instead of guessing.
//!
//! A replay that asks for another operation than the journal recorded fails the invocation with
//! status 570 (`non_determinism`) and says where. A step's side effects run at least once (a
//! crash between the effect and its record repeats it); its result is recorded exactly once.

/// Typed services, objects and workflows: `#[service]` on a trait generates `<Trait>Serve::into_service()` and a typed
/// `<Trait>Client`. A call with the right types compiles:
///
/// ```no_run
/// use lambda_handler_sdk::prelude::*;
///
/// #[service]
/// pub trait Greeter {
///     async fn greet(&self, ctx: Context, name: String) -> Result<String, HandlerError>;
/// }
///
/// async fn caller(ctx: Context) -> Result<String, HandlerError> {
///     Ok(GreeterClient::new(&ctx).greet(&"Ada".to_string()).await?)
/// }
/// ```
///
/// and a call with a wrong argument type does not:
///
/// ```compile_fail
/// use lambda_handler_sdk::prelude::*;
///
/// #[service]
/// pub trait Greeter {
///     async fn greet(&self, ctx: Context, name: String) -> Result<String, HandlerError>;
/// }
///
/// async fn caller(ctx: Context) -> Result<String, HandlerError> {
///     Ok(GreeterClient::new(&ctx).greet(&42u32).await?)
/// }
/// ```
///
/// nor does using the result as another type:
///
/// ```compile_fail
/// use lambda_handler_sdk::prelude::*;
///
/// #[service]
/// pub trait Greeter {
///     async fn greet(&self, ctx: Context, name: String) -> Result<String, HandlerError>;
/// }
///
/// async fn caller(ctx: Context) -> Result<u64, HandlerError> {
///     Ok(GreeterClient::new(&ctx).greet(&"Ada".to_string()).await?)
/// }
/// ```
///
/// `#[object]` declares a virtual object: a handler taking `ObjectContext` is exclusive, one
/// taking `SharedObjectContext` shared, and the client takes the key:
///
/// ```no_run
/// use lambda_handler_sdk::prelude::*;
///
/// #[object(name = "cart")]
/// pub trait Cart {
///     async fn add(&self, ctx: ObjectContext, item: String) -> Result<u32, HandlerError>;
///     async fn count(&self, ctx: SharedObjectContext, _: ()) -> Result<u32, HandlerError>;
/// }
///
/// struct Carts;
/// impl Cart for Carts {
///     async fn add(&self, ctx: ObjectContext, _item: String) -> Result<u32, HandlerError> {
///         let n = ctx.get::<u32>("n").await?.unwrap_or(0) + 1;
///         ctx.set("n", &n)?;
///         Ok(n)
///     }
///     async fn count(&self, ctx: SharedObjectContext, _: ()) -> Result<u32, HandlerError> {
///         Ok(ctx.get::<u32>("n").await?.unwrap_or(0))
///     }
/// }
///
/// async fn shop(ctx: Context) -> Result<u32, HandlerError> {
///     let cart = CartClient::new(&ctx, "ada");
///     cart.add(&"apple".to_string()).await?;
///     Ok(cart.count(&()).await?)
/// }
///
/// let _endpoint = Endpoint::new().service(Carts.into_object());
/// ```
///
/// A wrong item type does not compile:
///
/// ```compile_fail
/// use lambda_handler_sdk::prelude::*;
///
/// #[object(name = "cart")]
/// pub trait Cart {
///     async fn add(&self, ctx: ObjectContext, item: String) -> Result<u32, HandlerError>;
/// }
///
/// async fn shop(ctx: Context) -> Result<u32, HandlerError> {
///     Ok(CartClient::new(&ctx, "ada").add(&7u8).await?)
/// }
/// ```
///
/// nor does an object handler that takes a plain `Context`:
///
/// ```compile_fail
/// use lambda_handler_sdk::prelude::*;
///
/// #[object(name = "cart")]
/// pub trait Cart {
///     async fn add(&self, ctx: Context, item: String) -> Result<u32, HandlerError>;
/// }
/// ```
///
/// `#[workflow]` declares a workflow: its `run` takes `WorkflowContext`, the shared handlers
/// `SharedWorkflowContext`; the client reaches the shared handlers of one key:
///
/// ```no_run
/// use lambda_handler_sdk::prelude::*;
///
/// #[workflow(name = "signup")]
/// pub trait Signup {
///     async fn run(&self, ctx: WorkflowContext, email: String) -> Result<bool, HandlerError>;
///     async fn confirm(&self, ctx: SharedWorkflowContext, link: String) -> Result<(), HandlerError>;
/// }
///
/// async fn mailer(ctx: Context) -> Result<(), HandlerError> {
///     Ok(SignupClient::new(&ctx, "ada").confirm(&"link-1".to_string()).await?)
/// }
/// ```
///
/// and its `run`: `run` submits the key (or finds its run) and waits for the result,
/// `submit` does not wait, `attach` waits for a run submitted elsewhere, and
/// `resolve_promise` / `reject_promise` complete one of its promises:
///
/// ```no_run
/// use lambda_handler_sdk::prelude::*;
///
/// #[workflow(name = "signup")]
/// pub trait Signup {
///     async fn run(&self, ctx: WorkflowContext, email: String) -> Result<bool, HandlerError>;
/// }
///
/// async fn caller(ctx: Context) -> Result<bool, HandlerError> {
///     let signup = SignupClient::new(&ctx, "ada");
///     signup.resolve_promise("approved", &true).await?;
///     Ok(signup.run(&"a@b.c".to_string()).await?)
/// }
/// ```
///
/// whose input is typed too:
///
/// ```compile_fail
/// use lambda_handler_sdk::prelude::*;
///
/// #[workflow(name = "signup")]
/// pub trait Signup {
///     async fn run(&self, ctx: WorkflowContext, email: String) -> Result<bool, HandlerError>;
/// }
///
/// async fn caller(ctx: Context) -> Result<bool, HandlerError> {
///     Ok(SignupClient::new(&ctx, "ada").run(&42u32).await?)
/// }
/// ```
pub mod typed {}

// The macros name this crate by its path, also when its own tests use them.
extern crate self as lambda_handler_sdk;

#[doc(hidden)]
pub mod bench;
mod context;
mod endpoint;
mod error;
#[cfg(feature = "testing")]
pub mod harness;
mod replay_log;
mod retry;
mod runtime;
mod serve;

pub use context::determinism::DurableRng;
pub use context::keyed::{
    ObjectContext, SharedObjectContext, SharedWorkflowContext, WorkflowContext,
};
pub use context::poll::{Check, Poll, WaitStrategy, MAX_POLL_CHECKS};
pub use context::run::{step_attempt, Run, StepSemantics};
pub use context::scope::{
    BatchResult, CompletionPolicy, CompletionReason, ItemOutcome, Map, Parallel,
};
pub use context::timers::{AwakeableOptions, DurableFuture, Either};
pub use context::{
    CallContext, Context, DurableContext, KeyedContext, PromiseContext, ReadState, WriteState,
};
pub use durable_protocol::{Bytes, Headers};
pub use endpoint::{Endpoint, Service, VirtualObject, Workflow};
pub use error::{HandlerError, TerminalError};
pub use replay_log::ReplayAwareFilter;
pub use retry::{RetryPolicy, RetryPredicate};
pub use serve::{init_tracing, serve};

/// What handler code usually needs: contexts, capability traits, errors, endpoint builders.
pub mod prelude {
    pub use crate::{
        init_tracing, object, serve, service, workflow, AwakeableOptions, BatchResult, Bytes,
        CallContext, Check, CompletionPolicy, Context, DurableContext, DurableFuture, Either,
        Endpoint, HandlerError, ItemOutcome, KeyedContext, ObjectContext, PromiseContext,
        ReadState, RetryPolicy, Service, SharedObjectContext, SharedWorkflowContext, StepSemantics,
        TerminalError, VirtualObject, WaitStrategy, Workflow, WorkflowContext, WriteState,
    };
}

/// The invocation id of the child (in `service`) that entry `index` of this invocation (a
/// call or send) creates: the same on every retry. `None` if `service` is not a valid name.
pub fn child_id(
    ctx: &Context,
    index: u32,
    service: &str,
) -> Option<durable_protocol::InvocationId> {
    let service = durable_protocol::ServiceName::new(service).ok()?;
    Some(durable_protocol::InvocationId::child(
        ctx.invocation_id(),
        index,
        &service,
    ))
}

pub use durable_protocol::InvocationId;
pub use lambda_handler_sdk_macros::{object, service, workflow};

/// Re-exported so that handler crates need no direct dependency to write `main`.
pub use lambda_runtime;

/// Re-exported for the code the macros generate.
#[doc(hidden)]
pub use serde as __serde;

#[cfg(test)]
mod tests;
