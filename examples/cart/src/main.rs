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

#[tokio::main]
async fn main() -> Result<(), lambda_handler_sdk::lambda_runtime::Error> {
    lambda_handler_sdk::init_tracing();
    serve(
        Endpoint::new().service(
            VirtualObject::new("cart")
                .exclusive("add", add)
                .exclusive("remove", remove)
                .exclusive("checkout", checkout)
                .shared("view", view),
        ),
    )
    .await
}
