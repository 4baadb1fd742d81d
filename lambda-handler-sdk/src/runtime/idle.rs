//! Knowing for certain that the handler is blocked: its last poll returned `Pending` and nothing
//! has woken it since. Counters of in-flight operations alone cannot tell this: between an
//! operation's I/O finishing and the handler being polled again they look idle, and suspending
//! then would lose what the handler was about to record (e.g. a timer).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use tokio::sync::Notify;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Shared between the tracked future and whoever asks whether it is idle.
#[derive(Default)]
pub(crate) struct Idleness {
    /// Bumped by every wake of the tracked future.
    wakes: AtomicU64,
    /// `wakes` as it was when the last poll returned `Pending`; `u64::MAX` while not pending.
    pending_at: AtomicU64,
}

impl Idleness {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            wakes: AtomicU64::new(0),
            pending_at: AtomicU64::new(u64::MAX),
        })
    }

    /// Whether the future is parked: pending, and not woken since.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending_at.load(Ordering::SeqCst) == self.wakes.load(Ordering::SeqCst)
    }
}

struct TrackingWaker {
    inner: Waker,
    idleness: Arc<Idleness>,
}

impl Wake for TrackingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.idleness.wakes.fetch_add(1, Ordering::SeqCst);
        self.inner.wake_by_ref();
    }
}

/// Work to finish before the tracked future may run again, asked for when it parks.
pub(crate) type OnPark = Box<dyn Fn() -> Option<BoxFuture<'static, ()>> + Send>;

/// Wraps a future and keeps its [`Idleness`] up to date; `changed` is notified whenever it parks.
/// When it parks, `on_park` may hand back work (writing a deferred journal entry) that must be
/// done before the future is polled again: whatever it resumes with then builds on that work.
pub(crate) struct Tracked<F> {
    inner: Pin<Box<F>>,
    idleness: Arc<Idleness>,
    changed: Arc<Notify>,
    on_park: OnPark,
    gate: Option<BoxFuture<'static, ()>>,
}

impl<F> Tracked<F> {
    pub(crate) fn new(
        inner: F,
        idleness: Arc<Idleness>,
        changed: Arc<Notify>,
        on_park: OnPark,
    ) -> Self {
        Self {
            inner: Box::pin(inner),
            idleness,
            changed,
            on_park,
            gate: None,
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Not idle while the gate's work runs (it counts as in-process work itself).
        self.idleness.pending_at.store(u64::MAX, Ordering::SeqCst);
        if let Some(gate) = self.gate.as_mut() {
            if gate.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.gate = None;
        }
        let before = self.idleness.wakes.load(Ordering::SeqCst);
        let waker = Waker::from(Arc::new(TrackingWaker {
            inner: cx.waker().clone(),
            idleness: self.idleness.clone(),
        }));
        let result = self.inner.as_mut().poll(&mut Context::from_waker(&waker));
        if result.is_pending() {
            if let Some(mut gate) = (self.on_park)() {
                if gate.as_mut().poll(cx).is_pending() {
                    self.gate = Some(gate);
                    return Poll::Pending;
                }
            }
            // A wake during the poll makes `wakes` differ from `before`: not idle, it runs again.
            self.idleness.pending_at.store(before, Ordering::SeqCst);
            self.changed.notify_one();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_only_while_parked_and_not_woken() {
        let idleness = Idleness::new();
        let changed = Arc::new(Notify::new());
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        assert!(!idleness.is_idle(), "not polled yet");
        let task = tokio::spawn(Tracked::new(
            async move { rx.await.unwrap() },
            idleness.clone(),
            changed.clone(),
            Box::new(|| None),
        ));
        changed.notified().await;
        assert!(idleness.is_idle(), "parked on the channel");
        tx.send(7).unwrap();
        assert!(!idleness.is_idle(), "woken: not idle before it runs again");
        assert_eq!(task.await.unwrap(), 7);
    }
}
