//! What finishing costs and what stays: journal entries expire on their own when the invocation
//! finishes in its first attempt, are kept while it lives longer, and the lease sweep walks the
//! `leases` index with a cursor, skipping finished invocations. Against the local AWS
//! environment (`scripts/test.sh` deploys first).

use aws_sdk_dynamodb::types::AttributeValue;
use durable_local::harness::{run_id, Env};
use durable_local::inspect;
use durable_protocol::clock::now_millis;
use durable_protocol::{
    EntryKind, HandlerName, InvocationId, JournalEntry, ServiceName, StepResult,
};
use durable_store::invocations::{Created, Invocation, InvocationStore, NewInvocation, Outcome};
use durable_store::keys;
use durable_store::sweep::Leased;
use durable_store::Appended;
use durable_store::JournalStore;
use durable_store::Writer;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// The local deployment keeps the defaults: 24 h retention, 24 h journal grace.
const RETENTION_SECS: u64 = 86_400;
const GRACE_SECS: u64 = 86_400;

type Item = HashMap<String, AttributeValue>;

/// Held by the tests that send sweeps: every sweep walks the `leases` index from the shared
/// cursor, so one test's sweep would move it past another test's leases.
static SWEEPING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ttl(item: &Item) -> Option<u64> {
    item.get("expires_at")?.as_n().ok()?.parse().ok()
}

fn now_secs() -> u64 {
    now_millis() / 1000
}

/// The metadata item and the journal items of an invocation, as stored.
async fn items(env: &Env, id: &str) -> (Item, Vec<Item>) {
    let parsed = InvocationId::parse(id).expect("an invocation id");
    let journal = inspect::query_all(
        &env.clients,
        &env.deployment.table,
        &keys::invocation_pk(&parsed),
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|i| i.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) != Some("meta"))
    .collect();
    (env.meta(id).await, journal)
}

/// Every entry carries the TTL its first push gave it: the push time (between `before` and
/// `after`) plus retention plus grace.
fn assert_first_attempt_ttls(journal: &[Item], before: u64, after: u64) {
    let (low, high) = (
        before + RETENTION_SECS + GRACE_SECS,
        after + RETENTION_SECS + GRACE_SECS + 1,
    );
    for entry in journal {
        let t = ttl(entry).expect("every entry has its TTL from the start");
        assert!(t >= low && t <= high, "TTL {t} in {low}..{high}: {entry:?}");
    }
}

fn new_invocation(
    env: &Env,
    id: &InvocationId,
    input: serde_json::Value,
    lease_until: u64,
) -> NewInvocation {
    NewInvocation {
        id: id.clone(),
        service: ServiceName::new("testbed").unwrap(),
        handler: HandlerName::new("steps").unwrap(),
        function_arn: env.deployment.services["testbed"].clone(),
        input,
        idempotency_key: None,
        lease_until,
        released: false,
        caller: None,
        key: None,
        handler_kind: None,
        traceparent: None,
        retention: None,
        headers: Default::default(),
    }
}

async fn created(store: &InvocationStore, new: &NewInvocation) -> Invocation {
    match store.create(new).await.unwrap() {
        Created::New(inv) => inv,
        Created::Existing(_) => panic!("a fresh id exists"),
    }
}

