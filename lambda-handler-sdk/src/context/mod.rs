//! What handlers see: a context per handler kind, and the durable operations on it.
//!
//! * [`run`]: durable steps.
//! * [`timers`]: timers, awakeables and the combinators over durable futures.
//! * [`calls`]: calls and sends to other handlers.
//! * [`keyed`]: the contexts of virtual objects and workflows: state and promises.
//! * [`scope`]: blocks with their own operation numbering, and `map`/`parallel` over them.
//! * [`poll`]: waiting for a condition, checked in steps with durable timers between.
//! * [`determinism`]: recorded time, seeded random numbers, replay awareness.

pub(crate) mod calls;
pub(crate) mod determinism;
pub(crate) mod keyed;
pub(crate) mod poll;
pub(crate) mod run;
pub(crate) mod scope;
pub(crate) mod timers;

pub use calls::CallContext;
pub use keyed::{KeyedContext, PromiseContext, ReadState, WriteState};
pub use timers::DurableContext;

use crate::runtime::attempt::Attempt;
use crate::runtime::scope::Scope;
use std::sync::Arc;

/// The context of a handler of a plain service: steps, timers, awakeables, calls and sends
/// (see [`DurableContext`] and [`CallContext`]). Cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<Attempt>,
    /// The scope operations created through this context are numbered in.
    pub(crate) scope: Arc<Scope>,
}

impl Context {
    pub(crate) fn new(inner: Arc<Attempt>) -> Self {
        Self {
            inner,
            scope: Arc::new(Scope::root()),
        }
    }

    /// The same context numbering its operations in `scope`.
    pub(crate) fn in_scope(&self, scope: Arc<Scope>) -> Self {
        Self {
            inner: self.inner.clone(),
            scope,
        }
    }

    /// The journal index of the next operation created through this context.
    pub(crate) fn allocate(&self) -> u32 {
        self.inner.allocate(&self.scope)
    }

    /// Hands the result of entry `index`, created through this context, to the code (on
    /// replay perhaps later, see `runtime::scope`).
    pub(crate) async fn receive(&self, index: u32) {
        self.inner.receive(&self.scope, index).await;
    }

    /// `future`, telling the scope when the code receives its result (see `runtime::scope`).
    pub(crate) fn receiving<'a, T: Send + 'a>(
        &self,
        index: u32,
        future: impl std::future::Future<Output = T> + Send + 'a,
    ) -> crate::runtime::attempt::BoxFuture<'a, T> {
        let ctx = self.clone();
        Box::pin(async move {
            let out = future.await;
            ctx.receive(index).await;
            out
        })
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("invocation_id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

/// What every context is made of; sealed, so only this crate's contexts have capabilities.
pub trait Sealed: Send + Sync {
    /// The plain context underneath.
    #[doc(hidden)]
    fn context(&self) -> &Context;

    /// The same kind of context on `ctx` (a scope's context).
    #[doc(hidden)]
    fn rescoped(&self, ctx: Context) -> Self
    where
        Self: Sized;
}

impl Sealed for Context {
    fn context(&self) -> &Context {
        self
    }

    fn rescoped(&self, ctx: Context) -> Self {
        ctx
    }
}

impl DurableContext for Context {}
impl CallContext for Context {}
