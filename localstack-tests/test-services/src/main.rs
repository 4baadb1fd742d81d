//! The handler Lambda the end-to-end tests drive. Its steps count their side effects in
//! DynamoDB items (`test#<run>` / `effect#<step>`), so the tests can tell how often a step's
//! closure really ran, and it can crash its own process on purpose, once per test run.

mod calls;
mod concurrency;
mod control;
mod effects;
mod objects;
mod payloads;
mod steps;
mod timers;
mod workflows;

use calls::*;
use concurrency::*;
use control::*;
use effects::DYNAMO;
use lambda_handler_sdk::prelude::*;
use objects::*;
use payloads::*;
use steps::*;
use timers::*;
use workflows::*;

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
                    .handler("charge_once", charge_once)
                    .handler("diverge", diverge)
                    .handler("reject", reject)
                    .handler("flaky", flaky)
                    .handler("hopeless", hopeless)
                    .handler("slow", slow)
                    .handler("slow_then_step", slow_then_step)
                    .handler("overrun", overrun)
                    .handler("backoff", backoff)
                    .handler("nap", nap)
                    .handler("timers", timers)
                    .handler("approval", approval)
                    .handler("timed_awakeable", timed_awakeable)
                    .handler("poll_until", poll_until)
                    .handler("complete_other", complete_other)
                    .handler("early", early)
                    .handler("chain", chain)
                    .handler("headers", headers)
                    .handler("send_once", send_once)
                    .handler("record", record)
                    .handler("sends", sends)
                    .handler("square", square)
                    .handler("fan_out", fan_out)
                    .handler("call_then_crash", call_then_crash)
                    .handler("call_unknown", call_unknown)
                    .handler("call_big", call_big)
                    .handler("echo", echo)
                    .handler("big_step", big_step)
                    .handler("big_output", big_output)
                    .handler("reverse_bytes", reverse_bytes)
                    .handler("map_items", map_items)
                    .handler("nested_parallel", nested_parallel)
                    .handler("saga", saga)
                    .handler("saga_child", saga_child)
                    .handler("guarded", guarded)
                    .handler("hold_lock", hold_lock)
                    .handler("cancel_children", cancel_children)
                    .handler("remind", remind)
                    .handler("pay_once", pay_once)
                    .handler("settle", settle)
                    .handler("onboard", onboard)
                    .handler("join_onboarding", join_onboarding)
                    .handler("misuse_workflow", misuse_workflow),
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
                    .shared("size", counter_size)
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
