//! Replay-aware logging: log lines a handler emits while it replays what an earlier attempt
//! recorded are the first attempt's lines again. [`ReplayAwareFilter`] drops them
//! ([`init_tracing`](crate::init_tracing) installs it), so each line appears once per run.

use crate::runtime::attempt::Attempt;
use std::future::Future;
use std::sync::Arc;
use tracing::Metadata;
use tracing_subscriber::layer::{Context as LayerContext, Filter};

tokio::task_local! {
    static ATTEMPT: Arc<Attempt>;
}

/// `handler`, run with its attempt visible to the filter.
pub(crate) fn scoped<F: Future>(
    attempt: Arc<Attempt>,
    handler: F,
) -> impl Future<Output = F::Output> {
    ATTEMPT.scope(attempt, handler)
}

/// Whether the code running now is a handler still replaying.
fn replaying() -> bool {
    ATTEMPT.try_with(|a| a.is_replaying()).unwrap_or(false)
}

/// A `tracing` filter that drops events emitted by handler code while it is replaying (see
/// [`DurableContext::is_replaying`](crate::DurableContext::is_replaying)); spans and events
/// outside handlers pass. Add it to your own subscriber's layer, combined with your level filter
/// (`.with_filter(env_filter.and(ReplayAwareFilter))`), so that what the level filter turns off
/// costs nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayAwareFilter;

impl<S> Filter<S> for ReplayAwareFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &LayerContext<'_, S>) -> bool {
        !(meta.is_event() && replaying())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if meta.is_event() {
            // Whether an event is dropped changes as the replay goes on: ask every time.
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::always()
        }
    }
}
