//! Timers and awakeables: in-process waits, suspension, completions and selects.

use super::*;

#[tokio::test]
async fn short_sleeps_wait_in_process_and_record_their_firing() {
    let journal = Arc::new(MemoryJournal::default());
    let started = Instant::now();
    let resp = endpoint()
        .run(request("nap", json!(20), vec![]), journal.clone())
        .await;
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("rested"),
            tail: None,
        }
    );
    let entries = journal.entries.lock().unwrap();
    assert!(matches!(entries[&0].kind, EntryKind::Sleep { .. }));
    assert_eq!(entries[&0].completion, Some(StepResult::Value(json!(null))));
}

#[tokio::test]
async fn long_sleeps_suspend_with_their_timer() {
    let journal = Arc::new(MemoryJournal::default());
    let before = durable_protocol::clock::now_millis();
    let resp = endpoint()
        .run(request("nap", json!(60_000), vec![]), journal.clone())
        .await;
    match resp {
        HandlerResponse::Suspended { waiting_on, timers } => {
            assert_eq!(waiting_on, vec![0]);
            assert_eq!(timers.len(), 1);
            assert!(timers[0].wake_at_ms >= before + 60_000);
        }
        other => panic!("expected a suspension, got {other:?}"),
    }
    // Replayed with the timer fired: it completes without waiting.
    let mut fired = journal.entries.lock().unwrap()[&0].clone();
    fired.completion = Some(StepResult::Value(json!(null)));
    let resp = endpoint()
        .run(request("nap", json!(60_000), vec![fired]), journal)
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("rested"),
            tail: None,
        }
    );
}

#[tokio::test]
async fn a_completion_found_when_re_checking_prevents_the_suspension() {
    // The timer fired after the push was built: the journal holds the completion.
    let journal = Arc::new(MemoryJournal::default());
    let mut entry = JournalEntry::new(
        0,
        EntryKind::Sleep {
            name: "sleep".into(),
            wake_at_ms: 1,
        },
    );
    entry.completion = Some(StepResult::Value(json!(null)));
    // The push still shows it incomplete and far away.
    let mut pushed = entry.clone();
    pushed.completion = None;
    if let EntryKind::Sleep { wake_at_ms, .. } = &mut pushed.kind {
        *wake_at_ms = u64::MAX / 4;
    }
    journal.entries.lock().unwrap().insert(0, entry);
    let resp = endpoint()
        .run(request("nap", json!(60_000), vec![pushed]), journal)
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("rested"),
            tail: None,
        }
    );
}

#[tokio::test]
async fn awakeables_suspend_and_resume_with_their_value_or_the_timeout() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("approval", json!(60_000), vec![]), journal.clone())
        .await;
    let HandlerResponse::Suspended { waiting_on, timers } = resp else {
        panic!("{resp:?}")
    };
    assert_eq!(
        waiting_on,
        vec![0, 1],
        "the awakeable and the timeout timer"
    );
    assert_eq!(timers.iter().map(|t| t.index).collect::<Vec<_>>(), vec![1]);

    // Resolved: replay picks the awakeable and records it as the winner.
    let recorded: Vec<_> = journal.entries.lock().unwrap().values().cloned().collect();
    let mut resolved = recorded.clone();
    resolved[0].completion = Some(StepResult::Value(json!("ada")));
    let resp = endpoint()
        .run(
            request("approval", json!(60_000), resolved.clone()),
            journal.clone(),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("approved by ada"),
            tail: None,
        }
    );
    let select = journal.entries.lock().unwrap()[&2].clone();
    assert_eq!(
        select.kind,
        EntryKind::Select {
            of: vec![0, 1],
            winner: 0
        }
    );

    // A later replay where the timer has fired too still returns the recorded winner.
    let mut both = resolved;
    both[1].completion = Some(StepResult::Value(json!(null)));
    both.push(select);
    let resp = endpoint()
        .run(
            request("approval", json!(60_000), both),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("approved by ada"),
            tail: None,
        }
    );
}

#[tokio::test]
async fn the_timeout_wins_when_nobody_resolves() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("approval", json!(30), vec![]), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("timed out"),
            tail: None,
        }
    );
    let entries = journal.entries.lock().unwrap();
    assert_eq!(
        entries[&2].kind,
        EntryKind::Select {
            of: vec![0, 1],
            winner: 1
        }
    );
}

#[tokio::test]
async fn rejected_awakeables_fail_the_wait_terminally() {
    let journal = Arc::new(MemoryJournal::default());
    let mut awk = JournalEntry::new(
        0,
        EntryKind::Awakeable {
            name: "awakeable".into(),
            timeout: None,
        },
    );
    awk.completion = Some(StepResult::Failure(TerminalFailure::new(400, "no way")));
    let resp = endpoint()
        .run(request("approval", json!(60_000), vec![awk]), journal)
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Failed {
            failure: TerminalFailure::new(400, "no way"),
            tail: None,
        }
    );
}

