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

#[tokio::main]
async fn main() -> Result<(), lambda_handler_sdk::lambda_runtime::Error> {
    lambda_handler_sdk::init_tracing();
    serve(Endpoint::new().service(Service::new("approvals").handler("request", request_approval)))
        .await
}
