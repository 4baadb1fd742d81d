//! The examples, deployed into the local environment, driven with [`TestEnv`]. Ignored by
//! default (they need the environment); `scripts/test.sh` runs them after deploying:
//! `cargo test -p durable-testing --test deployed_examples -- --include-ignored`.

use durable_testing::{EnvError, InvocationId, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

const SUSPENDS: Duration = Duration::from_secs(30);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        durable_protocol::clock::now_millis()
    )
}

#[tokio::test]
#[ignore = "needs the local environment (scripts/test.sh)"]
async fn checkout_answers_its_receipt() {
    let env = TestEnv::load().await.unwrap();
    let order = unique("o");
    let receipt: Value = env
        .invoke(
            "checkout",
            "checkout",
            &json!({"order_id": order, "items": ["pen"], "amount_cents": 250}),
        )
        .await
        .unwrap();
    assert_eq!(receipt["payment_id"], format!("pay-{order}"));
}

/// An expense approval (3 days to decide), waiting for its manager.
async fn start_approval() -> (TestEnv, InvocationId) {
    let env = TestEnv::load().await.unwrap();
    let id = env
        .send(
            "approvals",
            "request",
            &json!({"expense_id": unique("e"), "amount_cents": 4200}),
        )
        .await
        .unwrap();
    env.wait_for_status(&id, "suspended", SUSPENDS)
        .await
        .unwrap();
    (env, id)
}

#[tokio::test]
#[ignore = "needs the local environment (scripts/test.sh)"]
async fn an_approval_nobody_answers_expires_when_its_three_day_timer_is_fired() {
    let (env, id) = start_approval().await;
    assert_eq!(env.fire_due_timers(Some(&id)).await.unwrap(), 1);
    let out: Value = env.attach(&id).await.unwrap();
    assert_eq!(out["status"], "expired");
}

#[tokio::test]
#[ignore = "needs the local environment (scripts/test.sh)"]
async fn an_approved_expense_is_paid() {
    let (env, id) = start_approval().await;
    let awakeables = env.awakeables(&id).await.unwrap();
    assert_eq!(awakeables.len(), 1, "{awakeables:?}");
    env.resolve_awakeable(&awakeables[0], &json!({"approved": true, "by": "grace"}))
        .await
        .unwrap();
    let out: Value = env.attach(&id).await.unwrap();
    assert_eq!(
        (out["status"].clone(), out["decided_by"].clone()),
        (json!("paid"), json!("grace"))
    );
    let detail = env.describe(&id).await.unwrap();
    assert_eq!(detail.summary.status, "completed");
}

#[tokio::test]
#[ignore = "needs the local environment (scripts/test.sh)"]
async fn a_cart_keeps_its_items_per_user() {
    let env = TestEnv::load().await.unwrap();
    let user = unique("u");
    for _ in 0..2 {
        let _: Value = env
            .invoke_keyed("cart", &user, "add", &json!({"sku": "pen"}))
            .await
            .unwrap();
    }
    let view: Value = env.invoke_keyed("cart", &user, "view", &()).await.unwrap();
    assert_eq!(view["items"], json!({"pen": 2}));
}

#[tokio::test]
#[ignore = "needs the local environment (scripts/test.sh)"]
async fn a_sign_up_whose_link_expires_is_not_confirmed() {
    let env = TestEnv::load().await.unwrap();
    let email = format!("{}@example.com", unique("ada"));
    let id = env
        .send_keyed("signup", &email, "run", &json!({"name": "Ada"}))
        .await
        .unwrap();
    env.wait_for_status(&id, "suspended", SUSPENDS)
        .await
        .unwrap();
    assert_eq!(
        env.fire_due_timers(Some(&id)).await.unwrap(),
        1,
        "the week-long link"
    );
    let account: Value = env.attach(&id).await.unwrap();
    assert_eq!(account["confirmed"], false);
}

#[tokio::test]
#[ignore = "needs the local environment (scripts/test.sh)"]
async fn a_declined_trip_fails_with_the_banks_code() {
    let env = TestEnv::load().await.unwrap();
    let trip =
        json!({"trip_id": unique("t"), "destination": "LIS", "nights": 3, "card_limit_cents": 100});
    let err = env
        .invoke::<_, Value>("trips", "book", &trip)
        .await
        .unwrap_err();
    assert!(matches!(&err, EnvError::Http { status: 402, .. }), "{err}");
}

#[tokio::test]
#[ignore = "needs the local environment (scripts/test.sh)"]
async fn a_batch_fans_out_one_child_per_document() {
    let env = TestEnv::load().await.unwrap();
    let docs = json!(["a b c", "", unique("one")]);
    let summary: Value = env.invoke("batch", "analyze", &docs).await.unwrap();
    assert_eq!(summary["per_document"], json!([3, 0, 1]));
    assert_eq!(summary["total_words"], 4);
}