#[tokio::test]
async fn timers_waited_together_run_concurrently() {
    let journal = Arc::new(MemoryJournal::default());
    let started = Instant::now();
    let resp = endpoint()
        .run(request("two_timers", json!(null), vec![]), journal)
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(2),
            tail: None
        }
    );
    // One after the other would take at least 500 ms.
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_sleep_where_the_journal_has_a_step_is_a_divergence() {
    let resp = endpoint()
        .run(
            request("nap", json!(10), vec![run_entry(0, "a", json!(1))]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert!(
        matches!(resp, HandlerResponse::Failed { failure, .. } if failure.code == 570 && failure.message.contains("asks for sleep"))
    );
}

/// Regression: an in-process timer racing an awakeable must not be lost while its firing is
/// being written (the handler is parked on that write, not blocked on the outside).
#[tokio::test]
async fn a_timer_fired_in_process_is_not_lost_while_its_completion_is_written() {
    for _ in 0..5 {
        let journal = Arc::new(MemoryJournal {
            completion_delay: Some(Duration::from_millis(40)),
            ..MemoryJournal::default()
        });
        let resp = endpoint()
            .run(request("approval", json!(20), vec![]), journal)
            .await;
        assert_eq!(
            resp,
            HandlerResponse::Completed {
                output: json!("timed out"),
                tail: None,
            }
        );
    }
}

/// Waits for an awakeable that times out after `ms` (0 is refused).
async fn timed_awakeable(ctx: Context, ms: u64) -> Result<String, HandlerError> {
    let options = AwakeableOptions::named("timed").timeout(Duration::from_millis(ms));
    let (_id, answer) = ctx.awakeable_with::<String>(options).await?;
    match answer.await {
        Ok(v) => Ok(v),
        Err(e) if e.code() == 408 => Ok(format!("timed out: {}", e.message())),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test]
async fn an_awakeable_with_a_timeout_suspends_with_its_deadline_and_replays_it() {
    let endpoint = Endpoint::new().service(Service::new("svc").handler("timed", timed_awakeable));
    let journal = Arc::new(MemoryJournal::default());
    let before = durable_protocol::clock::now_millis();
    let resp = endpoint
        .run(request("timed", json!(60_000), vec![]), journal.clone())
        .await;
    let HandlerResponse::Suspended { waiting_on, timers } = &resp else {
        panic!("{resp:?}")
    };
    assert_eq!(waiting_on, &vec![0]);
    let entry = journal.journal()[0].clone();
    let EntryKind::Awakeable {
        timeout: Some(timeout),
        ..
    } = entry.kind
    else {
        panic!("{entry:?}")
    };
    assert!(timeout.created_at_ms >= before);
    assert_eq!(timeout.until_ms, Some(timeout.created_at_ms + 60_000));
    assert_eq!(
        timers,
        &vec![durable_protocol::Timer {
            index: 0,
            wake_at_ms: timeout.created_at_ms + 60_000
        }],
        "the orchestrator wakes it at its deadline"
    );

    // A replay later keeps the recorded deadline; the orchestrator's timeout is a 408.
    let mut timed_out = entry.clone();
    timed_out.completion = Some(StepResult::Failure(TerminalFailure::timed_out("awakeable")));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let replay = Arc::new(MemoryJournal::default());
    let resp = endpoint
        .run(request("timed", json!(60_000), vec![timed_out]), replay)
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("timed out: awakeable timed out"),
            tail: None
        }
    );

    let resp = endpoint
        .run(
            request("timed", json!(0), vec![]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert!(
        matches!(&resp, HandlerResponse::Failed { failure, .. } if failure.code == 400),
        "{resp:?}"
    );
}

/// Polls until the third check; counts how often each check's closure ran.
async fn polls(ctx: Context, max_checks: u32) -> Result<String, HandlerError> {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let found: Result<String, TerminalError> = ctx
        .poll("ready", 10u32, |seen, n| async move {
            RUNS.fetch_add(1, Ordering::SeqCst);
            if n == 3 {
                Ok(Check::Done(format!("ready after {seen}")))
            } else {
                Ok(Check::Again(seen + n))
            }
        })
        .wait(WaitStrategy::fixed(Duration::from_millis(5)))
        .max_checks(max_checks)
        .await;
    match found {
        Ok(v) => Ok(format!(
            "{v}; closures ran {}",
            RUNS.swap(0, Ordering::SeqCst)
        )),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test]
async fn a_poll_threads_its_state_through_checks_with_timers_between_and_replays_none() {
    let endpoint = Endpoint::new().service(Service::new("svc").handler("polls", polls));
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint
        .run(request("polls", json!(5), vec![]), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("ready after 13; closures ran 3"),
            tail: None
        },
        "states 10 -> 11 -> 13, done at the third check"
    );
    let kinds: Vec<String> = journal
        .journal()
        .iter()
        .map(|e| format!("{:?} {}", e.kind.tag(), e.kind.name()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "Run ready",
            "Sleep ready wait",
            "Run ready",
            "Sleep ready wait",
            "Run ready"
        ],
        "two entries per check, none after the last"
    );
    // A replay of the whole journal runs no check again.
    let replay = Arc::new(MemoryJournal::default());
    let resp = endpoint
        .run(request("polls", json!(5), journal.journal()), replay)
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("ready after 13; closures ran 0"),
            tail: None
        }
    );

    // Out of checks: a terminal 408; a bound of 0 is a 400.
    let resp = endpoint
        .run(
            request("polls", json!(2), vec![]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert!(
        matches!(&resp, HandlerResponse::Failed { failure, .. } if failure.code == 408 && failure.message.contains("after 2 checks")),
        "{resp:?}"
    );
    let resp = endpoint
        .run(
            request("polls", json!(0), vec![]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert!(
        matches!(&resp, HandlerResponse::Failed { failure, .. } if failure.code == 400),
        "{resp:?}"
    );
}
