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

pub use calls::CallContext;
pub use keyed::{KeyedContext, PromiseContext, ReadState, WriteState};
pub use timers::DurableContext;

use crate::runtime::attempt::Attempt;
use std::sync::Arc;

/// The context of a handler of a plain service: steps, timers, awakeables, calls and sends
/// (see [`DurableContext`] and [`CallContext`]). Cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<Attempt>,
}

impl Context {
    pub(crate) fn new(inner: Arc<Attempt>) -> Self {
        Self { inner }
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
}

impl Sealed for Context {
    fn context(&self) -> &Context {
        self
    }
}

impl DurableContext for Context {}
impl CallContext for Context {}
