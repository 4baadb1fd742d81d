//! Virtual objects and workflows: state, shared reads, promises.

use super::*;
use crate::{
    ObjectContext, SharedObjectContext, SharedWorkflowContext, VirtualObject, Workflow,
    WorkflowContext,
};
use durable_protocol::{EagerState, HandlerKind, ObjectKey, StateDelta};

async fn add(ctx: ObjectContext, n: i64) -> Result<serde_json::Value, HandlerError> {
    let old = ctx.get::<i64>("count").await?.unwrap_or(0);
    ctx.set("count", &(old + n))?;
    let seen = ctx.get::<i64>("count").await?;
    ctx.run("noop", || async { Ok(()) }).await?;
    Ok(json!({"old": old, "new": old + n, "seen": seen}))
}

async fn wipe(ctx: ObjectContext, _: ()) -> Result<Vec<String>, HandlerError> {
    ctx.set("a", &1)?;
    ctx.clear_all();
    ctx.set("b", &2)?;
    Ok(ctx.state_keys().await)
}

async fn peek(ctx: SharedObjectContext, _: ()) -> Result<Option<i64>, HandlerError> {
    Ok(ctx.get::<i64>("count").await?)
}

async fn signup(ctx: WorkflowContext, email: String) -> Result<String, HandlerError> {
    ctx.set("email", &email)?;
    let link: String = ctx.promise("link").await?;
    Ok(format!("{email} confirmed with {link}"))
}

async fn confirm(ctx: SharedWorkflowContext, link: String) -> Result<(), HandlerError> {
    ctx.resolve_promise("link", &link).await?;
    Ok(())
}

fn endpoint() -> Endpoint {
    Endpoint::new()
        .service(
            VirtualObject::new("counter")
                .exclusive("add", add)
                .exclusive("wipe", wipe)
                .shared("peek", peek),
        )
        .service(Workflow::new("signup", signup).shared("confirm", confirm))
}

fn keyed_request(
    service: &str,
    handler: &str,
    input: serde_json::Value,
    state: Option<EagerState>,
) -> InvokeRequest {
    InvokeRequest {
        service: ServiceName::new(service).unwrap(),
        key: Some(ObjectKey::new("k").unwrap()),
        handler_kind: Some(HandlerKind::Exclusive),
        state,
        invocation_id: InvocationId::derived(
            &ServiceName::new(service).unwrap(),
            &["keyed", handler],
        ),
        ..request(handler, input, vec![])
    }
}

#[tokio::test]
async fn discovery_describes_kinds() {
    let d = endpoint().discover();
    let counter = d
        .services
        .iter()
        .find(|s| s.name.as_str() == "counter")
        .unwrap();
    assert_eq!(counter.kind, durable_protocol::ServiceKind::Object);
    let kinds: Vec<_> = counter
        .handlers
        .iter()
        .map(|h| (h.name.as_str(), h.kind))
        .collect();
    assert!(kinds.contains(&("peek", Some(HandlerKind::Shared))));
    assert!(kinds.contains(&("add", Some(HandlerKind::Exclusive))));
    let signup = d
        .services
        .iter()
        .find(|s| s.name.as_str() == "signup")
        .unwrap();
    assert!(signup
        .handlers
        .iter()
        .any(|h| h.name.as_str() == "run" && h.kind == Some(HandlerKind::Workflow)));
}

#[tokio::test]
async fn state_changes_are_journaled_and_seen_by_the_handler() {
    let journal = Arc::new(MemoryJournal::default());
    let eager = EagerState {
        values: [("count".to_string(), json!(5))].into(),
        complete: true,
    };
    let resp = endpoint()
        .run(
            keyed_request("counter", "add", json!(2), Some(eager.clone())),
            journal.clone(),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!({"old": 5, "new": 7, "seen": 7}),
            tail: None,
        }
    );
    // Complete eager state: no reads from the store.
    assert_eq!(journal.state_reads.load(Ordering::SeqCst), 0);
    let entries: Vec<JournalEntry> = journal.entries.lock().unwrap().values().cloned().collect();
    let delta = StateDelta::from_journal(&entries);
    assert_eq!(delta.changes["count"], Some(json!(7)));
    // Replay with the journal: no new writes, same answer.
    let writes = journal.writes.load(Ordering::SeqCst);
    let mut req = keyed_request("counter", "add", json!(2), Some(eager));
    req.journal = entries;
    let again = endpoint().run(req, journal.clone()).await;
    assert_eq!(again, resp);
    assert_eq!(journal.writes.load(Ordering::SeqCst), writes);
}

