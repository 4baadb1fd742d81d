//! Calls and sends: program order, dispatch, callee errors.

use super::*;
use durable_protocol::{ObjectKey, Target};

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
            idempotency_key: None,
            attach: false,
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

/// An idempotent call, a workflow's submit, call and attach, and a promise of another
/// workflow resolved, each as its entry records it.
async fn shared_children(ctx: Context, _: ()) -> Result<(), HandlerError> {
    let _charge = ctx.call_idempotent::<u32>("payments", "charge", "order-7", &7);
    let bad = ctx.call_idempotent::<u32>("payments", "charge", "", &7);
    let _run = ctx.workflow_submit("signup", "ada", &"ada@example.com")?;
    let _called = ctx.workflow_call::<bool>("signup", "bea", &"bea@example.com");
    let _attached = ctx.workflow_attach::<bool>("signup", "ada");
    ctx.resolve_workflow_promise("signup", "ada", "approved", &true)
        .await?;
    let err = bad.await.expect_err("an empty idempotency key is refused");
    assert_eq!(err.code(), 400);
    Ok(())
}

#[tokio::test]
async fn idempotent_calls_and_workflow_runs_name_the_children_they_share() {
    let journal = Arc::new(MemoryJournal::default());
    let dispatcher = Arc::new(MemoryDispatcher::default());
    let endpoint = Endpoint::new().service(Service::new("svc").handler("shared", shared_children));
    let resp = endpoint
        .run_with(
            request("shared", json!(null), vec![]),
            journal.clone(),
            dispatcher.clone(),
        )
        .await;
    assert!(
        matches!(resp, HandlerResponse::Completed { .. }),
        "{resp:?}"
    );
    let entries: Vec<_> = journal.entries.lock().unwrap().values().cloned().collect();
    let signup = ServiceName::new("signup").unwrap();
    let charge = Target {
        service: ServiceName::new("payments").unwrap(),
        key: None,
        handler: HandlerName::new("charge").unwrap(),
    };
    let key = durable_protocol::IdempotencyKey::new("order-7").unwrap();
    assert!(matches!(
        &entries[0].kind,
        EntryKind::Call { child, idempotency_key: Some(k), attach: false, .. }
            if *child == charge.idempotent_id(&key) && *k == key
    ));
    // The malformed key took index 1 and recorded nothing.
    assert!(matches!(
        &entries[1].kind,
        EntryKind::Send { child, idempotency_key: None, .. }
            if *child == InvocationId::for_workflow(&signup, &ObjectKey::new("ada").unwrap())
    ));
    assert!(matches!(
        &entries[2].kind,
        EntryKind::Call { child, attach: false, .. }
            if *child == InvocationId::for_workflow(&signup, &ObjectKey::new("bea").unwrap())
    ));
    assert!(matches!(
        &entries[3].kind,
        EntryKind::Call { child, attach: true, input, .. }
            if *child == InvocationId::for_workflow(&signup, &ObjectKey::new("ada").unwrap())
                && input.is_null()
    ));
    assert!(matches!(&entries[4].kind, EntryKind::Run { name, .. } if name == "resolve promise"));
    assert_eq!(
        *dispatcher.promises.lock().unwrap(),
        vec![(
            "signup/ada".to_string(),
            "approved".to_string(),
            StepResult::Value(json!(true))
        )]
    );
    assert_eq!(*dispatcher.dispatched.lock().unwrap(), vec![0, 2, 3, 4]);
}
