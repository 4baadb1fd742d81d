//! The handler Lambda the end-to-end tests drive. Its steps count their side effects in
//! DynamoDB items (`test#<run>` / `effect#<step>`), so the tests can tell how often a step's
//! closure really ran, and it can crash its own process on purpose, once per test run.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_handler_sdk::{
    serve, Context, Endpoint, HandlerError, ObjectContext, RetryPolicy, Service,
    SharedObjectContext, SharedWorkflowContext, TerminalError, VirtualObject, Workflow,
    WorkflowContext,
};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

static DYNAMO: OnceLock<(aws_sdk_dynamodb::Client, String)> = OnceLock::new();

fn dynamo() -> &'static (aws_sdk_dynamodb::Client, String) {
    DYNAMO.get().expect("initialised in main")
}

/// Adds one to the side-effect counter of `step` in test run `run`; returns the new count.
async fn count_effect(run: &str, step: &str) -> Result<u64, HandlerError> {
    let (client, table) = dynamo();
    let out = client
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("test#{run}")))
        .key("sk", AttributeValue::S(format!("effect#{step}")))
        .update_expression("ADD #c :one")
        .expression_attribute_names("#c", "count")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
        .send()
        .await
        .map_err(|e| HandlerError::retryable(format!("counting a side effect failed: {e:?}")))?;
    Ok(out
        .attributes
        .and_then(|a| a.get("count").and_then(|c| c.as_n().ok()?.parse().ok()))
        .unwrap_or(0))
}

/// True exactly once per (run, marker): a conditional put decides, so a retry sees false.
async fn first_time(run: &str, marker: &str) -> Result<bool, HandlerError> {
    let (client, table) = dynamo();
    let result = client
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(format!("test#{run}")))
        .item("sk", AttributeValue::S(format!("marker#{marker}")))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(HandlerError::retryable(format!(
            "marker write failed: {e:?}"
        ))),
    }
}

#[derive(Deserialize)]
struct StepsInput {
    run: String,
    steps: u32,
    /// Exit the process (as a crash would) right after this step, the first time only.
    #[serde(default)]
    crash_after: Option<u32>,
}

#[derive(Serialize)]
struct StepsOutput {
    results: Vec<u32>,
}

async fn steps(ctx: Context, input: StepsInput) -> Result<StepsOutput, HandlerError> {
    let mut results = Vec::new();
    for i in 1..=input.steps {
        let name = format!("step-{i}");
        let value: u32 = ctx
            .run(&name, || async {
                count_effect(&input.run, &name).await?;
                Ok(i * 10)
            })
            .await?;
        results.push(value);
        if input.crash_after == Some(i) && first_time(&input.run, "crash").await? {
            eprintln!("test-services: crashing on purpose after {name}");
            std::process::exit(17);
        }
    }
    Ok(StepsOutput { results })
}

#[derive(Deserialize)]
struct RunOnly {
    run: String,
}

/// Takes another first step on its retry than on its first attempt: non-deterministic code.
async fn diverge(ctx: Context, input: RunOnly) -> Result<(), HandlerError> {
    let first = first_time(&input.run, "diverge").await?;
    let name = if first { "original" } else { "changed" };
    ctx.run(name, || async { Ok(1u8) }).await?;
    if first {
        // The step is journaled once the handler awaits anything after it.
        tokio::task::yield_now().await;
        std::process::exit(18);
    }
    Ok(())
}

/// Records one step, then fails terminally with 409.
async fn reject(ctx: Context, input: RunOnly) -> Result<(), HandlerError> {
    ctx.run("check-stock", || async {
        count_effect(&input.run, "check-stock").await?;
        Ok(0u32)
    })
    .await?;
    Err(TerminalError::new("out of stock").with_code(409).into())
}

/// A step that fails twice with a retryable error, then succeeds.
async fn flaky(ctx: Context, input: RunOnly) -> Result<u64, HandlerError> {
    let n: u64 = ctx
        .run("flaky", || async {
            let n = count_effect(&input.run, "flaky").await?;
            if n < 3 {
                return Err(HandlerError::retryable(format!("transient failure #{n}")));
            }
            Ok(n)
        })
        .retry_policy(
            RetryPolicy::exponential(std::time::Duration::from_millis(50), 2.0).max_attempts(5),
        )
        .await?;
    Ok(n)
}

