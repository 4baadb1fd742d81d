//! The `onboarding` workflow.

use crate::effects::*;
use lambda_handler_sdk::prelude::*;

/// `onboarding/{key}/run`: records the e-mail, "sends" a confirmation (counted), waits for the
/// `confirmed` promise and answers with its value.
pub(crate) async fn signup_run(
    ctx: WorkflowContext,
    run: String,
) -> Result<serde_json::Value, HandlerError> {
    ctx.set("status", &"waiting")?;
    let key = ctx.key().to_owned();
    ctx.run("send e-mail", || async move {
        count_effect(&run, "send e-mail").await?;
        publish(&run, "signup", &key).await
    })
    .await?;
    let link: String = ctx.promise("confirmed").await?;
    ctx.set("status", &"confirmed")?;
    Ok(serde_json::json!({"confirmed_with": link}))
}

/// `onboarding/{key}/confirm`: resolves the `confirmed` promise.
pub(crate) async fn signup_confirm(
    ctx: SharedWorkflowContext,
    link: String,
) -> Result<(), HandlerError> {
    Ok(ctx.resolve_promise("confirmed", &link).await?)
}

/// `onboarding/{key}/status`: the status the run recorded, and a peek at the promise.
pub(crate) async fn signup_status(
    ctx: SharedWorkflowContext,
    _: (),
) -> Result<serde_json::Value, HandlerError> {
    let status = ctx.get::<String>("status").await?;
    let link = ctx.peek_promise::<String>("confirmed").await?;
    Ok(serde_json::json!({"status": status, "link": link}))
}
