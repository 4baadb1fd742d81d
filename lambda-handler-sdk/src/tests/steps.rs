//! Steps: recording, replay, racing writers, failures and retries.

use super::*;

#[tokio::test]
async fn fresh_run_writes_one_entry_per_step() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("three", json!(1), vec![]), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(25),
            tail: None
        }
    );
    // Steps 0 and 1 are appended; the last one is answered with the outcome.
    assert_eq!(journal.writes.load(Ordering::SeqCst), 2);
    assert_eq!(
        journal
            .tails
            .lock()
            .unwrap()
            .iter()
            .map(untimed)
            .collect::<Vec<_>>(),
        vec![run_entry(2, "c", json!(25))]
    );
    let entries = journal.entries.lock().unwrap();
    assert_eq!(untimed(&entries[&0]), run_entry(0, "a", json!(2)));
    assert_eq!(untimed(&entries[&2]), run_entry(2, "c", json!(25)));
}

#[tokio::test]
async fn appends_carry_the_pushed_epoch_and_journal_ttl() {
    let journal = Arc::new(MemoryJournal::default());
    let req = InvokeRequest {
        epoch: 4,
        journal_expires_at: Some(1_900_000_000),
        ..request("three", json!(1), vec![])
    };
    endpoint().run(req, journal.clone()).await;
    let expected = durable_store::Writer {
        epoch: 4,
        expires_at: Some(1_900_000_000),
    };
    assert_eq!(*journal.writers.lock().unwrap(), vec![expected; 2]);
    // A push without a TTL (the journal is kept): entries are written without one.
    let kept = Arc::new(MemoryJournal::default());
    endpoint()
        .run(request("three", json!(1), vec![]), kept.clone())
        .await;
    assert!(kept
        .writers
        .lock()
        .unwrap()
        .iter()
        .all(|w| w.expires_at.is_none()));
}

#[tokio::test]
async fn replay_returns_recorded_results_without_running_or_writing() {
    let journal = Arc::new(MemoryJournal::default());
    // Recorded values differ from what the closures would compute: replay must use them.
    let recorded = vec![run_entry(0, "a", json!(100)), run_entry(1, "b", json!(7))];
    let resp = endpoint()
        .run(request("three", json!(1), recorded), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(12),
            tail: None
        }
    );
    assert_eq!(
        journal.writes.load(Ordering::SeqCst),
        0,
        "only the new step is recorded, and with the outcome"
    );
    assert_eq!(
        journal
            .tails
            .lock()
            .unwrap()
            .iter()
            .map(untimed)
            .collect::<Vec<_>>(),
        vec![run_entry(2, "c", json!(12))]
    );
}