/// A step that always fails retryably, with at most two attempts.
async fn hopeless(ctx: Context, input: RunOnly) -> Result<(), HandlerError> {
    ctx.run("hopeless", || async {
        count_effect(&input.run, "hopeless").await?;
        Err::<(), _>(HandlerError::retryable("the bank is down"))
    })
    .retry_policy(
        RetryPolicy::exponential(std::time::Duration::from_millis(20), 2.0).max_attempts(2),
    )
    .await?;
    Ok(())
}

/// Sleeps in-process (not durably) while holding its step open: lets tests race attempts.
async fn slow(ctx: Context, input: SlowInput) -> Result<u64, HandlerError> {
    let n: u64 = ctx
        .run("slow", || async {
            let n = count_effect(&input.run, "slow").await?;
            tokio::time::sleep(std::time::Duration::from_millis(input.millis)).await;
            Ok(n)
        })
        .await?;
    Ok(n)
}

#[derive(Deserialize)]
struct SlowInput {
    run: String,
    millis: u64,
}

/// `slow`, then a second step built on its result: racing attempts meet at the first step's
/// write (it is journaled before the second step runs).
async fn slow_then_step(ctx: Context, input: SlowInput) -> Result<u64, HandlerError> {
    let n = slow(ctx.clone(), input).await?;
    Ok(ctx.run("times ten", || async move { Ok(n * 10) }).await?)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Stores a value under `test#<run>` / `<sk>` for the test to read.
async fn publish(run: &str, sk: &str, value: &str) -> Result<(), HandlerError> {
    let (client, table) = dynamo();
    client
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(format!("test#{run}")))
        .item("sk", AttributeValue::S(sk.to_owned()))
        .item("value", AttributeValue::S(value.to_owned()))
        .send()
        .await
        .map_err(|e| HandlerError::retryable(format!("publish failed: {e:?}")))?;
    Ok(())
}

/// Whether the test wrote `test#<run>` / `<sk>`.
async fn published(run: &str, sk: &str) -> Result<bool, HandlerError> {
    let (client, table) = dynamo();
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("test#{run}")))
        .key("sk", AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| HandlerError::retryable(format!("read failed: {e:?}")))?;
    Ok(out.item.is_some())
}

#[derive(Deserialize)]
struct NapInput {
    millis: u64,
    /// With `run`: kill the process this long into the sleep, the first time only.
    #[serde(default)]
    crash_after_ms: Option<u64>,
    #[serde(default)]
    run: Option<String>,
}

/// Sleeps durably and reports the time between two recorded steps around the sleep.
async fn nap(ctx: Context, input: NapInput) -> Result<serde_json::Value, HandlerError> {
    let start: u64 = ctx.run("start", || async { Ok(now_ms()) }).await?;
    if let (Some(after), Some(run)) = (input.crash_after_ms, input.run.clone()) {
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(after)).await;
            if first_time(&run, "nap-crash").await.unwrap_or(false) {
                eprintln!("test-services: crashing on purpose in the middle of a sleep");
                std::process::exit(19);
            }
        });
    }
    ctx.sleep(std::time::Duration::from_millis(input.millis))
        .await?;
    let end: u64 = ctx.run("end", || async { Ok(now_ms()) }).await?;
    Ok(serde_json::json!({"elapsed_ms": end - start}))
}

#[derive(Deserialize)]
struct TimersInput {
    millis: Vec<u64>,
}

/// Waits for several timers together.
async fn timers(ctx: Context, input: TimersInput) -> Result<usize, HandlerError> {
    let sleeps = input
        .millis
        .iter()
        .map(|m| ctx.sleep(std::time::Duration::from_millis(*m)))
        .collect();
    let results = ctx.all(sleeps).await;
    for r in &results {
        if let Err(e) = r {
            return Err(e.clone().into());
        }
    }
    Ok(results.len())
}

#[derive(Deserialize)]
struct ApprovalInput {
    run: String,
    timeout_ms: u64,
}

