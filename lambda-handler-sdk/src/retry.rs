//! How often and how fast a failing step is retried.

use std::time::Duration;

/// Retry policy of a `ctx.run` step. A step that fails with a retryable error ends the current
/// attempt; the orchestrator re-pushes the invocation after the policy's delay and replay skips
/// the steps already recorded. After `max_attempts` failures the step records a terminal error.
#[derive(Debug, Clone, PartialEq)]
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
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_millis(100),
            factor: 2.0,
            max_interval: Duration::from_secs(10),
            max_attempts: None,
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

    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exp = self
            .factor
            .max(1.0)
            .powi(attempt.saturating_sub(1).min(64) as i32);
        let secs = self.initial_interval.as_secs_f64() * exp;
        Duration::from_secs_f64(secs.min(self.max_interval.as_secs_f64()))
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
    fn max_attempts_bounds_the_step() {
        let p = RetryPolicy::default().max_attempts(3);
        assert!(!p.exhausted_after(2));
        assert!(p.exhausted_after(3));
        assert!(!RetryPolicy::default().exhausted_after(1000));
    }
}
