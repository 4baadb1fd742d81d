//! Concurrency: operations of concurrent branches, scopes, map and parallel, timers made early
//! and awaited late, deterministic helpers.

use super::*;
use crate::{BatchResult, CompletionPolicy, CompletionReason, Either, ItemOutcome};
use std::sync::atomic::AtomicUsize;

/// Two branches of two steps each; branch b's first step finishes first. `names` picks the
/// step names: distinct per step, or equal (a loop per item).
async fn two_branches<F, Fut>(
    ctx: &Context,
    same_names: bool,
    wrap: F,
) -> Result<Vec<Vec<String>>, HandlerError>
where
    F: Fn(&'static str, u64, Context, bool) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>, TerminalError>>,
{
    let (a, b) = tokio::join!(
        wrap("a", 60, ctx.clone(), same_names),
        wrap("b", 0, ctx.clone(), same_names)
    );
    // Ends the attempt: the next one replays both branches.
    ctx.sleep(Duration::from_secs(3600)).await?;
    Ok(vec![a?, b?])
}

/// One branch: two steps, the first taking `first_ms`.
async fn branch(
    who: &'static str,
    first_ms: u64,
    ctx: Context,
    same_names: bool,
    runs: &AtomicUsize,
) -> Result<Vec<String>, TerminalError> {
    let name = |n: u32| {
        if same_names {
            "page".to_owned()
        } else {
            format!("{who}{n}")
        }
    };
    let (n1, n2) = (name(1), name(2));
    let first: String = ctx
        .run(&n1, || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(first_ms)).await;
            Ok(format!("{who}1"))
        })
        .await?;
    let second: String = ctx
        .run(&n2, || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(format!("{who}2"))
        })
        .await?;
    Ok(vec![first, second])
}

