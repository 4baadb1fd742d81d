//! `ctx.poll`: waiting for a condition by checking it again and again. Each check is a
//! recorded step (its state threaded into the next check) and each wait between two checks is
//! a durable timer, so a long wait costs nothing while it waits and a replay repeats no check.
//! Awaiting a poll is implemented beside the other durable operations (`context::timers`).

use crate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::time::Duration;

/// The most checks one poll may make: its journal grows by two entries per check (the check's
/// step and the wait after it), so a poll's history stays bounded.
pub const MAX_POLL_CHECKS: u32 = 1000;

/// What one check of a [`Poll`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "check", content = "value", rename_all = "snake_case")]
pub enum Check<S, T> {
    /// The condition holds: the poll returns this.
    Done(T),
    /// Not yet: the next check gets this state.
    Again(S),
}

/// How long a [`Poll`] waits between two checks: a fixed delay, or one growing by a factor up
/// to a cap, each randomly spread by up to a jitter fraction.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitStrategy {
    initial: Duration,
    factor: f64,
    max: Duration,
    jitter: f64,
}

impl WaitStrategy {
    /// The same `delay` between every two checks.
    pub fn fixed(delay: Duration) -> Self {
        Self {
            initial: delay,
            factor: 1.0,
            max: delay,
            jitter: 0.0,
        }
    }

    /// `initial` after the first check, doubling after each further one, at most 5 minutes
    /// (change with [`WaitStrategy::factor`] and [`WaitStrategy::max_delay`]).
    pub fn exponential(initial: Duration) -> Self {
        Self {
            initial,
            factor: 2.0,
            max: Duration::from_secs(300).max(initial),
            jitter: 0.0,
        }
    }

    /// The growth of the delay after each check (at least 1).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor.max(1.0);
        self
    }

    /// The longest delay.
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Spreads each delay randomly by up to `fraction` (clamped to 0..=1) either way, seeded
    /// from the invocation so a replay agrees.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// The wait after check number `check` (from 1); `unit` in `[0, 1)` places the jitter.
    pub fn delay_after(&self, check: u32, unit: f64) -> Duration {
        RetryPolicy::exponential(self.initial, self.factor)
            .max_interval(self.max)
            .jitter(self.jitter)
            .jittered_delay_after(check, unit)
    }
}

/// A poll being built by [`DurableContext::poll`]; `.await` it.
#[must_use = "a poll does nothing until it is awaited"]
pub struct Poll<'a, C, S, T, F> {
    pub(crate) ctx: &'a C,
    pub(crate) name: &'a str,
    pub(crate) state: S,
    pub(crate) check: F,
    pub(crate) wait: WaitStrategy,
    pub(crate) max_checks: u32,
    _result: PhantomData<fn() -> T>,
}

impl<'a, C, S, T, F> Poll<'a, C, S, T, F> {
    pub(crate) fn new(ctx: &'a C, name: &'a str, state: S, check: F) -> Self {
        Self {
            ctx,
            name,
            state,
            check,
            wait: WaitStrategy::exponential(Duration::from_secs(1)),
            max_checks: 60,
            _result: PhantomData,
        }
    }

    /// How long to wait between checks (by default from 1 s, doubling, at most 5 minutes).
    pub fn wait(mut self, strategy: WaitStrategy) -> Self {
        self.wait = strategy;
        self
    }

    /// How many checks at most (60 by default, 1 to [`MAX_POLL_CHECKS`]); when the last one
    /// finds the condition still false the poll fails with a terminal `408`.
    pub fn max_checks(mut self, checks: u32) -> Self {
        self.max_checks = checks;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_fixed_or_grow_to_their_cap() {
        let fixed = WaitStrategy::fixed(Duration::from_secs(5));
        assert_eq!(fixed.delay_after(1, 0.5), Duration::from_secs(5));
        assert_eq!(fixed.delay_after(9, 0.5), Duration::from_secs(5));
        let grows =
            WaitStrategy::exponential(Duration::from_secs(1)).max_delay(Duration::from_secs(6));
        let delays: Vec<u64> = (1..=5)
            .map(|n| grows.delay_after(n, 0.5).as_secs())
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 6, 6]);
        let spread = WaitStrategy::fixed(Duration::from_secs(10)).jitter(0.5);
        assert_eq!(spread.delay_after(1, 0.0), Duration::from_secs(5));
        assert!(
            spread.delay_after(1, 0.99) <= Duration::from_secs(10),
            "within the cap"
        );
    }

    #[test]
    fn a_check_is_recorded_as_a_tagged_value() {
        let again: Check<u32, String> = Check::Again(3);
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::json!({"check": "again", "value": 3})
        );
        let done: Check<u32, String> =
            serde_json::from_value(serde_json::json!({"check": "done", "value": "ready"})).unwrap();
        assert_eq!(done, Check::Done("ready".into()));
    }
}
