//! An expense approval: ask a manager, wait for the answer (an awakeable) at most a given time,
//! then wait a cooling-off period (a durable timer) before paying out.
//!
//! While it waits, no Lambda runs: the invocation is suspended in DynamoDB, the timeout is an
//! EventBridge Scheduler schedule, and the manager's answer (`POST /awakeables/{id}/resolve`)
//! resumes it.

use lambda_handler_sdk::prelude::*;
use lambda_handler_sdk::{serve, Context, Endpoint, HandlerError, Service};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Deserialize)]
struct Expense {
    expense_id: String,
    amount_cents: u64,
    /// How long the manager has to answer.
    #[serde(default = "default_deadline")]
    approval_timeout_secs: u64,
    /// Wait between approval and payout.
    #[serde(default)]
    cooling_off_secs: u64,
}

fn default_deadline() -> u64 {
    3 * 24 * 3600
}

#[derive(Serialize, Deserialize)]
struct Decision {
    approved: bool,
    by: String,
}

#[derive(Serialize)]
struct Outcome {
    expense_id: String,
    status: &'static str,
    decided_by: Option<String>,
}

async fn request_approval(ctx: Context, expense: Expense) -> Result<Outcome, HandlerError> {
    let (approval_id, decision) = ctx.awakeable::<Decision>().await?;

    // A real service would e-mail the manager a link carrying `approval_id`.
    ctx.run("notify manager", || async {
        println!(
            "expense {}: {} cents awaiting approval; resolve awakeable {approval_id}",
            expense.expense_id, expense.amount_cents
        );
        Ok(())
    })
    .await?;

    let timeout = Duration::from_secs(expense.approval_timeout_secs);
    let decision = match ctx.timeout(decision, timeout).await {
        Ok(decision) => decision,
        Err(e) if e.code() == 408 => {
            return Ok(Outcome {
                expense_id: expense.expense_id,
                status: "expired",
                decided_by: None,
            })
        }
        Err(rejected) => return Err(rejected.into()),
    };
    if !decision.approved {
        return Ok(Outcome {
            expense_id: expense.expense_id,
            status: "rejected",
            decided_by: Some(decision.by),
        });
    }

    ctx.sleep(Duration::from_secs(expense.cooling_off_secs))
        .await?;
    ctx.run("pay out", || async {
        println!(
            "expense {}: paying {} cents",
            expense.expense_id, expense.amount_cents
        );
        Ok(())
    })
    .await?;
    Ok(Outcome {
        expense_id: expense.expense_id,
        status: "paid",
        decided_by: Some(decision.by),
    })
}

/// What this Lambda serves.
fn endpoint() -> Endpoint {
    Endpoint::new().service(Service::new("approvals").handler("request", request_approval))
}

#[tokio::main]
async fn main() -> Result<(), lambda_handler_sdk::lambda_runtime::Error> {
    lambda_handler_sdk::init_tracing();
    serve(endpoint()).await
}

#[cfg(test)]
mod tests {
    //! The handler's logic in-process with the test kit: the 3-day deadline and the cooling-off
    //! period pass on its virtual clock. The deployed example is tested end to end in
    //! `localstack-tests/tests/e2e.rs`.

    use super::*;
    use durable_testing::TestRunner;
    use serde_json::{json, Value};

    fn expense() -> Value {
        json!({"expense_id": "e-1", "amount_cents": 4200, "cooling_off_secs": 86_400})
    }

    #[tokio::test]
    async fn an_approved_expense_is_paid_after_the_cooling_off() {
        let runner = TestRunner::new(endpoint());
        runner.resolve_awakeable("awakeable", &json!({"approved": true, "by": "grace"}));
        let out: Value = runner
            .invoke("approvals", "request", &expense())
            .await
            .unwrap();
        assert_eq!(
            out,
            json!({"expense_id": "e-1", "status": "paid", "decided_by": "grace"})
        );
        assert_eq!(runner.step_runs("pay out"), 1);
    }

    #[tokio::test]
    async fn an_expense_nobody_decides_expires_after_three_days() {
        let runner = TestRunner::new(endpoint());
        let out: Value = runner
            .invoke("approvals", "request", &expense())
            .await
            .unwrap();
        assert_eq!(out["status"], "expired");
        assert_eq!(runner.step_runs("pay out"), 0);
    }

    #[tokio::test]
    async fn a_rejected_expense_is_not_paid() {
        let runner = TestRunner::new(endpoint());
        runner.resolve_awakeable("awakeable", &json!({"approved": false, "by": "grace"}));
        let out: Value = runner
            .invoke("approvals", "request", &expense())
            .await
            .unwrap();
        assert_eq!(out["status"], "rejected");
    }

    #[tokio::test]
    async fn a_failing_notification_is_retried_and_the_payout_happens_once() {
        let runner = TestRunner::new(endpoint());
        runner.resolve_awakeable("awakeable", &json!({"approved": true, "by": "grace"}));
        runner.fail_step("notify manager", 2);
        let out: Value = runner
            .invoke("approvals", "request", &expense())
            .await
            .unwrap();
        assert_eq!(out["status"], "paid");
        assert_eq!(
            (
                runner.step_runs("notify manager"),
                runner.step_runs("pay out")
            ),
            (3, 1)
        );
    }
}