#[tokio::test]
async fn full_replay_runs_no_closure() {
    let journal = Arc::new(MemoryJournal::default());
    let recorded = vec![
        run_entry(0, "a", json!(1)),
        run_entry(1, "b", json!(2)),
        run_entry(2, "c", json!(3)),
    ];
    let resp = endpoint()
        .run(request("three", json!(1), recorded), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(3),
            tail: None
        }
    );
    // A closure that ran would have written its entry.
    assert_eq!(journal.writes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn divergent_replay_is_a_non_determinism_failure() {
    let journal = Arc::new(MemoryJournal::default());
    let recorded = vec![run_entry(0, "something-else", json!(1))];
    let resp = endpoint()
        .run(request("three", json!(1), recorded), journal.clone())
        .await;
    match resp {
        HandlerResponse::Failed { failure, .. } => {
            assert_eq!(failure.code, TerminalFailure::NON_DETERMINISM);
            assert!(
                failure.message.contains("journal entry 0"),
                "{}",
                failure.message
            );
            assert!(
                failure.message.contains("something-else"),
                "{}",
                failure.message
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(journal.writes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn recorded_value_of_the_wrong_type_is_reported() {
    let journal = Arc::new(MemoryJournal::default());
    let recorded = vec![run_entry(0, "a", json!("not a number"))];
    let resp = endpoint()
        .run(request("three", json!(1), recorded), journal)
        .await;
    assert!(
        matches!(resp, HandlerResponse::Failed { failure, .. } if failure.code == 570 && failure.message.contains("does not decode"))
    );
}

#[tokio::test]
async fn a_concurrent_writer_wins_and_the_next_attempt_builds_on_its_result() {
    let journal = Arc::new(MemoryJournal::default());
    // Another attempt recorded step 0 after this attempt's push was built.
    journal
        .entries
        .lock()
        .unwrap()
        .insert(0, run_entry(0, "a", json!(40)));
    let resp = endpoint()
        .run(request("three", json!(1), vec![]), journal.clone())
        .await;
    // This attempt's step 0 (2) was used before its write found 40 recorded: it stops before
    // step 1 runs, and asks to be retried at once.
    match resp {
        HandlerResponse::Retryable {
            message,
            retry_after_ms: Some(0),
            ..
        } => assert!(message.contains("recorded step \"a\""), "{message}"),
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(
        journal.entries.lock().unwrap().len(),
        1,
        "nothing else written"
    );
    // The retry replays the recorded result.
    let recorded = journal.entries.lock().unwrap().values().cloned().collect();
    let resp = endpoint()
        .run(request("three", json!(1), recorded), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(405),
            tail: None
        }
    );
}

#[tokio::test]
async fn a_concurrent_writer_of_the_same_result_is_adopted_without_a_retry() {
    let journal = Arc::new(MemoryJournal::default());
    journal
        .entries
        .lock()
        .unwrap()
        .insert(0, run_entry(0, "a", json!(2)));
    let resp = endpoint()
        .run(request("three", json!(1), vec![]), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(25),
            tail: None
        }
    );
}

#[tokio::test]
async fn a_concurrent_writer_with_another_step_is_a_divergence() {
    let journal = Arc::new(MemoryJournal::default());
    journal
        .entries
        .lock()
        .unwrap()
        .insert(0, run_entry(0, "other", json!(40)));
    let resp = endpoint()
        .run(request("three", json!(1), vec![]), journal)
        .await;
    assert!(matches!(resp, HandlerResponse::Failed { failure, .. } if failure.code == 570));
}

#[tokio::test]
async fn terminal_step_failures_are_recorded_and_replayed() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("fail", json!(null), vec![]), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Failed {
            failure: TerminalFailure::new(402, "card declined"),
            tail: None,
        }
    );
    let recorded: Vec<_> = journal.entries.lock().unwrap().values().cloned().collect();
    assert_eq!(recorded.len(), 2);
    // Replaying the recorded failure gives the same outcome without writing.
    let again = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("fail", json!(null), recorded), again.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Failed {
            failure: TerminalFailure::new(402, "card declined"),
            tail: None,
        }
    );
    assert_eq!(again.writes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn retryable_step_failures_end_the_attempt_until_the_policy_is_exhausted() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("flaky", json!(null), vec![]), journal.clone())
        .await;
    match resp {
        HandlerResponse::Retryable {
            step,
            retry_after_ms,
            message,
        } => {
            assert_eq!(step, Some(0));
            assert_eq!(retry_after_ms, Some(100));
            assert!(message.contains("timeout talking to the bank"));
        }
        other => panic!("expected retryable, got {other:?}"),
    }
    assert_eq!(
        journal.writes.load(Ordering::SeqCst),
        0,
        "a retryable failure records nothing"
    );

    // Third attempt (two failures so far): the policy is exhausted and the failure recorded.
    let mut req = request("flaky", json!(null), vec![]);
    req.step_failures = Some(StepFailures { index: 0, count: 2 });
    let resp = endpoint().run(req, journal.clone()).await;
    assert!(
        matches!(&resp, HandlerResponse::Failed { failure, .. } if failure.message.contains("failed 3 times")),
        "{resp:?}"
    );
    assert_eq!(journal.writes.load(Ordering::SeqCst), 0);
    assert_eq!(
        journal.tails.lock().unwrap().len(),
        1,
        "recorded with the outcome"
    );
}

#[tokio::test]
async fn bad_input_and_unknown_handlers_fail_terminally() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("three", json!("nope"), vec![]), journal.clone())
        .await;
    assert!(
        matches!(resp, HandlerResponse::Failed { failure, .. } if failure.code == 400 && failure.message.contains("invalid input"))
    );
    let resp = endpoint()
        .run(request("missing", json!(1), vec![]), journal)
        .await;
    assert!(matches!(resp, HandlerResponse::Failed { failure, .. } if failure.code == 404));
}

