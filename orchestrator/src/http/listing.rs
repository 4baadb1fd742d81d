//! `GET /invocations`: a page of invocations, newest first, through the minutes' partitions
//! and the `runs` index (`durable_store::listing`).

use crate::driver::LambdaCall;
use crate::error::OrchestratorError;
use crate::http::query::{ListParams, DEFAULT_LIMIT};
use crate::http::{ApiError, FunctionUrlResponse};
use crate::services::Services;
use durable_protocol::clock::now_millis;
use durable_protocol::views::{InvocationPage, InvocationSummary};
use durable_store::invocations::Invocation;
use durable_store::listing::ListQuery;

/// How long a page may walk minutes before it answers with what it found and a cursor.
const PAGE_BUDGET_MS: u64 = 8_000;
/// What a page leaves of its call's time for answering.
const PAGE_MARGIN_MS: u64 = 3_000;

/// The summary row of `inv`, seen at `now_ms`.
pub(crate) fn summary(inv: &Invocation, now_ms: u64) -> InvocationSummary {
    let end = inv.times.completed_at.unwrap_or(now_ms);
    InvocationSummary {
        invocation_id: inv.id.clone(),
        service: inv.service.to_string(),
        handler: inv.handler.to_string(),
        key: inv.key.as_ref().map(|k| k.as_str().to_owned()),
        status: inv.status.as_str().to_owned(),
        created_at: inv.times.created_at,
        updated_at: inv.times.updated_at,
        completed_at: inv.times.completed_at,
        duration_ms: end.saturating_sub(inv.times.created_at),
        attempt: inv.attempt,
        caller: inv.caller.as_ref().map(|c| c.invocation.clone()),
        idempotency_key: inv.idempotency_key.clone(),
    }
}

impl Services {
    /// Answers one page of the listing `params` asks for.
    pub(crate) async fn list(
        &self,
        params: &ListParams,
        call: &LambdaCall,
    ) -> Result<FunctionUrlResponse, ApiError> {
        let now = now_millis();
        let services = match params.services.is_empty() {
            true => self
                .registry
                .services()
                .await
                .map_err(OrchestratorError::from)?,
            false => {
                for service in &params.services {
                    if self
                        .registry
                        .lookup(service)
                        .await
                        .map_err(OrchestratorError::from)?
                        .is_none()
                    {
                        return Err(ApiError::not_found(
                            "unknown_service",
                            format!("no service {service} is registered"),
                        ));
                    }
                }
                params.services.clone()
            }
        };
        // By default it looks back as far as the longest retention of the services listed.
        let mut retention = self.config.retention;
        for service in &services {
            if let Some(r) = self
                .registry
                .lookup(service)
                .await
                .map_err(OrchestratorError::from)?
                .and_then(|reg| reg.retention)
            {
                retention = retention.max(r);
            }
        }
        let (since, until) = params.window(now, retention)?;
        let swept = self
            .invocations
            .sweep_cursors()
            .await
            .map_err(OrchestratorError::from)?
            .minutes_until;
        let query = ListQuery {
            services,
            handler: params.handler.clone(),
            statuses: params.statuses.clone(),
            key: params.key.clone(),
            since_ms: since,
            until_ms: until,
            limit: params.limit.unwrap_or(DEFAULT_LIMIT),
            after: params.cursor.clone(),
            deadline_ms: (now + PAGE_BUDGET_MS)
                .min(call.deadline_ms.saturating_sub(PAGE_MARGIN_MS)),
        };
        let page = self
            .invocations
            .list(&query, swept)
            .await
            .map_err(OrchestratorError::from)?;
        tracing::debug!(
            found = page.invocations.len(),
            minutes = page.minutes_read,
            "listed invocations"
        );
        Ok(FunctionUrlResponse::json(
            200,
            &InvocationPage {
                invocations: page.invocations.iter().map(|i| summary(i, now)).collect(),
                next_cursor: page.next.map(|p| p.to_cursor()),
                since,
                until,
            },
        ))
    }
}
