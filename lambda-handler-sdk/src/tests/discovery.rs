//! Discovery: what an endpoint says it serves.

use super::*;

#[test]
fn discovery_lists_services_and_handlers() {
    let d = endpoint().discover();
    assert_eq!(d.services.len(), 1);
    let names: Vec<_> = d.services[0]
        .handlers
        .iter()
        .map(|h| h.name.as_str().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "approval",
            "fail",
            "fan_out",
            "flaky",
            "nap",
            "three",
            "two_timers"
        ]
    );
}

#[crate::object(name = "cart")]
trait Cart {
    async fn add(&self, ctx: ObjectContext, item: String) -> Result<u32, HandlerError>;
    async fn count(&self, ctx: SharedObjectContext, _: ()) -> Result<u32, HandlerError>;
}

#[crate::workflow(name = "signup")]
trait Signup {
    async fn run(&self, ctx: WorkflowContext, email: String) -> Result<bool, HandlerError>;
    async fn confirm(&self, ctx: SharedWorkflowContext, link: String) -> Result<(), HandlerError>;
}

struct Shop;

impl Cart for Shop {
    async fn add(&self, _: ObjectContext, _: String) -> Result<u32, HandlerError> {
        Ok(1)
    }
    async fn count(&self, _: SharedObjectContext, _: ()) -> Result<u32, HandlerError> {
        Ok(1)
    }
}

impl Signup for Shop {
    async fn run(&self, _: WorkflowContext, _: String) -> Result<bool, HandlerError> {
        Ok(true)
    }
    async fn confirm(&self, _: SharedWorkflowContext, _: String) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[test]
fn typed_objects_and_workflows_register_their_handlers_by_context_kind() {
    use durable_protocol::{HandlerKind, ServiceKind};
    let d = Endpoint::new()
        .service(Shop.into_object())
        .service(Shop.into_workflow())
        .discover();
    let kinds = |i: usize| -> Vec<(String, Option<HandlerKind>)> {
        d.services[i]
            .handlers
            .iter()
            .map(|h| (h.name.as_str().to_owned(), h.kind))
            .collect()
    };
    assert_eq!(d.services[0].name.as_str(), "cart");
    assert_eq!(d.services[0].kind, ServiceKind::Object);
    assert_eq!(
        kinds(0),
        [
            ("add".to_owned(), Some(HandlerKind::Exclusive)),
            ("count".to_owned(), Some(HandlerKind::Shared))
        ]
    );
    assert_eq!(d.services[1].kind, ServiceKind::Workflow);
    assert_eq!(
        kinds(1),
        [
            ("confirm".to_owned(), Some(HandlerKind::Shared)),
            ("run".to_owned(), Some(HandlerKind::Workflow))
        ]
    );
}

#[tokio::test]
async fn a_typed_object_client_calls_the_key_it_was_made_for() {
    async fn shop(ctx: Context, _: ()) -> Result<(), HandlerError> {
        let cart = CartClient::new(&ctx, "ada");
        cart.add_send(&"apple".to_owned())?;
        Ok(())
    }
    let journal = Arc::new(MemoryJournal::default());
    let ep = Endpoint::new().service(Service::new("svc").handler("shop", shop));
    let resp = ep
        .run(request("shop", json!(null), vec![]), journal.clone())
        .await;
    assert!(
        matches!(resp, HandlerResponse::Completed { .. }),
        "{resp:?}"
    );
    let EntryKind::Send { target, .. } = &journal.journal()[0].kind else {
        panic!("{:?}", journal.journal())
    };
    assert_eq!(target.display(), "cart/ada/add");
}
