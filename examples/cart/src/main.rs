//! A shopping cart per user: a virtual object keyed by user id (`POST /cart/{user}/add`).
//!
//! `add`, `remove` and `checkout` are exclusive: for one user they run one at a time, in the
//! order they arrived, so two tabs adding items at once never lose an update. `view` is shared:
//! it runs alongside them and only reads. The cart lives in the object's state (one DynamoDB
//! item per state key), applied when each handler finishes.

use lambda_handler_sdk::prelude::*;
use lambda_handler_sdk::{
    serve, Endpoint, HandlerError, ObjectContext, SharedObjectContext, TerminalError, VirtualObject,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Items by SKU, with quantities.
type Items = BTreeMap<String, u32>;

#[derive(Deserialize)]
struct Line {
    sku: String,
    #[serde(default = "one")]
    quantity: u32,
}

fn one() -> u32 {
    1
}

#[derive(Serialize)]
struct Cart {
    user: String,
    items: Items,
    checked_out_orders: u32,
}

async fn items(ctx: &ObjectContext) -> Result<Items, HandlerError> {
    Ok(ctx.get::<Items>("items").await?.unwrap_or_default())
}

/// Adds a quantity of a SKU; answers the cart's lines.
async fn add(ctx: ObjectContext, line: Line) -> Result<Items, HandlerError> {
    if line.quantity == 0 {
        return Err(TerminalError::new("quantity must be at least 1")
            .with_code(400)
            .into());
    }
    let mut items = items(&ctx).await?;
    *items.entry(line.sku).or_default() += line.quantity;
    ctx.set("items", &items)?;
    Ok(items)
}

/// Removes a SKU entirely.
async fn remove(ctx: ObjectContext, sku: String) -> Result<Items, HandlerError> {
    let mut items = items(&ctx).await?;
    items.remove(&sku);
    ctx.set("items", &items)?;
    Ok(items)
}

/// Places the order (a durable step) and empties the cart.
async fn checkout(ctx: ObjectContext, _: ()) -> Result<String, HandlerError> {
    let items = items(&ctx).await?;
    if items.is_empty() {
        return Err(TerminalError::new("the cart is empty")
            .with_code(409)
            .into());
    }
    let user = ctx.key().to_owned();
    let count = items.values().sum::<u32>();
    let order: String = ctx
        .run("place order", || async move {
            // Here the order service would be called; its id is recorded once.
            Ok(format!("order-{user}-{count}"))
        })
        .await?;
    let orders = ctx.get::<u32>("orders").await?.unwrap_or(0);
    ctx.clear("items")?;
    ctx.set("orders", &(orders + 1))?;
    Ok(order)
}

/// The cart as it stands (a shared handler: never waits for the exclusive ones).
async fn view(ctx: SharedObjectContext, _: ()) -> Result<Cart, HandlerError> {
    Ok(Cart {
        user: ctx.key().to_owned(),
        items: ctx.get::<Items>("items").await?.unwrap_or_default(),
        checked_out_orders: ctx.get::<u32>("orders").await?.unwrap_or(0),
    })
}

/// What this Lambda serves.
fn endpoint() -> Endpoint {
    Endpoint::new().service(
        VirtualObject::new("cart")
            .exclusive("add", add)
            .exclusive("remove", remove)
            .exclusive("checkout", checkout)
            .shared("view", view),
    )
}

#[tokio::main]
async fn main() -> Result<(), lambda_handler_sdk::lambda_runtime::Error> {
    lambda_handler_sdk::init_tracing();
    serve(endpoint()).await
}

#[cfg(test)]
mod tests {
    //! The cart's logic in-process with the test kit (state per key kept between
    //! invocations). The deployed example is tested end to end in
    //! `localstack-tests/tests/objects.rs`.

    use super::*;
    use durable_testing::{RunError, TestRunner};
    use serde_json::{json, Value};

    #[tokio::test]
    async fn adds_accumulate_per_user_and_checkout_empties_the_cart() {
        let runner = TestRunner::new(endpoint());
        let add = |sku: &str, quantity: u32| json!({"sku": sku, "quantity": quantity});
        let _: Value = runner
            .invoke_keyed("cart", "ada", "add", &add("pen", 2))
            .await
            .unwrap();
        let _: Value = runner
            .invoke_keyed("cart", "ada", "add", &add("pen", 1))
            .await
            .unwrap();
        let _: Value = runner
            .invoke_keyed("cart", "bob", "add", &add("ink", 1))
            .await
            .unwrap();
        let view: Value = runner
            .invoke_keyed("cart", "ada", "view", &())
            .await
            .unwrap();
        assert_eq!(view["items"], json!({"pen": 3}));
        let order: String = runner
            .invoke_keyed("cart", "ada", "checkout", &())
            .await
            .unwrap();
        assert_eq!(order, "order-ada-3");
        let view: Value = runner
            .invoke_keyed("cart", "ada", "view", &())
            .await
            .unwrap();
        assert_eq!(
            (view["items"].clone(), view["checked_out_orders"].clone()),
            (json!({}), json!(1))
        );
        assert_eq!(
            runner.state::<Items>("cart", "bob", "items"),
            Some(Items::from([("ink".into(), 1)]))
        );
    }

    #[tokio::test]
    async fn bad_requests_fail_with_their_codes() {
        let runner = TestRunner::new(endpoint());
        let err = runner
            .invoke_keyed::<_, Value>("cart", "ada", "checkout", &())
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Failed(f) if f.code == 409));
        let err = runner
            .invoke_keyed::<_, Value>("cart", "ada", "add", &json!({"sku": "pen", "quantity": 0}))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Failed(f) if f.code == 400));
    }
}
