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

#[derive(serde::Deserialize)]
pub(crate) struct DriveWorkflowInput {
    pub(crate) run: String,
    pub(crate) key: String,
}

/// `testbed/onboard`: drives `onboarding/{key}` from another handler: submits it, resolves its
/// `confirmed` promise and waits for its result.
pub(crate) async fn onboard(
    ctx: Context,
    input: DriveWorkflowInput,
) -> Result<serde_json::Value, HandlerError> {
    ctx.workflow_submit("onboarding", &input.key, &input.run)?;
    ctx.resolve_workflow_promise("onboarding", &input.key, "confirmed", &"from a handler")
        .await?;
    Ok(ctx.workflow_attach("onboarding", &input.key).await?)
}

/// `testbed/join_onboarding`: calls `onboarding/{key}` (its run there is, or a new one) and
/// answers its result.
pub(crate) async fn join_onboarding(
    ctx: Context,
    input: DriveWorkflowInput,
) -> Result<serde_json::Value, HandlerError> {
    Ok(ctx
        .workflow_call("onboarding", &input.key, &input.run)
        .await?)
}

/// `testbed/misuse_workflow`: the codes of attaching to a key never submitted and of calling
/// a workflow's run as a plain handler.
pub(crate) async fn misuse_workflow(ctx: Context, key: String) -> Result<(u16, u16), HandlerError> {
    let attach = ctx
        .workflow_attach::<serde_json::Value>("onboarding", &key)
        .await;
    let plain = ctx
        .object_call::<serde_json::Value>("onboarding", &key, "run", &"x")
        .await;
    let code = |r: Result<serde_json::Value, TerminalError>| r.err().map_or(0, |e| e.code());
    Ok((code(attach), code(plain)))
}
