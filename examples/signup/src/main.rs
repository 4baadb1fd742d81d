//! A user sign-up workflow, keyed by e-mail address (`POST /signup/{email}/run`).
//!
//! `run` executes once per address (submitting it again returns the same run): it creates the
//! account, sends a confirmation e-mail with a secret, and waits for the durable promise
//! `email-link` (at most a week), suspended and costing nothing. The link in the e-mail lands on
//! the shared handler `click`, which resolves the promise with the secret it carries; `run`
//! checks it. `status` can be asked at any time (state a workflow sets becomes visible to its
//! shared handlers when `run` finishes). The promise can also be resolved through the ingress:
//! `POST /signup/{email}/promises/email-link/resolve`.

use lambda_handler_sdk::prelude::*;
use lambda_handler_sdk::{
    serve, Endpoint, HandlerError, SharedWorkflowContext, TerminalError, Workflow, WorkflowContext,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Deserialize)]
struct Signup {
    name: String,
    /// How long the link stays valid.
    #[serde(default = "a_week")]
    link_valid_secs: u64,
}

fn a_week() -> u64 {
    7 * 24 * 3600
}

#[derive(Serialize)]
struct Account {
    email: String,
    name: String,
    confirmed: bool,
}

async fn run(ctx: WorkflowContext, signup: Signup) -> Result<Account, HandlerError> {
    let email = ctx.key().to_owned();
    ctx.set("status", &"created")?;
    // Recorded once: a replay sends no second e-mail with another secret.
    let secret: String = ctx
        .run("create secret", || async {
            Ok(format!(
                "{:x}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
            ))
        })
        .await?;
    let to = email.clone();
    let link_secret = secret.clone();
    ctx.run("send e-mail", || async move {
        let secret = link_secret;
        println!("to {to}: click https://example.com/signup/{to}/click?secret={secret}");
        Ok(())
    })
    .await?;
    let clicked = ctx.timeout(
        ctx.promise::<String>("email-link"),
        Duration::from_secs(signup.link_valid_secs),
    );
    let confirmed = match clicked.await {
        Ok(given) => given == secret,
        Err(e) if e.code() == 408 => false,
        Err(e) => return Err(e.into()),
    };
    ctx.set(
        "status",
        &if confirmed {
            "confirmed"
        } else {
            "not confirmed"
        },
    )?;
    Ok(Account {
        email,
        name: signup.name,
        confirmed,
    })
}

/// The confirmation link: hands its secret to `run` (once; a second click is refused).
async fn click(ctx: SharedWorkflowContext, secret: String) -> Result<&'static str, HandlerError> {
    if secret.is_empty() {
        return Err(TerminalError::new("the link has no secret")
            .with_code(400)
            .into());
    }
    ctx.resolve_promise("email-link", &secret).await?;
    Ok("thanks, we are checking your link")
}

/// Where the sign-up is, and whether the link was clicked.
async fn status(ctx: SharedWorkflowContext, _: ()) -> Result<serde_json::Value, HandlerError> {
    let status = ctx.get::<String>("status").await?;
    let clicked = ctx.peek_promise::<String>("email-link").await?.is_some();
    Ok(serde_json::json!({"status": status, "clicked": clicked}))
}

/// What this Lambda serves.
fn endpoint() -> Endpoint {
    Endpoint::new().service(
        Workflow::new("signup", run)
            .shared("click", click)
            .shared("status", status),
    )
}

#[tokio::main]
async fn main() -> Result<(), lambda_handler_sdk::lambda_runtime::Error> {
    lambda_handler_sdk::init_tracing();
    serve(endpoint()).await
}

#[cfg(test)]
mod tests {
    //! The workflow in-process with the test kit: the week-long link validity passes on its
    //! virtual clock. The deployed example is tested end to end in
    //! `localstack-tests/tests/objects.rs`.

    use super::*;
    use durable_testing::{EntryKind, StepResult, TestRunner};
    use serde_json::{json, Value};

    #[tokio::test]
    async fn clicking_the_link_with_its_secret_confirms_the_account() {
        let runner = TestRunner::new(endpoint());
        let email = "ada@example.com";
        let id = runner
            .start_keyed("signup", email, "run", &json!({"name": "Ada"}))
            .await
            .unwrap();
        // The secret as the e-mail carried it: the step's recorded result.
        let secret = runner
            .journal(&id)
            .into_iter()
            .find_map(|e| match e.kind {
                EntryKind::Run {
                    name,
                    result: StepResult::Value(v),
                } if name == "create secret" => v.as_str().map(str::to_owned),
                _ => None,
            })
            .unwrap();
        let _: String = runner
            .invoke_keyed("signup", email, "click", &secret)
            .await
            .unwrap();
        let account: Value = runner.finish(&id).await.unwrap();
        assert_eq!(account["confirmed"], true);
        let status: Value = runner
            .invoke_keyed("signup", email, "status", &())
            .await
            .unwrap();
        assert_eq!(status, json!({"status": "confirmed", "clicked": true}));
    }

    #[tokio::test]
    async fn a_link_nobody_clicks_expires_after_a_week() {
        let runner = TestRunner::new(endpoint());
        let account: Value = runner
            .invoke_keyed("signup", "bob@example.com", "run", &json!({"name": "Bob"}))
            .await
            .unwrap();
        assert_eq!(account["confirmed"], false);
        assert_eq!(runner.step_runs("send e-mail"), 1);
    }
}
