//! The `counter` virtual object.

use crate::effects::*;
use lambda_handler_sdk::prelude::*;
use serde::Deserialize;

/// `counter/{key}/add`: adds to the key's count; answers the count before and after.
pub(crate) async fn counter_add(
    ctx: ObjectContext,
    n: i64,
) -> Result<serde_json::Value, HandlerError> {
    let old = ctx.get::<i64>("count").await?.unwrap_or(0);
    ctx.set("count", &(old + n))?;
    Ok(serde_json::json!({"old": old, "new": old + n}))
}

#[derive(Deserialize)]
pub(crate) struct CrashAdd {
    pub(crate) run: String,
    pub(crate) n: i64,
}

/// `counter/{key}/crash_add`: adds like `add`, but the first attempt's process dies after
/// setting the count and recording a step; the retry replays and finishes.
pub(crate) async fn counter_crash_add(
    ctx: ObjectContext,
    input: CrashAdd,
) -> Result<serde_json::Value, HandlerError> {
    let old = ctx.get::<i64>("count").await?.unwrap_or(0);
    ctx.set("count", &(old + input.n))?;
    ctx.run("counted", || count_effect(&input.run, "counted"))
        .await?;
    crash_once(&input.run, "crash", 22, "while holding the lock").await?;
    Ok(serde_json::json!({"old": old, "new": old + input.n}))
}

/// `counter/{key}/size`: the length of its input's JSON (what a caller in another service
/// sent it, however large).
pub(crate) async fn counter_size(
    _ctx: SharedObjectContext,
    input: serde_json::Value,
) -> Result<usize, HandlerError> {
    Ok(input.to_string().len())
}

/// `counter/{key}/get`: the count, read by a shared handler.
pub(crate) async fn counter_get(ctx: SharedObjectContext, _: ()) -> Result<i64, HandlerError> {
    Ok(ctx.get::<i64>("count").await?.unwrap_or(0))
}

/// `counter/{key}/keys`: the state keys, read by a shared handler.
pub(crate) async fn counter_keys(
    ctx: SharedObjectContext,
    _: (),
) -> Result<Vec<String>, HandlerError> {
    Ok(ctx.state_keys().await)
}

#[derive(Deserialize)]
pub(crate) struct Put {
    pub(crate) name: String,
    pub(crate) value: serde_json::Value,
    /// Fail terminally after setting.
    #[serde(default)]
    pub(crate) then_fail: bool,
}

/// `counter/{key}/put`: sets one state key, then maybe fails terminally.
pub(crate) async fn counter_put(ctx: ObjectContext, input: Put) -> Result<(), HandlerError> {
    ctx.set(&input.name, &input.value)?;
    if input.then_fail {
        return Err(TerminalError::new("failed on purpose after setting state")
            .with_code(409)
            .into());
    }
    Ok(())
}

/// `counter/{key}/clear`: clears every state key of the key.
pub(crate) async fn counter_clear(ctx: ObjectContext, _: ()) -> Result<(), HandlerError> {
    ctx.clear_all();
    Ok(())
}

#[derive(Deserialize)]
pub(crate) struct Hold {
    pub(crate) run: String,
    /// Sets the count to this, then sleeps this long (suspended), then returns.
    pub(crate) count: i64,
    pub(crate) sleep_ms: u64,
}

/// `counter/{key}/hold`: holds the key's lock across a long (suspending) sleep.
pub(crate) async fn counter_hold(ctx: ObjectContext, input: Hold) -> Result<i64, HandlerError> {
    ctx.set("count", &input.count)?;
    ctx.run("started", || publish(&input.run, "hold", "started"))
        .await?;
    ctx.sleep(std::time::Duration::from_millis(input.sleep_ms))
        .await?;
    Ok(input.count)
}

/// `counter/{key}/wait`: holds the key's lock until the test resolves a published awakeable.
pub(crate) async fn counter_wait(
    ctx: ObjectContext,
    input: RunOnly,
) -> Result<String, HandlerError> {
    let (id, answer) = ctx.awakeable::<String>().await?;
    ctx.run("publish", || publish(&input.run, "awakeable", &id))
        .await?;
    Ok(answer.await?)
}
