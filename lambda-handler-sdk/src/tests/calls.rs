//! Calls and sends: program order, dispatch, callee errors.

use super::*;

#[tokio::test]
async fn calls_and_sends_are_recorded_and_dispatched_in_program_order() {
    let journal = Arc::new(MemoryJournal::default());
    let dispatcher = Arc::new(MemoryDispatcher::default());
    let resp = endpoint()
        .run_with(
            request("fan_out", json!(4), vec![]),
            journal.clone(),
            dispatcher.clone(),
        )
        .await;
    let HandlerResponse::Suspended { waiting_on, timers } = resp else {
        panic!("{resp:?}")
    };
    assert_eq!(waiting_on, vec![0, 1, 2, 3]);
    assert!(timers.is_empty());
    assert_eq!(*dispatcher.dispatched.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    let entries: Vec<_> = journal.entries.lock().unwrap().values().cloned().collect();
    assert!(
        matches!(&entries[4].kind, EntryKind::Send { target, .. } if target.display() == "audit/log")
    );
    let parent = InvocationId::derived(&ServiceName::new("svc").unwrap(), &["test", "fan_out"]);
    assert!(
        matches!(&entries[2].kind, EntryKind::Call { child, input, .. } if *child == InvocationId::child(&parent, 2, &ServiceName::new("math").unwrap()) && *input == json!(2))
    );

    // Replayed with the children done and the dispatches acknowledged: no new dispatch.
    let done: Vec<_> = entries
        .into_iter()
        .map(|mut e| {
            e.dispatched = true;
            if let EntryKind::Call { input, .. } = &e.kind {
                let i = input.as_u64().unwrap();
                e.completion = Some(StepResult::Value(json!(i * i)));
            }
            e
        })
        .collect();
    let again = Arc::new(MemoryDispatcher::default());
    let resp = endpoint()
        .run_with(
            request("fan_out", json!(4), done.clone()),
            Arc::new(MemoryJournal::default()),
            again.clone(),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(1 + 4 + 9),
            tail: None,
        }
    );
    assert!(again.dispatched.lock().unwrap().is_empty());

    // Not acknowledged (e.g. the dispatch was lost): replay dispatches again.
    let mut lost = done;
    lost[1].dispatched = false;
    lost[4].dispatched = false;
    let again = Arc::new(MemoryDispatcher::default());
    endpoint()
        .run_with(
            request("fan_out", json!(4), lost),
            Arc::new(MemoryJournal::default()),
            again.clone(),
        )
        .await;
    assert_eq!(*again.dispatched.lock().unwrap(), vec![1, 4]);
}

#[tokio::test]
async fn a_callees_terminal_error_reaches_the_caller() {
    let mut entries = Vec::new();
    let parent = InvocationId::derived(&ServiceName::new("svc").unwrap(), &["test", "fan_out"]);
    let target = durable_protocol::Target {
        key: None,
        service: ServiceName::new("math").unwrap(),
        handler: HandlerName::new("square").unwrap(),
    };
    let mut call = JournalEntry::new(
        0,
        EntryKind::Call {
            target,
            input: json!(0),
            child: InvocationId::child(&parent, 0, &ServiceName::new("math").unwrap()),
        },
    );
    call.dispatched = true;
    call.completion = Some(StepResult::Failure(TerminalFailure::new(
        422,
        "negative zero",
    )));
    entries.push(call);
    let resp = endpoint()
        .run(
            request("fan_out", json!(1), entries),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Failed {
            failure: TerminalFailure::new(422, "negative zero"),
            tail: None,
        }
    );
}
