//! How often and how fast a failing step is retried.

use std::sync::Arc;
use std::time::Duration;

/// Decides whether a step's retryable error (its message) is retried; `false` records it as a
/// terminal failure at once.
pub type RetryPredicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Retry policy of a `ctx.run` step. A step that fails with a retryable error ends the current
/// attempt; the orchestrator re-pushes the invocation after the policy's delay (a long one on an
/// EventBridge Scheduler schedule, costing nothing while it waits) and replay skips the steps
/// already recorded. After `max_attempts` failures, or an error the `retry_if` predicate
/// refuses, the step records a terminal error.
#[derive(Clone)]
pub struct RetryPolicy {
    /// Delay before the second attempt.
    pub initial_interval: Duration,
    /// Growth of the delay per attempt.
    pub factor: f64,
    /// Upper bound of the delay.
    pub max_interval: Duration,
    /// Attempts before the step fails terminally; `None` leaves the limit to the orchestrator's
    /// per-invocation maximum (never infinite).
    pub max_attempts: Option<u32>,
    /// Each delay is randomly shortened or lengthened by up to this fraction (0 to 1), so that
    /// many invocations failing together do not retry together.
    pub jitter: f64,
    /// Which retryable errors are retried (all by default).
    pub retry_if: Option<RetryPredicate>,
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("initial_interval", &self.initial_interval)
            .field("factor", &self.factor)
            .field("max_interval", &self.max_interval)
            .field("max_attempts", &self.max_attempts)
            .field("jitter", &self.jitter)
            .field("retry_if", &self.retry_if.as_ref().map(|_| "<predicate>"))
            .finish()
    }
}

impl PartialEq for RetryPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.initial_interval == other.initial_interval
            && self.factor == other.factor
            && self.max_interval == other.max_interval
            && self.max_attempts == other.max_attempts
            && self.jitter == other.jitter
            && match (&self.retry_if, &other.retry_if) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_millis(100),
            factor: 2.0,
            max_interval: Duration::from_secs(10),
            max_attempts: None,
            jitter: 0.0,
            retry_if: None,
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff from `initial_interval`, growing by `factor`.
    pub fn exponential(initial_interval: Duration, factor: f64) -> Self {
        Self {
            initial_interval,
            factor,
            ..Self::default()
        }
    }

    /// Sets the maximum number of attempts.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Sets the maximum delay.
    pub fn max_interval(mut self, interval: Duration) -> Self {
        self.max_interval = interval;
        self
    }

    /// Randomizes each delay by up to `fraction` (clamped to 0..=1) either way.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// Retries only the errors whose message `predicate` accepts; others fail the step
    /// terminally at once (e.g. `|m| !m.contains("invalid card")`).
    pub fn retry_if(mut self, predicate: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.retry_if = Some(Arc::new(predicate));
        self
    }

    /// Whether an error with `message` is retried at all.
    pub fn retries(&self, message: &str) -> bool {
        self.retry_if.as_ref().is_none_or(|p| p(message))
    }

    /// The delay after failed attempt number `attempt` (1-based), before jitter.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exp = self
            .factor
            .max(1.0)
            .powi(attempt.saturating_sub(1).min(64) as i32);
        let secs = self.initial_interval.as_secs_f64() * exp;
        Duration::from_secs_f64(secs.min(self.max_interval.as_secs_f64()))
    }

    /// The delay after failed attempt `attempt`, with jitter: `unit` in `[0, 1)` picks where in
    /// the jitter range it falls (kept within `max_interval`).
    pub fn jittered_delay_after(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.delay_after(attempt).as_secs_f64();
        let spread = base * self.jitter * (2.0 * unit - 1.0);
        Duration::from_secs_f64((base + spread).clamp(0.0, self.max_interval.as_secs_f64()))
    }

    /// Whether attempt number `attempt` (1-based) was the last one allowed.
    pub fn exhausted_after(&self, attempt: u32) -> bool {
        self.max_attempts.is_some_and(|max| attempt >= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy::exponential(Duration::from_millis(100), 2.0)
            .max_interval(Duration::from_millis(350));
        assert_eq!(p.delay_after(1), Duration::from_millis(100));
        assert_eq!(p.delay_after(2), Duration::from_millis(200));
        assert_eq!(p.delay_after(3), Duration::from_millis(350));
        assert_eq!(p.delay_after(1000), Duration::from_millis(350));
    }

    #[test]
    fn jitter_spreads_delays_within_bounds() {
        let p = RetryPolicy::exponential(Duration::from_millis(1000), 2.0)
            .max_interval(Duration::from_secs(60))
            .jitter(0.5);
        assert_eq!(p.jittered_delay_after(1, 0.0), Duration::from_millis(500));
        assert_eq!(p.jittered_delay_after(1, 0.5), Duration::from_millis(1000));
        assert!(p.jittered_delay_after(1, 0.999) < Duration::from_millis(1500));
        assert_eq!(
            RetryPolicy::default().jitter(7.0).jitter,
            1.0,
            "clamped to the delay itself"
        );
    }

    #[test]
    fn a_predicate_decides_which_errors_retry() {
        let p = RetryPolicy::default().retry_if(|m| m.contains("timeout"));
        assert!(p.retries("timeout talking to the bank"));
        assert!(!p.retries("invalid card"));
        assert!(RetryPolicy::default().retries("anything"));
    }

    #[test]
    fn max_attempts_bounds_the_step() {
        let p = RetryPolicy::default().max_attempts(3);
        assert!(!p.exhausted_after(2));
        assert!(p.exhausted_after(3));
        assert!(!RetryPolicy::default().exhausted_after(1000));
    }
}