#[tokio::test]
async fn state_not_pushed_is_read_lazily() {
    let journal = Arc::new(MemoryJournal::default());
    journal
        .state
        .lock()
        .unwrap()
        .insert("count".into(), json!(40));
    let resp = endpoint()
        .run(
            keyed_request("counter", "add", json!(2), None),
            journal.clone(),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!({"old": 40, "new": 42, "seen": 42}),
            tail: None,
        }
    );
    assert_eq!(journal.state_reads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn clear_all_then_set_leaves_only_later_keys() {
    let journal = Arc::new(MemoryJournal::default());
    journal.state.lock().unwrap().insert("old".into(), json!(1));
    let resp = endpoint()
        .run(
            keyed_request("counter", "wipe", json!(null), None),
            journal.clone(),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(["b"]),
            tail: None,
        }
    );
    let entries: Vec<JournalEntry> = journal.entries.lock().unwrap().values().cloned().collect();
    let delta = StateDelta::from_journal(&entries);
    assert!(delta.clear_all);
    assert_eq!(delta.changes.len(), 1);
}

#[tokio::test]
async fn shared_reads_are_recorded_for_replay() {
    let journal = Arc::new(MemoryJournal::default());
    journal
        .state
        .lock()
        .unwrap()
        .insert("count".into(), json!(3));
    let mut req = keyed_request("counter", "peek", json!(null), None);
    req.handler_kind = Some(HandlerKind::Shared);
    let resp = endpoint().run(req.clone(), journal.clone()).await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(3),
            tail: None
        }
    );
    // The state changes; a replay still sees what the first attempt read.
    journal
        .state
        .lock()
        .unwrap()
        .insert("count".into(), json!(99));
    req.journal = journal.entries.lock().unwrap().values().cloned().collect();
    let again = endpoint().run(req, journal.clone()).await;
    assert_eq!(
        again,
        HandlerResponse::Completed {
            output: json!(3),
            tail: None
        }
    );
}

#[tokio::test]
async fn a_resolved_promise_completes_the_waiting_run() {
    let journal = Arc::new(MemoryJournal::default());
    let dispatcher = Arc::new(MemoryDispatcher::default());
    let mut run = keyed_request("signup", "run", json!("ada@example.com"), None);
    run.handler = HandlerName::new("run").unwrap();
    run.handler_kind = Some(HandlerKind::Workflow);
    let first = endpoint()
        .run_with(run.clone(), journal.clone(), dispatcher.clone())
        .await;
    assert!(
        matches!(first, HandlerResponse::Suspended { .. }),
        "{first:?}"
    );
    // A shared handler of the same workflow resolves it (another invocation, same object).
    let other = Arc::new(MemoryJournal::default());
    *other.promises.lock().unwrap() = std::mem::take(&mut *journal.promises.lock().unwrap());
    let mut confirm = keyed_request("signup", "confirm", json!("link-1"), None);
    confirm.handler_kind = Some(HandlerKind::Shared);
    let resp = endpoint()
        .run_with(confirm.clone(), other.clone(), dispatcher.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(null),
            tail: None,
        }
    );
    // The waiter was told: its entry completion goes to the waiter's journal (here the
    // resolver's memory journal stands in for the table) and a resume was sent.
    assert_eq!(dispatcher.resumed.lock().unwrap().len(), 1);
    // Resolving again fails with 409.
    let third = Arc::new(MemoryJournal::default());
    *third.promises.lock().unwrap() = std::mem::take(&mut *other.promises.lock().unwrap());
    let mut again = confirm.clone();
    again.invocation_id = InvocationId::random(&confirm.service);
    let resp = endpoint()
        .run_with(again, third.clone(), dispatcher.clone())
        .await;
    assert!(
        matches!(&resp, HandlerResponse::Failed { failure, .. } if failure.code == 409),
        "{resp:?}"
    );
    // The run, re-pushed, finds the promise resolved.
    *journal.promises.lock().unwrap() = std::mem::take(&mut *third.promises.lock().unwrap());
    run.journal = journal.entries.lock().unwrap().values().cloned().collect();
    let done = endpoint().run_with(run, journal.clone(), dispatcher).await;
    assert_eq!(
        done,
        HandlerResponse::Completed {
            output: json!("ada@example.com confirmed with link-1"),
            tail: None,
        }
    );
}

#[tokio::test]
async fn keyed_handlers_need_a_key() {
    let journal = Arc::new(MemoryJournal::default());
    let mut req = keyed_request("counter", "add", json!(1), None);
    req.key = None;
    let resp = endpoint().run(req, journal).await;
    assert!(
        matches!(&resp, HandlerResponse::Failed { failure, .. } if failure.code == 400),
        "{resp:?}"
    );
}
