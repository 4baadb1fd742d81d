//! Write durable handlers as ordinary Rust Lambdas.
//!
//! A handler is an `async fn(Context, Input) -> Result<Output, HandlerError>`. Every
//! [`Context::run`] step is recorded in the orchestrator's journal (one conditional DynamoDB
//! write) before the code moves on; when the invocation is retried after a crash or a failure,
//! recorded steps return their recorded results instead of running again.
//!
//! ```no_run
//! use lambda_handler_sdk::{serve, Context, Endpoint, HandlerError, Service};
//!
//! async fn greet(ctx: Context, name: String) -> Result<String, HandlerError> {
//!     let greeting: String = ctx.run("compose", || async { Ok(format!("Hello, {name}!")) }).await?;
//!     Ok(greeting)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     serve(Endpoint::new().service(Service::new("greeter").handler("greet", greet))).await
//! }
//! ```

/// Typed services: `#[service]` on a trait generates `<Trait>Serve::into_service()` and a typed
/// `<Trait>Client`. A call with the right types compiles:
///
/// ```no_run
/// use lambda_handler_sdk::{service, Context, HandlerError};
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
/// use lambda_handler_sdk::{service, Context, HandlerError};
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
/// use lambda_handler_sdk::{service, Context, HandlerError};
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
pub mod typed {}

#[doc(hidden)]
pub mod bench;
mod context;
mod endpoint;
mod error;
mod retry;
mod runtime;
mod serve;

pub use context::keyed::{
    ObjectContext, SharedObjectContext, SharedWorkflowContext, WorkflowContext,
};
pub use context::run::Run;
pub use context::timers::{DurableFuture, Either};
pub use context::Context;
pub use endpoint::{Endpoint, Service, VirtualObject, Workflow};
pub use error::{HandlerError, TerminalError};
pub use retry::RetryPolicy;
pub use serve::{init_tracing, serve};

/// The invocation id of the child that entry `index` of this invocation (a call or send)
/// creates: the same on every retry.
pub fn child_id(ctx: &Context, index: u32) -> durable_protocol::InvocationId {
    durable_protocol::InvocationId::child(ctx.invocation_id(), index)
}

pub use durable_protocol::InvocationId;
pub use lambda_handler_sdk_macros::service;

/// Re-exported so that handler crates need no direct dependency to write `main`.
pub use lambda_runtime;

#[cfg(test)]
mod tests;
