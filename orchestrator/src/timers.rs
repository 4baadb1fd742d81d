//! Durable timers on EventBridge Scheduler: one one-time schedule per (invocation, sleep entry),
//! named deterministically so that creating it twice is a harmless conflict, deleted by the
//! Scheduler after it fires, targeting the orchestrator with a `wake` event.

use crate::config::Config;
use crate::error::OrchestratorError;
use aws_sdk_scheduler::operation::create_schedule::CreateScheduleError;
use aws_sdk_scheduler::operation::delete_schedule::DeleteScheduleError;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target,
};
use durable_protocol::ControlEvent;
use durable_protocol::{EntryKind, InvocationId, JournalEntry, Timer};
use std::sync::Arc;

/// Creates the schedules of durable timers.
pub struct Timers {
    pub(crate) client: aws_sdk_scheduler::Client,
    pub(crate) config: Arc<Config>,
    pub(crate) signing: crate::signer::Signer,
}

/// The schedule's name: unique per timer, at most 64 characters (`<the id's local part, 32
/// characters>-<index>`; the local part is unique per service, and random or hashed with the
/// service, so in practice across services).
pub fn schedule_name(id: &InvocationId, index: u32) -> String {
    format!("{}-{index}", id.local())
}

/// `at(yyyy-mm-ddThh:mm:ss)` in UTC for a time in ms since the Unix epoch (rounded down to the
/// second, so a schedule never fires after its timer is due).
pub fn at_expression(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "at({year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02})",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Timers {
    /// Schedules `timer` of invocation `id` to wake the orchestrator (`target_arn`). In precise
    /// mode the schedule fires `timer_lead` early and the orchestrator waits the rest.
    pub async fn schedule(
        &self,
        id: &InvocationId,
        timer: Timer,
        target_arn: &str,
    ) -> Result<(), OrchestratorError> {
        let fire_at = timer
            .wake_at_ms
            .saturating_sub(self.config.timer_lead.as_millis() as u64);
        let event = self.signing.wake(id.clone(), timer.index);
        self.schedule_event(&schedule_name(id, timer.index), fire_at, &event, target_arn)
            .await
    }

    /// Schedules another wake of awakeable entry `index` of `id` at `deadline_ms` (a heartbeat
    /// moved its deadline past the schedule that fired).
    pub async fn schedule_deadline(
        &self,
        id: &InvocationId,
        index: u32,
        deadline_ms: u64,
        target_arn: &str,
    ) -> Result<(), OrchestratorError> {
        let fire_at = deadline_ms.saturating_sub(self.config.timer_lead.as_millis() as u64);
        let event = self.signing.wake(id.clone(), index);
        let name = format!("{}-{}", schedule_name(id, index), deadline_ms / 1000);
        self.schedule_event(&name, fire_at, &event, target_arn)
            .await
    }

    /// Schedules the start of a delayed send's child (created already, leased until then).
    pub async fn schedule_start(
        &self,
        child: &InvocationId,
        due_at_ms: u64,
        target_arn: &str,
    ) -> Result<(), OrchestratorError> {
        let event = self.signing.drive(child.clone());
        self.schedule_event(
            &format!("{}-start", child.local()),
            due_at_ms,
            &event,
            target_arn,
        )
        .await
    }

    /// Schedules the retry of `id`'s attempt `attempt` (its backoff is longer than the
    /// orchestrator call had left): a `drive` at `due_ms`, when its lease has ended.
    pub async fn schedule_retry(
        &self,
        id: &InvocationId,
        attempt: u32,
        due_ms: u64,
        target_arn: &str,
    ) -> Result<(), OrchestratorError> {
        let event = self.signing.drive(id.clone());
        // Rounded up to the second, so that it never fires before the lease ends.
        let fire_at = due_ms.div_ceil(1000) * 1000;
        self.schedule_event(
            &format!("{}-r{attempt}", id.local()),
            fire_at,
            &event,
            target_arn,
        )
        .await
    }

    /// Deletes the schedules of `id`'s timers that never fired (a finished invocation's
    /// timers that lost a select): they would wake it later for nothing. Best effort: a
    /// schedule left behind fires once and changes nothing.
    pub async fn delete_unfired(&self, id: &InvocationId, journal: &[JournalEntry]) {
        for entry in journal {
            // An awakeable with a timeout keeps its deadline's schedule after a completion.
            let unfired = match entry.kind {
                EntryKind::Sleep { .. } => entry.completion.is_none(),
                EntryKind::Awakeable { timeout, .. } => timeout.is_some(),
                _ => false,
            };
            if unfired {
                self.delete(&schedule_name(id, entry.index)).await;
            }
        }
    }

    /// Deletes the schedule of `id`'s retry of attempt `attempt`, if there is one (best effort:
    /// one left behind sends a `drive` that finds nothing to do).
    pub async fn delete_retry(&self, id: &InvocationId, attempt: u32) {
        self.delete(&format!("{}-r{attempt}", id.local())).await;
    }

    /// Deletes the schedules of `timers` of `id` (best effort, as above).
    pub async fn delete_timers(&self, id: &InvocationId, timers: &[Timer]) {
        for timer in timers {
            self.delete(&schedule_name(id, timer.index)).await;
        }
    }

    /// Deletes schedule `name`; one that is gone already (it fired) is fine.
    async fn delete(&self, name: &str) {
        let result = self
            .client
            .delete_schedule()
            .name(name)
            .group_name(&self.config.schedule_group)
            .send()
            .await;
        match result {
            Ok(_) => tracing::debug!(schedule = name, "deleted an unfired timer's schedule"),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteScheduleError::ResourceNotFoundException(_))
                ) => {}
            Err(e) => tracing::warn!(
                schedule = name,
                error = %aws_sdk_scheduler::error::DisplayErrorContext(&e),
                "could not delete an unfired timer's schedule"
            ),
        }
    }

    /// A one-time schedule `name` that sends `event` to `target_arn` at `fire_at_ms`;
    /// creating it twice is a no-op.
    async fn schedule_event(
        &self,
        name: &str,
        fire_at_ms: u64,
        event: &ControlEvent,
        target_arn: &str,
    ) -> Result<(), OrchestratorError> {
        let role = self.config.scheduler_role_arn.as_deref().ok_or_else(|| {
            OrchestratorError::Protocol(
                "a timer needs EventBridge Scheduler but DURABLE_SCHEDULER_ROLE_ARN is not set"
                    .into(),
            )
        })?;
        let input =
            serde_json::to_string(event).map_err(|e| OrchestratorError::Protocol(e.to_string()))?;
        let target = Target::builder()
            .arn(target_arn)
            .role_arn(role)
            .input(input)
            .build()
            .map_err(|e| OrchestratorError::Protocol(e.to_string()))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| OrchestratorError::Protocol(e.to_string()))?;
        let result = self
            .client
            .create_schedule()
            .name(name)
            .group_name(&self.config.schedule_group)
            .schedule_expression(at_expression(fire_at_ms))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .target(target)
            .action_after_completion(ActionAfterCompletion::Delete)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Created before (a retried suspension): the same schedule, nothing to do.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateScheduleError::ConflictException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(OrchestratorError::Lambda {
                operation: "CreateSchedule",
                message: aws_sdk_scheduler::error::DisplayErrorContext(&e).to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_expressions_are_utc_seconds() {
        assert_eq!(at_expression(0), "at(1970-01-01T00:00:00)");
        // 2026-11-21T23:25:02.999Z
        assert_eq!(at_expression(1_795_303_502_999), "at(2026-11-21T23:25:02)");
        // leap day
        assert_eq!(at_expression(1_709_164_800_000), "at(2024-02-29T00:00:00)");
        assert_eq!(at_expression(1_735_689_599_000), "at(2024-12-31T23:59:59)");
    }

    #[test]
    fn schedule_names_fit_the_limit() {
        let id = InvocationId::random(&durable_protocol::ServiceName::new("svc").unwrap());
        let name = schedule_name(&id, u32::MAX);
        assert!(name.len() <= 64, "{name}");
        assert!(name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