#[tokio::test]
async fn panics_become_retryable_failures() {
    async fn boom(_ctx: Context, _: ()) -> Result<(), HandlerError> {
        panic!("kaboom")
    }
    let ep = Endpoint::new().service(Service::new("svc").handler("boom", boom));
    let resp = ep
        .run(
            request("boom", json!(null), vec![]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert!(
        matches!(resp, HandlerResponse::Retryable { message, .. } if message.contains("kaboom"))
    );
}

#[tokio::test]
async fn the_closure_sees_its_attempt_and_a_predicate_stops_retries() {
    async fn counts(ctx: Context, _: ()) -> Result<u32, HandlerError> {
        Ok(ctx
            .run("counts", || async {
                let attempt = crate::step_attempt().expect("inside a step");
                if attempt < 3 {
                    Err(HandlerError::retryable(format!(
                        "attempt {attempt}: timeout"
                    )))
                } else {
                    Ok(attempt)
                }
            })
            .await?)
    }
    async fn picky(ctx: Context, _: ()) -> Result<(), HandlerError> {
        assert_eq!(crate::step_attempt(), None, "outside a step");
        ctx.run("charge", || async {
            Err::<(), _>(HandlerError::retryable("invalid card"))
        })
        .retry_policy(RetryPolicy::default().retry_if(|m| m.contains("timeout")))
        .await?;
        Ok(())
    }
    let ep = Endpoint::new().service(
        Service::new("svc")
            .handler("counts", counts)
            .handler("picky", picky),
    );
    let journal = Arc::new(MemoryJournal::default());
    let resp = ep
        .run(request("counts", json!(null), vec![]), journal.clone())
        .await;
    assert!(
        matches!(&resp, HandlerResponse::Retryable { message, .. } if message.contains("attempt 1")),
        "{resp:?}"
    );
    let mut req = request("counts", json!(null), vec![]);
    req.step_failures = Some(StepFailures { index: 0, count: 2 });
    let resp = ep.run(req, journal).await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(3),
            tail: None
        }
    );
    let resp = ep
        .run(
            request("picky", json!(null), vec![]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert!(
        matches!(&resp, HandlerResponse::Failed { failure, .. } if failure.message.contains("does not retry")),
        "{resp:?}"
    );
}

async fn tenant(ctx: Context, _: ()) -> Result<Option<String>, HandlerError> {
    Ok(ctx.headers().get("X-Tenant").map(str::to_owned))
}

#[tokio::test]
async fn a_handler_reads_the_headers_its_push_carried() {
    let endpoint = Endpoint::new().service(Service::new("svc").handler("tenant", tenant));
    let headers = durable_protocol::Headers::from_request([("x-tenant", "acme")]).unwrap();
    let req = InvokeRequest {
        headers,
        ..request("tenant", json!(null), vec![])
    };
    let resp = endpoint.run(req, Arc::new(MemoryJournal::default())).await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("acme"),
            tail: None
        }
    );
    let resp = endpoint
        .run(
            request("tenant", json!(null), vec![]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(null),
            tail: None
        }
    );
}
