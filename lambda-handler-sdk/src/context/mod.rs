//! What handlers see: a context per handler kind, and the durable operations on it.
//!
//! * [`run`]: durable steps.
//! * [`timers`]: timers, awakeables and the combinators over durable futures.
//! * [`calls`]: calls and sends to other handlers.
//! * [`keyed`]: the contexts of virtual objects and workflows: state and promises.

pub(crate) mod calls;
pub(crate) mod keyed;
pub(crate) mod run;
pub(crate) mod timers;

use crate::context::run::Run;
use crate::error::HandlerError;
use crate::retry::RetryPolicy;
use crate::runtime::attempt::Invocation;
use durable_protocol::InvocationId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

/// The context of a handler of a plain service. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<Invocation>,
}

impl Context {
    pub(crate) fn new(inner: Arc<Invocation>) -> Self {
        Self { inner }
    }

    /// The id of the running invocation (stable across retries).
    pub fn invocation_id(&self) -> &InvocationId {
        &self.inner.id
    }

    /// A durable step: runs `closure` once, records its result in the journal with one
    /// conditional write, and on replay returns the recorded result without running the
    /// closure again. The write is made as soon as the handler awaits anything after the step
    /// (another step, a sleep, a call, or any other future), before the handler goes on; a
    /// handler that returns without awaiting anything after its last step has that step
    /// recorded together with its outcome, in the same write.
    ///
    /// The closure may fail with a [`TerminalError`] (recorded, returned on every replay) or
    /// any other error (the attempt ends and the invocation is retried per the step's
    /// [`RetryPolicy`]). Side effects inside run at least once; their results exactly once.
    ///
    /// ```no_run
    /// # use lambda_handler_sdk::{Context, HandlerError};
    /// # async fn f(ctx: Context) -> Result<(), HandlerError> {
    /// let n: u32 = ctx.run("pick a number", || async { Ok(4) }).await?;
    /// # Ok(()) }
    /// ```
    pub fn run<'a, T, F, Fut>(&'a self, name: &'a str, closure: F) -> Run<'a, T, F>
    where
        T: Serialize + DeserializeOwned + Send + 'a,
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, HandlerError>> + Send + 'a,
    {
        Run {
            ctx: self,
            name,
            closure,
            policy: RetryPolicy::default(),
            _t: PhantomData,
        }
    }
}
