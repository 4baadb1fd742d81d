//! An order checkout in three durable steps: reserve the items, charge the card, confirm.
//!
//! Each `ctx.run` is recorded before the next one starts. If the Lambda crashes after
//! "charge", the retry replays "reserve" and "charge" from the journal (the card is not charged
//! twice) and only runs "confirm".

use lambda_handler_sdk::prelude::*;
use lambda_handler_sdk::{serve, Context, Endpoint, HandlerError, Service, TerminalError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
struct Order {
    order_id: String,
    items: Vec<String>,
    amount_cents: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reservation {
    reservation_id: String,
    items: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Payment {
    payment_id: String,
    amount_cents: u64,
}

#[derive(Debug, Serialize)]
struct Receipt {
    order_id: String,
    reservation_id: String,
    payment_id: String,
    confirmation: String,
}

async fn checkout(ctx: Context, order: Order) -> Result<Receipt, HandlerError> {
    if order.items.is_empty() {
        // Terminal: retrying cannot fix an empty cart. The caller gets a 400.
        return Err(TerminalError::new("an order needs at least one item")
            .with_code(400)
            .into());
    }

    let reservation: Reservation = ctx
        .run("reserve", || async {
            // A real service would call the inventory system here.
            Ok(Reservation {
                reservation_id: format!("res-{}", order.order_id),
                items: order.items.len(),
            })
        })
        .await?;

    let payment: Payment = ctx
        .run("charge", || async {
            // A real service would call the payment provider with an idempotency key.
            Ok(Payment {
                payment_id: format!("pay-{}", order.order_id),
                amount_cents: order.amount_cents,
            })
        })
        .await?;

    let confirmation: String = ctx
        .run("confirm", || async {
            Ok(format!(
                "order {} confirmed: {} item(s), {} cents charged",
                order.order_id, reservation.items, payment.amount_cents
            ))
        })
        .await?;

    Ok(Receipt {
        order_id: order.order_id,
        reservation_id: reservation.reservation_id,
        payment_id: payment.payment_id,
        confirmation,
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_handler_sdk::lambda_runtime::Error> {
    lambda_handler_sdk::init_tracing();
    serve(endpoint()).await
}

/// What this Lambda serves.
fn endpoint() -> Endpoint {
    Endpoint::new().service(Service::new("checkout").handler("checkout", checkout))
}

#[cfg(test)]
mod tests {
    //! The three steps in-process with the test kit. The deployed example is tested end to
    //! end in `localstack-tests/tests/e2e.rs`.

    use super::*;
    use durable_testing::TestRunner;
    use serde_json::{json, Value};

    fn order() -> Value {
        json!({"order_id": "o1", "items": ["keyboard", "mouse"], "amount_cents": 12_999})
    }

    #[tokio::test]
    async fn an_order_is_reserved_charged_and_confirmed_once_each() {
        let runner = TestRunner::new(endpoint());
        let receipt: Value = runner
            .invoke("checkout", "checkout", &order())
            .await
            .unwrap();
        assert_eq!(receipt["payment_id"], "pay-o1");
        let id = runner.invocations()[0].clone();
        assert_eq!(runner.journal(&id).len(), 3);
    }

    #[tokio::test]
    async fn a_crash_after_the_charge_is_recorded_does_not_charge_again() {
        let runner = TestRunner::new(endpoint());
        runner.crash_after_entry(1);
        let _: Value = runner
            .invoke("checkout", "checkout", &order())
            .await
            .unwrap();
        assert_eq!(
            (runner.step_runs("reserve"), runner.step_runs("charge")),
            (1, 1)
        );
        assert_eq!(runner.attempts(&runner.invocations()[0]), 2);
    }
}