static RAW_RUNS: AtomicUsize = AtomicUsize::new(0);
static SHORT_RUNS: AtomicUsize = AtomicUsize::new(0);
static SCOPED_RUNS: AtomicUsize = AtomicUsize::new(0);
static MAP_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The plain join; `(same_names, counter)`: which static counts its step runs (tests run
/// concurrently).
async fn raw_join(
    ctx: Context,
    (same_names, counter): (bool, u8),
) -> Result<Vec<Vec<String>>, HandlerError> {
    let runs = if counter == 0 { &RAW_RUNS } else { &SHORT_RUNS };
    two_branches(&ctx, same_names, |who, ms, ctx, same| async move {
        branch(who, ms, ctx, same, runs).await
    })
    .await
}

/// The raw join's code changed: branch b stops after one step.
async fn short_join(ctx: Context, _: ()) -> Result<Vec<Vec<String>>, HandlerError> {
    let a = {
        let ctx = ctx.clone();
        async move { branch("a", 60, ctx, true, &SHORT_RUNS).await }
    };
    let b = async {
        let one: String = ctx.run("page", || async { Ok("b1".to_owned()) }).await?;
        Ok::<_, TerminalError>(vec![one])
    };
    let (a, b) = tokio::join!(a, b);
    Ok(vec![a?, b?])
}

async fn scoped_join(ctx: Context, same_names: bool) -> Result<Vec<Vec<String>>, HandlerError> {
    let outer = ctx.clone();
    two_branches(&ctx, same_names, |who, ms, _, same| {
        let outer = outer.clone();
        async move {
            outer
                .scope(who, |ctx| async move {
                    Ok(branch(who, ms, ctx, same, &SCOPED_RUNS).await?)
                })
                .await
        }
    })
    .await
}

/// A timeout timer made first, awaited after a sleep that suspends, raced with a callback.
async fn early_timeout(ctx: Context, _: ()) -> Result<String, HandlerError> {
    let timeout = ctx.sleep(Duration::from_secs(3));
    let (_id, callback) = ctx.awakeable::<String>().await?;
    ctx.sleep(Duration::from_secs(6)).await?;
    Ok(match ctx.select2(callback, timeout).await {
        Either::Left(who) => format!("approved by {}", who?),
        Either::Right(_) => "timed out".into(),
    })
}

/// Ten items, three at a time: every third sleeps an hour first, every fourth fails.
async fn batch(ctx: Context, _: ()) -> Result<BatchResult<u32>, HandlerError> {
    let items: Vec<u32> = (0..10).collect();
    Ok(ctx
        .map("items", items, |ctx, i| async move {
            if i % 3 == 0 {
                ctx.sleep(Duration::from_secs(3600)).await?;
            }
            let value: u32 = ctx
                .run("work", || async move {
                    MAP_RUNS.fetch_add(1, Ordering::SeqCst);
                    if i % 4 == 1 {
                        Err(TerminalError::new(format!("item {i} is broken"))
                            .with_code(422)
                            .into())
                    } else {
                        Ok(i * 10)
                    }
                })
                .await?;
            Ok(value)
        })
        .max_concurrency(3)
        .await?)
}

async fn nested(ctx: Context, _: ()) -> Result<BatchResult<Vec<u32>>, HandlerError> {
    Ok(ctx
        .parallel("outer")
        .branch(|ctx| async move {
            let one: u32 = ctx.run("one", || async { Ok(1) }).await?;
            Ok(vec![one])
        })
        .branch(|ctx| async move {
            let inner = ctx
                .parallel("inner")
                .branch(|ctx| async move { Ok(ctx.run("two", || async { Ok(2u32) }).await?) })
                .branch(|ctx| async move {
                    ctx.sleep(Duration::from_secs(3600)).await?;
                    Ok(ctx.run("three", || async { Ok(3u32) }).await?)
                })
                .await?;
            Ok(inner.into_values()?)
        })
        .await?)
}

async fn first_two(ctx: Context, concurrency: usize) -> Result<BatchResult<u32>, HandlerError> {
    Ok(ctx
        .map("first two", (0..6).collect(), |ctx, i: u32| async move {
            Ok(ctx.run("pick", || async move { Ok(i) }).await?)
        })
        .max_concurrency(concurrency)
        .completion(CompletionPolicy::default().min_successful(2))
        .await?)
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Twelve items of a 20 ms step each, three at a time: counts how many ran at once.
async fn limited(ctx: Context, _: ()) -> Result<Vec<u32>, HandlerError> {
    let batch = ctx
        .map("limited", (0..12).collect(), |ctx, i: u32| async move {
            Ok(ctx
                .run("slow", || async move {
                    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                    MOST_RUNNING.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    RUNNING.fetch_sub(1, Ordering::SeqCst);
                    Ok(i)
                })
                .await?)
        })
        .max_concurrency(3)
        .await?;
    Ok(batch.into_values()?)
}

async fn helpers(ctx: Context, _: ()) -> Result<serde_json::Value, HandlerError> {
    let replaying_at_start = ctx.is_replaying();
    let a: u32 = ctx.run("a", || async { Ok(1) }).await?;
    let (u1, u2) = (ctx.uuid(), ctx.uuid());
    let mut rng = ctx.rng();
    let roll = rng.below(1_000_000);
    let scoped = ctx
        .scope("inner", |ctx| async move { Ok(ctx.uuid()) })
        .await?;
    let b: u32 = ctx.run("b", || async { Ok(2) }).await?;
    Ok(json!({
        "replaying_at_start": replaying_at_start,
        "replaying_after_new_step": ctx.is_replaying(),
        "sum": a + b,
        "uuids": [u1, u2, scoped],
        "roll": roll,
    }))
}

fn concurrency_endpoint() -> Endpoint {
    Endpoint::new()
        .in_process_wait(Duration::from_secs(1))
        .service(
            Service::new("svc")
                .handler("raw_join", raw_join)
                .handler("short_join", short_join)
                .handler("scoped_join", scoped_join)
                .handler("early_timeout", early_timeout)
                .handler("batch", batch)
                .handler("nested", nested)
                .handler("first_two", first_two)
                .handler("helpers", helpers)
                .handler("limited", limited),
        )
}

/// Runs `handler` attempt after attempt, firing every timer it suspends on, until it answers
/// anything but a suspension (at most `rounds` attempts).
async fn run_firing_timers(
    handler: &str,
    input: serde_json::Value,
    journal: &Arc<MemoryJournal>,
    rounds: usize,
) -> HandlerResponse {
    for _ in 0..rounds {
        let resp = concurrency_endpoint()
            .run(
                request(handler, input.clone(), journal.journal()),
                journal.clone(),
            )
            .await;
        let HandlerResponse::Suspended { timers, .. } = &resp else {
            return resp;
        };
        let mut entries = journal.entries.lock().unwrap();
        for t in timers {
            let e = entries.get_mut(&t.index).unwrap();
            e.completion = Some(StepResult::Value(json!(null)));
        }
    }
    panic!("{handler} did not finish in {rounds} attempts")
}

#[tokio::test]
async fn plain_joins_of_multi_step_branches_replay_the_first_attempts_interleaving() {
    // Distinct names used to fail with 570 on replay; equal names replayed "successfully"
    // with [[a1, b1], [b2, a2]].
    for same_names in [false, true] {
        let journal = Arc::new(MemoryJournal::default());
        let before = RAW_RUNS.load(Ordering::SeqCst);
        let resp = run_firing_timers("raw_join", json!([same_names, 0]), &journal, 3).await;
        let HandlerResponse::Completed { output, .. } = resp else {
            panic!("{resp:?}")
        };
        assert_eq!(
            output,
            json!([["a1", "a2"], ["b1", "b2"]]),
            "same names: {same_names}"
        );
        assert_eq!(
            RAW_RUNS.load(Ordering::SeqCst) - before,
            4,
            "the replay ran no step"
        );
    }
}

#[tokio::test]
async fn a_replay_whose_branches_create_other_operations_fails_loudly_instead_of_mixing_results() {
    // The first attempt's journal of the equal-names join; the replay's branch b stops after
    // its first step, so branch a's first result can never be handed over where it was.
    let journal = Arc::new(MemoryJournal::default());
    let resp = concurrency_endpoint()
        .run(
            request("raw_join", json!([true, 1]), vec![]),
            journal.clone(),
        )
        .await;
    assert!(
        matches!(resp, HandlerResponse::Suspended { .. }),
        "{resp:?}"
    );
    let resp = concurrency_endpoint()
        .run(
            request("short_join", json!(null), journal.journal()),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    let HandlerResponse::Failed { failure, .. } = resp else {
        panic!("{resp:?}")
    };
    assert_eq!(
        failure.code,
        TerminalFailure::NON_DETERMINISM,
        "{failure:?}"
    );
}

#[tokio::test]
async fn scoped_branches_replay_their_own_results_whatever_the_timing() {
    for same_names in [false, true] {
        let journal = Arc::new(MemoryJournal::default());
        let before = SCOPED_RUNS.load(Ordering::SeqCst);
        let resp = run_firing_timers("scoped_join", json!(same_names), &journal, 3).await;
        let HandlerResponse::Completed { output, .. } = resp else {
            panic!("{resp:?}")
        };
        assert_eq!(output, json!([["a1", "a2"], ["b1", "b2"]]));
        assert_eq!(
            SCOPED_RUNS.load(Ordering::SeqCst) - before,
            4,
            "each step ran once; the replay ran none"
        );
        // The inner operations carry their scope's path.
        let paths: Vec<String> = journal
            .journal()
            .iter()
            .map(|e| e.op_path().to_string())
            .collect();
        for p in ["0", "1", "0.0", "0.1", "1.0", "1.1", "2"] {
            assert!(paths.contains(&p.to_owned()), "{p} missing from {paths:?}");
        }
    }
}

#[tokio::test]
async fn a_timer_made_before_a_suspension_keeps_its_wake_time_and_wins_over_a_later_callback() {
    let journal = Arc::new(MemoryJournal::default());
    let t0 = durable_protocol::clock::now_millis();
    let resp = concurrency_endpoint()
        .run(
            request("early_timeout", json!(null), vec![]),
            journal.clone(),
        )
        .await;
    assert!(
        matches!(resp, HandlerResponse::Suspended { .. }),
        "{resp:?}"
    );
    // The timeout timer is in the journal although nothing awaited it yet.
    let recorded = journal.journal();
    let EntryKind::Sleep { wake_at_ms, .. } = recorded[0].kind else {
        panic!("{recorded:?}")
    };
    assert!(
        (t0 + 3000..t0 + 3500).contains(&wake_at_ms),
        "{wake_at_ms} vs {t0}"
    );
    // Replayed as if the attempt started a minute ago: the 6 s sleep fired, the timeout's
    // wake time passed while nothing ran, the callback arrived after or before it.
    let base = t0 - 60_000;
    for (callback_after, expected) in [(4500, "timed out"), (2000, "approved by ada")] {
        let journal = Arc::new(MemoryJournal::with_journal(recorded.clone()));
        {
            let mut entries = journal.entries.lock().unwrap();
            let wake = |e: &mut JournalEntry, at: u64| {
                if let EntryKind::Sleep { wake_at_ms, .. } = &mut e.kind {
                    *wake_at_ms = at;
                }
            };
            wake(entries.get_mut(&0).unwrap(), base + 3000);
            let sleep = entries.get_mut(&2).unwrap();
            wake(sleep, base + 6000);
            sleep.completion = Some(StepResult::Value(json!(null)));
            let callback = entries.get_mut(&1).unwrap();
            callback.completion = Some(StepResult::Value(json!("ada")));
            callback.completed_at_ms = Some(base + callback_after);
        }
        let resp = concurrency_endpoint()
            .run(
                request("early_timeout", json!(null), journal.journal()),
                journal.clone(),
            )
            .await;
        assert_eq!(
            resp,
            HandlerResponse::Completed {
                output: json!(expected),
                tail: None
            }
        );
    }
}

#[tokio::test]
async fn a_map_suspends_inside_items_replays_finished_ones_and_reports_in_item_order() {
    let journal = Arc::new(MemoryJournal::default());
    let before = MAP_RUNS.load(Ordering::SeqCst);
    let resp = run_firing_timers("batch", json!(null), &journal, 12).await;
    let HandlerResponse::Completed { output, .. } = resp else {
        panic!("{resp:?}")
    };
    let batch: BatchResult<u32> = serde_json::from_value(output).unwrap();
    assert_eq!(batch.reason, CompletionReason::AllCompleted);
    for (i, outcome) in batch.items.iter().enumerate() {
        let i = i as u32;
        if i % 4 == 1 {
            assert_eq!(outcome.error().unwrap().code(), 422, "item {i}");
        } else {
            assert_eq!(outcome.value(), Some(&(i * 10)), "item {i}");
        }
    }
    assert_eq!(batch.failure_count(), 3);
    assert_eq!(
        MAP_RUNS.load(Ordering::SeqCst) - before,
        10,
        "each item's step ran exactly once across the attempts"
    );
}

#[tokio::test]
async fn a_map_runs_at_most_max_concurrency_items_at_once() {
    let resp = concurrency_endpoint()
        .run(
            request("limited", json!(null), vec![]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    let HandlerResponse::Completed { output, .. } = resp else {
        panic!("{resp:?}")
    };
    assert_eq!(output, json!((0..12).collect::<Vec<u32>>()));
    let most = MOST_RUNNING.load(Ordering::SeqCst);
    assert!((2..=3).contains(&most), "{most} items ran at once");
}

#[tokio::test]
async fn parallels_nest() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = run_firing_timers("nested", json!(null), &journal, 4).await;
    let HandlerResponse::Completed { output, .. } = resp else {
        panic!("{resp:?}")
    };
    let batch: BatchResult<Vec<u32>> = serde_json::from_value(output).unwrap();
    assert_eq!(batch.into_values().unwrap(), vec![vec![1], vec![2, 3]]);
}

#[tokio::test]
async fn a_policy_stops_the_map_early_and_reports_what_did_not_run() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = concurrency_endpoint()
        .run(request("first_two", json!(1), vec![]), journal)
        .await;
    let HandlerResponse::Completed { output, .. } = resp else {
        panic!("{resp:?}")
    };
    let batch: BatchResult<u32> = serde_json::from_value(output).unwrap();
    assert_eq!(batch.reason, CompletionReason::MinSuccessfulReached);
    assert_eq!(
        batch.succeeded().collect::<Vec<_>>(),
        vec![(0, &0), (1, &1)]
    );
    assert!(batch.items[2..]
        .iter()
        .all(|o| *o == ItemOutcome::NotStarted));
    // Zero concurrency is the caller's error, not a hang.
    let resp = concurrency_endpoint()
        .run(
            request("first_two", json!(0), vec![]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    let HandlerResponse::Failed { failure, .. } = resp else {
        panic!("{resp:?}")
    };
    assert_eq!(failure.code, 400);
    assert!(failure.message.contains("max_concurrency"), "{failure:?}");
}

#[tokio::test]
async fn time_random_numbers_and_replay_awareness_agree_across_attempts() {
    let journal = Arc::new(MemoryJournal::default());
    let first = concurrency_endpoint()
        .run(request("helpers", json!(null), vec![]), journal.clone())
        .await;
    let HandlerResponse::Completed { output: first, .. } = first else {
        panic!("{first:?}")
    };
    assert_eq!(first["replaying_at_start"], json!(false));
    let uuids = first["uuids"].as_array().unwrap();
    assert!(uuids[0] != uuids[1] && uuids[1] != uuids[2]);
    // A replay with only the first step recorded computes the same values.
    let recorded: Vec<JournalEntry> = journal.journal().into_iter().take(1).collect();
    let again = concurrency_endpoint()
        .run(
            request("helpers", json!(null), recorded),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    let HandlerResponse::Completed { output: again, .. } = again else {
        panic!("{again:?}")
    };
    assert_eq!(again["replaying_at_start"], json!(true));
    assert_eq!(again["replaying_after_new_step"], json!(false));
    assert_eq!(again["uuids"], first["uuids"]);
    assert_eq!(again["roll"], first["roll"]);
}

#[tokio::test]
async fn sleeps_and_awakeables_carry_their_names_into_the_journal() {
    async fn named(ctx: Context, _: ()) -> Result<(), HandlerError> {
        let (_id, _approval) = ctx.awakeable_named::<String>("manager approval").await?;
        ctx.sleep_named("cool-off", Duration::from_millis(5))
            .await?;
        Ok(())
    }
    let journal = Arc::new(MemoryJournal::default());
    let ep = Endpoint::new().service(Service::new("svc").handler("named", named));
    let resp = ep
        .run(request("named", json!(null), vec![]), journal.clone())
        .await;
    assert!(
        matches!(resp, HandlerResponse::Completed { .. }),
        "{resp:?}"
    );
    let names: Vec<String> = journal
        .journal()
        .iter()
        .map(|e| e.kind.name().into_owned())
        .collect();
    assert_eq!(names, vec!["manager approval", "cool-off"]);
}

#[tokio::test]
async fn wait_for_callback_submits_the_id_once_then_waits_or_times_out() {
    static SUBMITTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    async fn review(ctx: Context, timeout_ms: u64) -> Result<String, HandlerError> {
        let verdict = ctx
            .wait_for_callback::<String, _, _>(
                "review",
                Some(Duration::from_millis(timeout_ms)),
                |id| async move {
                    SUBMITTED.lock().unwrap().push(id);
                    Ok(())
                },
            )
            .await;
        match verdict {
            Ok(v) => Ok(v),
            Err(e) if e.code() == 408 => Ok("no answer".into()),
            Err(e) => Err(e.into()),
        }
    }
    let ep = || {
        Endpoint::new()
            .in_process_wait(Duration::from_secs(1))
            .service(Service::new("svc").handler("review", review))
    };
    let journal = Arc::new(MemoryJournal::default());
    let resp = ep()
        .run(request("review", json!(60_000), vec![]), journal.clone())
        .await;
    assert!(
        matches!(resp, HandlerResponse::Suspended { .. }),
        "{resp:?}"
    );
    let id = SUBMITTED.lock().unwrap().last().cloned().unwrap();
    assert!(id.starts_with("awk_svc."), "{id}");
    journal
        .entries
        .lock()
        .unwrap()
        .get_mut(&0)
        .unwrap()
        .completion = Some(StepResult::Value(json!("approved")));
    let before = SUBMITTED.lock().unwrap().len();
    let resp = ep()
        .run(
            request("review", json!(60_000), journal.journal()),
            journal.clone(),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("approved"),
            tail: None
        }
    );
    assert_eq!(SUBMITTED.lock().unwrap().len(), before, "submitted once");
    let resp = ep()
        .run(
            request("review", json!(30), vec![]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("no answer"),
            tail: None
        }
    );
}

#[tokio::test]
async fn the_replay_aware_filter_drops_what_a_replay_logs_again() {
    use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
    use tracing_subscriber::Layer;

    /// Collects the `message` of every event it is given.
    struct Collect(Arc<Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> Layer<S> for Collect {
        fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
            struct Message<'a>(&'a mut String);
            impl tracing::field::Visit for Message<'_> {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    if f.name() == "message" {
                        *self.0 = format!("{v:?}");
                    }
                }
            }
            let mut m = String::new();
            event.record(&mut Message(&mut m));
            self.0.lock().unwrap().push(m);
        }
    }
    async fn chatty(ctx: Context, _: ()) -> Result<(), HandlerError> {
        tracing::info!("before the first step");
        ctx.run("a", || async { Ok(1u8) }).await?;
        ctx.run("b", || async { Ok(2u8) }).await?;
        tracing::info!("after the new step");
        Ok(())
    }
    let lines = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry()
        .with(Collect(lines.clone()).with_filter(crate::ReplayAwareFilter));
    let _guard = tracing::subscriber::set_default(subscriber);
    let ep = Endpoint::new().service(Service::new("svc").handler("chatty", chatty));
    let recorded = vec![run_entry(0, "a", json!(1))];
    let resp = ep
        .run(
            request("chatty", json!(null), recorded),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert!(
        matches!(resp, HandlerResponse::Completed { .. }),
        "{resp:?}"
    );
    let lines = lines.lock().unwrap().clone();
    assert!(
        !lines.iter().any(|l| l == "before the first step"),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "after the new step"), "{lines:?}");
}