/// Waits for an awakeable (its id published for the test) or a timeout.
async fn approval(ctx: Context, input: ApprovalInput) -> Result<serde_json::Value, HandlerError> {
    let (id, answer) = ctx.awakeable::<serde_json::Value>().await?;
    ctx.run("publish", || publish(&input.run, "awakeable", &id))
        .await?;
    match ctx
        .timeout(answer, std::time::Duration::from_millis(input.timeout_ms))
        .await
    {
        Ok(value) => Ok(serde_json::json!({"approved": value})),
        Err(e) if e.code() == 408 => Ok(serde_json::json!({"timed_out": true})),
        Err(e) => Err(e.into()),
    }
}

/// Publishes an awakeable id, waits (in a step) until the test says it resolved it, and only
/// then awaits it: the completion is already there.
async fn early(ctx: Context, input: RunOnly) -> Result<serde_json::Value, HandlerError> {
    let (id, answer) = ctx.awakeable::<serde_json::Value>().await?;
    ctx.run("publish", || publish(&input.run, "awakeable", &id))
        .await?;
    ctx.run("wait for the resolution", || async {
        for _ in 0..200 {
            if published(&input.run, "resolved").await? {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Err(HandlerError::retryable(
            "the test did not resolve the awakeable",
        ))
    })
    .await?;
    let value = answer.await?;
    Ok(serde_json::json!({"approved": value}))
}

#[derive(Serialize, Deserialize)]
struct ChainInput {
    depth: u32,
    #[serde(default)]
    fail_at_bottom: bool,
}

/// Calls itself `depth` times; the bottom one may fail terminally (418).
async fn chain(ctx: Context, input: ChainInput) -> Result<u32, HandlerError> {
    if input.depth == 0 {
        if input.fail_at_bottom {
            return Err(TerminalError::new("the bottom of the chain failed")
                .with_code(418)
                .into());
        }
        return Ok(0);
    }
    let below: u32 = ctx
        .call(
            "testbed",
            "chain",
            &ChainInput {
                depth: input.depth - 1,
                fail_at_bottom: input.fail_at_bottom,
            },
        )
        .await?;
    Ok(below + 1)
}

#[derive(Serialize, Deserialize)]
struct Tagged {
    run: String,
    tag: String,
}

/// Counts that it ran (once per tag) and answers the time.
async fn record(ctx: Context, input: Tagged) -> Result<u64, HandlerError> {
    ctx.run("record", || async {
        count_effect(&input.run, &format!("record-{}", input.tag)).await?;
        Ok(now_ms())
    })
    .await
    .map_err(Into::into)
}

#[derive(Deserialize)]
struct SendsInput {
    run: String,
    n: u32,
    #[serde(default)]
    delay_ms: u64,
}

/// Sends `n` one-way messages to `record` (after `delay_ms`), returns the children's ids.
async fn sends(ctx: Context, input: SendsInput) -> Result<Vec<String>, HandlerError> {
    let mut ids = Vec::new();
    for i in 0..input.n {
        let msg = Tagged {
            run: input.run.clone(),
            tag: i.to_string(),
        };
        let id = if input.delay_ms > 0 {
            ctx.send_after(
                std::time::Duration::from_millis(input.delay_ms),
                "testbed",
                "record",
                &msg,
            )?
        } else {
            ctx.send("testbed", "record", &msg)?
        };
        ids.push(id.to_string());
    }
    Ok(ids)
}

async fn square(_ctx: Context, n: u64) -> Result<u64, HandlerError> {
    Ok(n * n)
}

/// Calls `square` for 0..n at once and sums the answers.
async fn fan_out(ctx: Context, n: u64) -> Result<u64, HandlerError> {
    let calls = (0..n)
        .map(|i| ctx.call::<u64>("testbed", "square", &i))
        .collect();
    let mut sum = 0;
    for r in ctx.all(calls).await {
        sum += r?;
    }
    Ok(sum)
}

/// Calls `slow`, and the first time crashes once the child exists (before it finishes).
async fn call_then_crash(ctx: Context, input: RunOnly) -> Result<u64, HandlerError> {
    let answer = ctx.call::<u64>(
        "testbed",
        "slow",
        &serde_json::json!({"run": input.run, "millis": 1500}),
    );
    let child = lambda_handler_sdk::child_id(&ctx, answer.index());
    let (client, table) = dynamo();
    let mut exists = false;
    for _ in 0..200 {
        let out = client
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(format!("inv#{child}")))
            .key("sk", AttributeValue::S("meta".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| HandlerError::retryable(format!("{e:?}")))?;
        if out.item.is_some() {
            exists = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    if exists && first_time(&input.run, "call-crash").await? {
        eprintln!("test-services: crashing on purpose while a call is in flight");
        std::process::exit(20);
    }
    Ok(answer.await?)
}

/// Calls a service nobody registered and reports the error it gets.
async fn call_unknown(
    ctx: Context,
    _: serde_json::Value,
) -> Result<serde_json::Value, HandlerError> {
    match ctx
        .call::<serde_json::Value>("nosuchservice", "anything", &())
        .await
    {
        Ok(v) => Err(TerminalError::new(format!("expected an error, got {v}")).into()),
        Err(e) => Ok(serde_json::json!({"code": e.code(), "message": e.message()})),
    }
}

/// `size` bytes of printable text determined by `seed` (the tests generate the same).
fn content(seed: &str, size: usize) -> String {
    let mut state = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (0..size)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(b'a' + ((state >> 33) % 26) as u8)
        })
        .collect()
}

async fn echo(_ctx: Context, input: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
    Ok(input)
}

#[derive(Deserialize)]
struct BigInput {
    run: String,
    size: usize,
    #[serde(default)]
    crash: bool,
    /// Wait on an awakeable after the step (so tests can look at the journal meanwhile).
    #[serde(default)]
    hold: bool,
}

/// One step returns `size` bytes; the handler answers the text's length and FNV-1a hash.
async fn big_step(ctx: Context, input: BigInput) -> Result<serde_json::Value, HandlerError> {
    let text: String = ctx
        .run("big", || async {
            count_effect(&input.run, "big").await?;
            Ok(content(&input.run, input.size))
        })
        .await?;
    if input.crash && first_time(&input.run, "big-crash").await? {
        eprintln!("test-services: crashing on purpose after a large step");
        std::process::exit(21);
    }
    if input.hold {
        let (_id, release) = ctx.awakeable::<serde_json::Value>().await?;
        release.await?;
    }
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    Ok(serde_json::json!({"len": text.len(), "fnv": format!("{hash:016x}")}))
}

/// Answers `size` bytes of text.
async fn big_output(_ctx: Context, input: BigInput) -> Result<String, HandlerError> {
    Ok(content(&input.run, input.size))
}

/// `counter/{key}/add`: adds to the key's count; answers the count before and after.
async fn counter_add(ctx: ObjectContext, n: i64) -> Result<serde_json::Value, HandlerError> {
    let old = ctx.get::<i64>("count").await?.unwrap_or(0);
    ctx.set("count", &(old + n))?;
    Ok(serde_json::json!({"old": old, "new": old + n}))
}

#[derive(Deserialize)]
struct CrashAdd {
    run: String,
    n: i64,
}

/// `counter/{key}/crash_add`: adds like `add`, but the first attempt's process dies after
/// setting the count and recording a step; the retry replays and finishes.
async fn counter_crash_add(
    ctx: ObjectContext,
    input: CrashAdd,
) -> Result<serde_json::Value, HandlerError> {
    let old = ctx.get::<i64>("count").await?.unwrap_or(0);
    ctx.set("count", &(old + input.n))?;
    ctx.run("counted", || count_effect(&input.run, "counted"))
        .await?;
    if first_time(&input.run, "crash").await? {
        eprintln!("test-services: crashing on purpose while holding the lock");
        std::process::exit(22);
    }
    Ok(serde_json::json!({"old": old, "new": old + input.n}))
}

/// `counter/{key}/get`: the count, read by a shared handler.
async fn counter_get(ctx: SharedObjectContext, _: ()) -> Result<i64, HandlerError> {
    Ok(ctx.get::<i64>("count").await?.unwrap_or(0))
}

/// `counter/{key}/keys`: the state keys, read by a shared handler.
async fn counter_keys(ctx: SharedObjectContext, _: ()) -> Result<Vec<String>, HandlerError> {
    Ok(ctx.state_keys().await)
}

#[derive(Deserialize)]
struct Put {
    name: String,
    value: serde_json::Value,
    /// Fail terminally after setting.
    #[serde(default)]
    then_fail: bool,
}

/// `counter/{key}/put`: sets one state key, then maybe fails terminally.
async fn counter_put(ctx: ObjectContext, input: Put) -> Result<(), HandlerError> {
    ctx.set(&input.name, &input.value)?;
    if input.then_fail {
        return Err(TerminalError::new("failed on purpose after setting state")
            .with_code(409)
            .into());
    }
    Ok(())
}

/// `counter/{key}/clear`: clears every state key of the key.
async fn counter_clear(ctx: ObjectContext, _: ()) -> Result<(), HandlerError> {
    ctx.clear_all();
    Ok(())
}

#[derive(Deserialize)]
struct Hold {
    run: String,
    /// Sets the count to this, then sleeps this long (suspended), then returns.
    count: i64,
    sleep_ms: u64,
}

/// `counter/{key}/hold`: holds the key's lock across a long (suspending) sleep.
async fn counter_hold(ctx: ObjectContext, input: Hold) -> Result<i64, HandlerError> {
    ctx.set("count", &input.count)?;
    ctx.run("started", || publish(&input.run, "hold", "started"))
        .await?;
    ctx.sleep(std::time::Duration::from_millis(input.sleep_ms))
        .await?;
    Ok(input.count)
}

/// `counter/{key}/wait`: holds the key's lock until the test resolves a published awakeable.
async fn counter_wait(ctx: ObjectContext, input: RunOnly) -> Result<String, HandlerError> {
    let (id, answer) = ctx.awakeable::<String>().await?;
    ctx.run("publish", || publish(&input.run, "awakeable", &id))
        .await?;
    Ok(answer.await?)
}

/// `onboarding/{key}/run`: records the e-mail, "sends" a confirmation (counted), waits for the
/// `confirmed` promise and answers with its value.
async fn signup_run(ctx: WorkflowContext, run: String) -> Result<serde_json::Value, HandlerError> {
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
async fn signup_confirm(ctx: SharedWorkflowContext, link: String) -> Result<(), HandlerError> {
    Ok(ctx.resolve_promise("confirmed", &link).await?)
}

/// `onboarding/{key}/status`: the status the run recorded, and a peek at the promise.
async fn signup_status(
    ctx: SharedWorkflowContext,
    _: (),
) -> Result<serde_json::Value, HandlerError> {
    let status = ctx.get::<String>("status").await?;
    let link = ctx.peek_promise::<String>("confirmed").await?;
    Ok(serde_json::json!({"status": status, "link": link}))
}

#[tokio::main]
async fn main() -> Result<(), lambda_handler_sdk::lambda_runtime::Error> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let table = std::env::var("TEST_TABLE").map_err(|_| "TEST_TABLE is not set")?;
    let _ = DYNAMO.set((aws_sdk_dynamodb::Client::new(&config), table));
    lambda_handler_sdk::init_tracing();
    serve(
        Endpoint::new()
            .service(
                Service::new("testbed")
                    .handler("steps", steps)
                    .handler("diverge", diverge)
                    .handler("reject", reject)
                    .handler("flaky", flaky)
                    .handler("hopeless", hopeless)
                    .handler("slow", slow)
                    .handler("slow_then_step", slow_then_step)
                    .handler("nap", nap)
                    .handler("timers", timers)
                    .handler("approval", approval)
                    .handler("early", early)
                    .handler("chain", chain)
                    .handler("record", record)
                    .handler("sends", sends)
                    .handler("square", square)
                    .handler("fan_out", fan_out)
                    .handler("call_then_crash", call_then_crash)
                    .handler("call_unknown", call_unknown)
                    .handler("echo", echo)
                    .handler("big_step", big_step)
                    .handler("big_output", big_output),
            )
            .service(
                VirtualObject::new("counter")
                    .exclusive("add", counter_add)
                    .exclusive("put", counter_put)
                    .exclusive("clear", counter_clear)
                    .exclusive("hold", counter_hold)
                    .exclusive("wait", counter_wait)
                    .exclusive("crash_add", counter_crash_add)
                    .shared("get", counter_get)
                    .shared("keys", counter_keys),
            )
            .service(
                Workflow::new("onboarding", signup_run)
                    .shared("confirm", signup_confirm)
                    .shared("status", signup_status),
            ),
    )
    .await
}