/// Three steps finished in one attempt: each entry was written once, with its TTL (retention
/// plus grace from the push), and finishing rewrote none of them.
#[tokio::test]
async fn a_run_finished_in_its_first_attempt_has_its_journal_expire_without_rewrites() {
    let env = Env::load().await;
    let run = run_id();
    let before = now_secs();
    let answer = env
        .invoke_testbed("steps", json!({"run": run, "steps": 3}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let after = now_secs();
    let id = answer.invocation_id.unwrap();
    let (meta, journal) = items(&env, &id).await;
    // Two entry items; the third step is recorded with the outcome (on the metadata item,
    // which expires with the retention).
    assert_eq!(journal.len(), 2);
    assert!(
        meta["tail"].as_s().unwrap().contains("\"index\":2"),
        "{meta:?}"
    );
    assert_first_attempt_ttls(&journal, before, after);
    for entry in &journal {
        // Written once: by the first attempt, never re-put (a re-put at finish would give it
        // the retention TTL from the finish time, a day earlier).
        assert_eq!(entry["epoch"].as_n().unwrap(), "1");
    }
    let meta_ttl = ttl(&meta).expect("the finished invocation expires");
    assert!(meta_ttl >= before + RETENTION_SECS && meta_ttl <= after + RETENTION_SECS + 1);
    assert!(
        !meta.contains_key("journal_kept"),
        "never left its first attempt"
    );
    assert_eq!(meta["status"].as_s().unwrap(), "completed");
}

/// A one-way send is created released and driven by a fresh call: its first push still gives
/// the entries their TTL, and finishing rewrites none.
#[tokio::test]
async fn a_sent_run_finished_in_its_first_attempt_has_its_journal_expire_without_rewrites() {
    let env = Env::load().await;
    let run = run_id();
    let before = now_secs();
    let id = env
        .send("testbed", "steps", json!({"run": run, "steps": 2}))
        .await;
    let output = env.output(&id, Duration::from_secs(30)).await;
    assert_eq!(output.status, 200, "{}", output.raw);
    let after = now_secs();
    let (meta, journal) = items(&env, &id).await;
    assert_eq!(
        journal.len(),
        1,
        "the second step is recorded with the outcome"
    );
    assert_first_attempt_ttls(&journal, before, after);
    assert_eq!(meta.get("journal_kept"), None);
}

/// A run that suspends may wait longer than its entries' TTL: they lose it before the
/// suspension, stay without it while it waits, and get the retention TTL when it finishes.
#[tokio::test]
async fn a_suspended_invocation_keeps_its_journal_until_it_finishes() {
    let env = Env::load().await;
    let run = run_id();
    // A synchronous call: the first attempt is pushed fresh, with TTLs on its entries.
    let client = env.client.clone();
    let input = json!({"run": run, "timeout_ms": 120_000});
    let call =
        tokio::spawn(async move { client.invoke("testbed", "approval", &input, None).await });
    let awakeable = env.published(&run, "awakeable").await;
    let id = durable_protocol::AwakeableId::parse(&awakeable)
        .expect("an awakeable id")
        .invocation
        .to_string();
    let mut suspended = None;
    for _ in 0..200 {
        let (meta, journal) = items(&env, &id).await;
        if meta["status"].as_s().unwrap() == "suspended" {
            suspended = Some((meta, journal));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (meta, journal) = suspended.expect("it suspends on the awakeable");
    assert_eq!(
        meta.get("journal_kept").and_then(|v| v.as_bool().ok()),
        Some(&true)
    );
    assert!(journal.len() >= 3, "awakeable, publish, timer");
    for entry in &journal {
        assert_eq!(ttl(entry), None, "kept while suspended: {entry:?}");
    }

    let resolved = env
        .complete_awakeable(&awakeable, "resolve", r#"{"by":"ada"}"#)
        .await;
    assert_eq!(resolved.status, 200, "{}", resolved.raw);
    let answer = call.await.unwrap().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!({"approved": {"by": "ada"}}));
    // The answer may come before the driver has set the journal's TTL: give it a moment.
    let mut ttls = Vec::new();
    for _ in 0..50 {
        let (_, journal) = items(&env, &id).await;
        ttls = journal.iter().map(ttl).collect();
        if ttls.iter().all(Option::is_some) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = now_secs();
    for t in &ttls {
        let t = t.expect("every entry expires once it finished");
        assert!(
            t > now + RETENTION_SECS - 120 && t <= now + RETENTION_SECS + 1,
            "the retention from the finish, not the first attempt's TTL: {t} vs {now}"
        );
    }
}

/// An attempt that keeps its journal (no TTL) and adopts an entry written with a TTL (by an
/// earlier attempt still running) takes the TTL off: an entry the invocation builds on must not
/// expire under it. A writer with a TTL adopting leaves the entry as it is.
#[tokio::test]
async fn a_writer_that_keeps_its_journal_takes_the_ttl_off_an_entry_it_adopts() {
    let env = Env::load().await;
    let journal = JournalStore::new(env.clients.dynamo.clone(), &env.deployment.table);
    let id = InvocationId::random(&ServiceName::new("testbed").unwrap());
    let step = |index| {
        JournalEntry::new(
            index,
            EntryKind::Run {
                name: format!("step-{index}"),
                result: StepResult::Value(json!(index)),
            },
        )
    };
    let expiring = Writer {
        epoch: 1,
        expires_at: Some(now_secs() + 3600),
    };
    for index in [0, 1] {
        assert_eq!(
            journal.append(&id, &step(index), expiring).await.unwrap(),
            Appended::Written
        );
    }
    // Another first-attempt writer (same TTL policy) adopts entry 0 and leaves it.
    assert_eq!(
        journal.append(&id, &step(0), expiring).await.unwrap(),
        Appended::AlreadyRecorded(Box::new(step(0)))
    );
    // A later attempt keeps the journal: adopting entry 1 takes its TTL off.
    assert_eq!(
        journal.append(&id, &step(1), 2).await.unwrap(),
        Appended::AlreadyRecorded(Box::new(step(1)))
    );
    let (_, items) = {
        let all = inspect::query_all(
            &env.clients,
            &env.deployment.table,
            &keys::invocation_pk(&id),
        )
        .await
        .unwrap();
        ((), all)
    };
    let ttls: Vec<Option<u64>> = items.iter().map(ttl).collect();
    assert_eq!(ttls.len(), 2);
    assert!(ttls[0].is_some(), "entry 0 keeps its TTL");
    assert_eq!(ttls[1], None, "entry 1 is kept");
    // `load_kept` takes the TTL off the rest.
    assert_eq!(
        journal.load_kept(&id).await.unwrap(),
        vec![step(0), step(1)]
    );
    let all = inspect::query_all(
        &env.clients,
        &env.deployment.table,
        &keys::invocation_pk(&id),
    )
    .await
    .unwrap();
    assert!(all.iter().all(|i| ttl(i).is_none()));
}

/// Released invocations (handed off, granted a lock, a one-way send) are taken over at once
/// whatever their lease; one handed off keeps its journal from then on, one never pushed does
/// not need to. A stranded one found by the sweep gets a lease ahead of the sweep's cursor (so
/// that a later sweep would find it again if its `drive` event were lost too) and, since its
/// last driver's attempt may still run, keeps its journal once taken over.
#[tokio::test]
async fn released_and_stranded_invocations_are_taken_over_at_once() {
    let env = Env::load().await;
    let store = InvocationStore::new(env.clients.dynamo.clone(), &env.deployment.table);
    let later = || now_millis() + 60_000;
    // Leased for an hour by a driver that hands it off.
    let id = InvocationId::random(&ServiceName::new("testbed").unwrap());
    let leased = new_invocation(&env, &id, json!({}), now_millis() + 3_600_000);
    let inv = created(&store, &leased).await;
    let mut rival = inv.clone();
    assert!(
        !store.take_over(&mut rival, later()).await.unwrap(),
        "leased"
    );
    assert!(store.release(&inv).await.unwrap());
    let mut taker = store.get(&id).await.unwrap().unwrap();
    assert!(taker.released);
    assert!(
        store.take_over(&mut taker, later()).await.unwrap(),
        "released"
    );
    assert!(taker.journal_kept, "handed off: kept");
    let stored = store.get(&id).await.unwrap().unwrap();
    assert!(!stored.released && stored.journal_kept, "owned again, kept");
    assert!(
        !store.release(&inv).await.unwrap(),
        "the old driver lost it"
    );

    // A one-way send: released from the start, never pushed.
    let id = InvocationId::random(&ServiceName::new("testbed").unwrap());
    let send = NewInvocation {
        released: true,
        ..new_invocation(&env, &id, json!({}), 0)
    };
    let mut taker = created(&store, &send).await;
    assert!(taker.released);
    assert!(
        taker.lease_until >= now_millis(),
        "a lease ahead, for the sweep"
    );
    assert!(store.take_over(&mut taker, later()).await.unwrap());
    assert!(
        !taker.journal_kept,
        "its first push still gives its entries a TTL"
    );
    assert!(!store.get(&id).await.unwrap().unwrap().journal_kept);

    // Stranded: its lease ended long ago.
    let id = InvocationId::random(&ServiceName::new("testbed").unwrap());
    let stranded = new_invocation(&env, &id, json!({}), now_millis() - 60_000);
    let inv = created(&store, &stranded).await;
    let marked_at = now_millis();
    assert!(store.mark_stranded(&inv).await.unwrap());
    let marked = store.get(&id).await.unwrap().unwrap();
    assert!(!marked.released, "its driver's attempt may still run");
    assert!(
        marked.lease_until >= marked_at,
        "ahead of the sweep's cursor"
    );
    assert!(!store.mark_stranded(&inv).await.unwrap(), "once per lease");
    let mut taker = marked.clone();
    assert!(store.take_over(&mut taker, later()).await.unwrap());
    assert!(
        taker.journal_kept,
        "a take-over from a lost driver keeps the journal"
    );
}

/// The sweep reads what its cursor passes once: a finished invocation left in the `leases`
/// index is skipped, a running one whose lease ended is re-driven and finishes, and the cursor
/// moves past both (and the minutes cursor to the last minute it may look at).
#[tokio::test]
async fn the_sweep_skips_finished_invocations_and_moves_its_cursor() {
    let _sweeping = SWEEPING.lock().await;
    let env = Env::load().await;
    let run = run_id();
    let store = InvocationStore::new(env.clients.dynamo.clone(), &env.deployment.table);
    // Both leases ended before the sweep's grace (30 s in this deployment), just after where
    // the last sweep left its cursor (which is at least the grace before now).
    let lease = match store.sweep_cursors().await.unwrap().swept_until {
        0 => now_millis() - 31_000,
        cursor => cursor + 1,
    };
    let finished_id = InvocationId::random(&ServiceName::new("testbed").unwrap());
    let finished = created(
        &store,
        &new_invocation(&env, &finished_id, json!({}), lease),
    )
    .await;
    assert_eq!(
        store
            .finish(
                &finished,
                &Outcome::Completed(json!("done")),
                None,
                Duration::from_secs(60)
            )
            .await
            .unwrap(),
        Some(false)
    );
    let (meta, _) = items(&env, finished_id.as_str()).await;
    assert!(
        meta.contains_key("lease_shard"),
        "finishing leaves the index alone"
    );
    let stranded_id = InvocationId::random(&ServiceName::new("testbed").unwrap());
    created(
        &store,
        &new_invocation(&env, &stranded_id, json!({"run": run, "steps": 1}), lease),
    )
    .await;

    let minutes_before = ((now_millis() - 30_000) / 60_000) as u32 - 1;
    let answer = env.sweep().await;
    let minutes_after = ((now_millis() - 30_000) / 60_000) as u32 - 1;
    let redriven = answer["redriven"].as_array().unwrap();
    assert!(redriven.contains(&json!(stranded_id.as_str())), "{answer}");
    assert!(!redriven.contains(&json!(finished_id.as_str())), "{answer}");
    // The minutes part moved its cursor to the last minute that ended more than the grace ago.
    let minutes = store
        .sweep_cursors()
        .await
        .unwrap()
        .minutes_until
        .expect("a minutes cursor");
    assert!(
        minutes >= minutes_before && minutes <= minutes_after,
        "{minutes} {answer}"
    );
    assert!(
        answer["leases"]["swept_until"].as_u64().unwrap() >= lease,
        "{answer}"
    );
    assert!(store.sweep_cursors().await.unwrap().swept_until >= lease);
    let output = env
        .output(stranded_id.as_str(), Duration::from_secs(30))
        .await;
    assert_eq!(output.status, 200, "{}", output.raw);
    assert_eq!(output.body, json!({"results": [10]}));
}

/// A plain service's invocation is dated: its metadata item lives in its minute's partition,
/// and a run that finishes within its minute never enters the `leases` index (no index write).
/// The sweep of that minute reads it and leaves it alone.
#[tokio::test]
async fn a_dated_run_finished_in_its_minute_never_enters_the_leases_index() {
    let _sweeping = SWEEPING.lock().await;
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .invoke_testbed("steps", json!({"run": run, "steps": 2}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let id = InvocationId::parse(answer.invocation_id.as_deref().unwrap()).unwrap();
    let (minute, shard) = id.bucket().expect("a plain service's invocation is dated");
    let meta = env.meta(id.as_str()).await;
    assert_eq!(
        meta["pk"].as_s().unwrap(),
        &keys::run_pk("testbed", minute, shard)
    );
    assert_eq!(meta["sk"].as_s().unwrap(), id.as_str());
    assert!(!meta.contains_key("lease_shard"), "{meta:?}");

    let answer = env.sweep_minutes(minute, minute).await;
    assert!(
        answer["minutes"]["looked_at"].as_u64().unwrap() >= 1,
        "{answer}"
    );
    assert!(
        !answer["redriven"]
            .as_array()
            .unwrap()
            .contains(&json!(id.as_str())),
        "{answer}"
    );
    assert!(
        !env.meta(id.as_str()).await.contains_key("lease_shard"),
        "finished: not put in the index"
    );
}

/// The orchestrator call that created a dated invocation died: nothing is in the `leases`
/// index, but the sweep of its minute finds it, puts it in the index with a lease ahead of
/// the index's cursor and re-drives it to completion. One still driven (its lease ahead) is
/// only put in the index, lease untouched, where later sweeps find it if its driver dies.
#[tokio::test]
async fn the_sweep_of_a_minute_redrives_stranded_dated_invocations_and_indexes_running_ones() {
    let _sweeping = SWEEPING.lock().await;
    let env = Env::load().await;
    let run = run_id();
    let store = InvocationStore::new(env.clients.dynamo.clone(), &env.deployment.table);
    // Made three minutes ago; the sweep below names that minute (other tests' sweeps may
    // have passed it already).
    let made = now_millis() - 180_000;
    let stranded_id = InvocationId::dated(&ServiceName::new("testbed").unwrap(), made);
    let stranded = new_invocation(
        &env,
        &stranded_id,
        json!({"run": run, "steps": 2}),
        made + 20_000,
    );
    created(&store, &stranded).await;
    let running_id = InvocationId::dated(&ServiceName::new("testbed").unwrap(), made);
    let lease = now_millis() + 600_000;
    let running = new_invocation(&env, &running_id, json!({"run": run, "steps": 1}), lease);
    created(&store, &running).await;
    for id in [&stranded_id, &running_id] {
        assert!(!env.meta(id.as_str()).await.contains_key("lease_shard"));
    }

    let (minute, _) = stranded_id.bucket().unwrap();
    let answer = env.sweep_minutes(minute, minute).await;
    let redriven = answer["redriven"].as_array().unwrap();
    assert!(redriven.contains(&json!(stranded_id.as_str())), "{answer}");
    assert!(!redriven.contains(&json!(running_id.as_str())), "{answer}");
    let output = env
        .output(stranded_id.as_str(), Duration::from_secs(30))
        .await;
    assert_eq!(output.status, 200, "{}", output.raw);
    assert_eq!(output.body, json!({"results": [10, 20]}));

    let meta = env.meta(running_id.as_str()).await;
    assert!(meta.contains_key("lease_shard"), "in the index now");
    assert_eq!(meta["status"].as_s().unwrap(), "running");
    assert_eq!(
        meta["lease_until"].as_n().unwrap(),
        &lease.to_string(),
        "its driver's lease is left alone"
    );
    let (found, _) = store.leases_page(lease - 1, lease, None).await.unwrap();
    assert!(
        found
            .iter()
            .any(|l| matches!(l, Leased::Invocation { id, .. } if id == &running_id)),
        "{found:?}"
    );
}

/// What a checkout run left: its metadata item, its journal items and its description.
async fn checkout_run(env: &Env) -> (Item, Vec<Item>, serde_json::Value, u64, u64) {
    let order = json!({"order_id": run_id(), "items": ["a"], "amount_cents": 100});
    let before = now_secs();
    let answer = env
        .client
        .invoke("checkout", "checkout", &order, None)
        .await
        .unwrap();
    let after = now_secs();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let id = answer.invocation_id.expect("x-invocation-id");
    let (meta, journal) = items(env, &id).await;
    let described = env
        .client
        .request(
            reqwest::Method::GET,
            &format!("/invocations/{id}"),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(described.status, 200, "{}", described.raw);
    (meta, journal, described.body, before, after)
}

/// A service registered with a retention of its own keeps its invocations that long (metadata
/// and journal TTLs, `describe`); re-registered without one, new invocations get the default
/// again; a retention out of range is refused.
#[tokio::test]
async fn a_service_registered_with_a_retention_keeps_its_invocations_that_long() {
    const OWN_SECS: u64 = 7_200;
    let env = Env::load().await;
    let orchestrator = env.deployment.orchestrator_function.clone();
    let checkout = env.deployment.handlers["checkout"].clone();
    let register = |secs: Option<u64>| {
        durable_local::deploy::register_with(&env.clients, &orchestrator, &checkout, secs)
    };
    let refused = register(Some(10)).await;
    assert!(
        format!("{refused:?}").contains("retention_secs must be between 60"),
        "{refused:?}"
    );

    let answer = register(Some(OWN_SECS)).await.unwrap();
    assert_eq!(
        answer["registered"][0]["retention_secs"], OWN_SECS,
        "{answer}"
    );
    // Warm orchestrators read a registration again after 5 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let own = checkout_run(&env).await;
    // Restored before anything is asserted, so the other tests see the default.
    let answer = register(None).await.unwrap();
    assert_eq!(
        answer["registered"][0]["retention_secs"], RETENTION_SECS,
        "{answer}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let default = checkout_run(&env).await;

    for ((meta, journal, described, before, after), secs) in
        [(own, OWN_SECS), (default, RETENTION_SECS)]
    {
        let meta_ttl = ttl(&meta).expect("the finished invocation expires");
        assert!(
            meta_ttl >= before + secs && meta_ttl <= after + secs + 1,
            "{secs}: {meta_ttl} not in {before}..{after} + {secs}"
        );
        for entry in &journal {
            let entry_ttl = ttl(entry).expect("a first attempt's entry expires");
            assert!(
                entry_ttl >= before + secs + GRACE_SECS
                    && entry_ttl <= after + secs + GRACE_SECS + 1,
                "{secs}: entry TTL {entry_ttl}"
            );
        }
        assert_eq!(described["retention_secs"], secs, "{described}");
        assert_eq!(described["expires_at"], meta_ttl * 1000, "{described}");
    }
}
