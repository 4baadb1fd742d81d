//! CloudWatch metrics as Embedded Metric Format (EMF) log lines: one JSON line on stdout per
//! lifecycle event, which CloudWatch Logs turns into metrics. No API call, so no extra cost
//! beyond the log bytes (about 300 per line); `DURABLE_METRICS=off` turns them off.
//!
//! Metrics (namespace `DURABLE_METRICS_NAMESPACE`, default `Durable`; dimension `Service`):
//! `InvocationsStarted`, `InvocationsCompleted`, `InvocationsFailed`, `InvocationsCancelled`,
//! `InvocationsKilled` (each with `DurationMs` from creation), `InvocationsSuspended`,
//! `InvocationsPaused`, `AttemptsRetried`, `TimerWakeLagMs` (a timer's firing after its wake
//! time) and, without a dimension, `SweepRedriven`.

use durable_protocol::{InvocationId, Status};
use durable_store::invocations::Invocation;
use serde_json::{json, Map, Value};

/// What happened, as one EMF line.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    Started(&'a Invocation),
    Finished {
        inv: &'a Invocation,
        status: Status,
        duration_ms: u64,
    },
    Suspended(&'a Invocation),
    Paused(&'a Invocation),
    Retried(&'a Invocation),
    TimerFired {
        id: &'a InvocationId,
        entry: u32,
        lag_ms: u64,
    },
    SweepRedriven {
        count: usize,
    },
}

impl Event<'_> {
    /// The EMF document of this event at `timestamp_ms` under `namespace`.
    pub fn document(&self, namespace: &str, timestamp_ms: u64) -> Value {
        let mut fields = Map::new();
        let mut metrics: Vec<(&str, &str, f64)> = Vec::new();
        // The invocation's identity, its handler and its trace: searchable properties (only
        // the service is a dimension, so the metric count stays small).
        let invocation = |fields: &mut Map<String, Value>, inv: &Invocation| {
            fields.insert("Service".into(), json!(inv.service.as_str()));
            fields.insert("Handler".into(), json!(inv.handler.as_str()));
            fields.insert("InvocationId".into(), json!(inv.id.as_str()));
            fields.insert("TraceId".into(), json!(inv.trace.trace_id));
            fields.insert("Attempt".into(), json!(inv.attempt));
        };
        match self {
            Event::Started(inv) => {
                invocation(&mut fields, inv);
                metrics.push(("InvocationsStarted", "Count", 1.0));
            }
            Event::Finished {
                inv,
                status,
                duration_ms,
            } => {
                invocation(&mut fields, inv);
                let name = match status {
                    Status::Completed => "InvocationsCompleted",
                    Status::Cancelled => "InvocationsCancelled",
                    Status::Killed => "InvocationsKilled",
                    _ => "InvocationsFailed",
                };
                metrics.push((name, "Count", 1.0));
                metrics.push(("DurationMs", "Milliseconds", *duration_ms as f64));
                metrics.push(("Attempts", "Count", f64::from(inv.attempt)));
            }
            Event::Suspended(inv) => {
                invocation(&mut fields, inv);
                metrics.push(("InvocationsSuspended", "Count", 1.0));
            }
            Event::Paused(inv) => {
                invocation(&mut fields, inv);
                metrics.push(("InvocationsPaused", "Count", 1.0));
            }
            Event::Retried(inv) => {
                invocation(&mut fields, inv);
                metrics.push(("AttemptsRetried", "Count", 1.0));
            }
            Event::TimerFired { id, entry, lag_ms } => {
                fields.insert("Service".into(), json!(id.service_str()));
                fields.insert("InvocationId".into(), json!(id.as_str()));
                fields.insert("Entry".into(), json!(entry));
                metrics.push(("TimerWakeLagMs", "Milliseconds", *lag_ms as f64));
            }
            Event::SweepRedriven { count } => {
                metrics.push(("SweepRedriven", "Count", *count as f64));
            }
        }
        let dimensions: Vec<Vec<&str>> = match fields.contains_key("Service") {
            true => vec![vec!["Service"]],
            false => vec![vec![]],
        };
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
            .collect();
        for (name, _, value) in &metrics {
            fields.insert((*name).to_owned(), json!(value));
        }
        fields.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": dimensions,
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(fields)
    }
}

/// Where metrics go: stdout as EMF lines, or nowhere.
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: Option<String>,
}

impl Metrics {
    /// From `DURABLE_METRICS` (`off` disables) and `DURABLE_METRICS_NAMESPACE`.
    pub fn from_env() -> Self {
        let off = std::env::var("DURABLE_METRICS").is_ok_and(|v| v.eq_ignore_ascii_case("off"));
        Self {
            namespace: (!off).then(|| {
                std::env::var("DURABLE_METRICS_NAMESPACE").unwrap_or_else(|_| "Durable".into())
            }),
        }
    }

    /// Writes `event` as one line (CloudWatch Logs parses lines that start with `{`).
    pub fn emit(&self, event: Event<'_>) {
        if let Some(namespace) = &self.namespace {
            let line = event.document(namespace, durable_protocol::clock::now_millis());
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finish_is_one_emf_document_with_its_service_dimension() {
        let id = InvocationId::dated(&durable_protocol::ServiceName::new("shop").unwrap(), 0);
        let new = durable_store::invocations::NewInvocation {
            id: id.clone(),
            service: id.service(),
            handler: durable_protocol::HandlerName::new("buy").unwrap(),
            function_arn: "arn:fn:1".into(),
            input: json!(null),
            idempotency_key: None,
            lease_until: 0,
            released: false,
            caller: None,
            key: None,
            handler_kind: None,
            traceparent: None,
            retention: None,
            headers: Default::default(),
        };
        let item = durable_store::invocations::InvocationStore::new_item(&new, Status::Running);
        let inv = durable_store::invocations::InvocationStore::decode(&item).unwrap();
        let doc = Event::Finished {
            inv: &inv,
            status: Status::Completed,
            duration_ms: 42,
        }
        .document("Durable", 7);
        assert_eq!(doc["TraceId"], json!(inv.trace.trace_id));
        assert_eq!(doc["_aws"]["Timestamp"], 7);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Durable");
        assert_eq!(directive["Dimensions"], json!([["Service"]]));
        assert_eq!(directive["Metrics"][0]["Name"], "InvocationsCompleted");
        assert_eq!(doc["Service"], "shop");
        assert_eq!(doc["InvocationsCompleted"], 1.0);
        assert_eq!(doc["DurationMs"], 42.0);
        let sweep = Event::SweepRedriven { count: 3 }.document("Durable", 7);
        assert_eq!(
            sweep["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
    }
}
