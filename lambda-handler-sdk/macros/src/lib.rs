//! `#[service]`, `#[object]`, `#[workflow]`: declare a durable service, virtual object or
//! workflow as a trait, get serving and a typed client.
//!
//! ```ignore
//! #[lambda_handler_sdk::service]
//! pub trait Greeter {
//!     async fn greet(&self, ctx: Context, name: String) -> Result<String, HandlerError>;
//! }
//! ```
//!
//! generates, next to the trait (whose `async fn`s become `Send` futures, as `tokio` needs):
//! * `GreeterServe::into_service(self) -> Service` for any implementation, to pass to `Endpoint`;
//! * `GreeterClient::new(&ctx)` with `greet(&input) -> DurableFuture<String>`,
//!   `greet_send(&input)` and `greet_send_after(delay, &input)`, so a call with a wrong
//!   argument or result type does not compile.
//!
//! `#[object]` does the same for a virtual object: a handler taking `ObjectContext` is
//! exclusive, one taking `SharedObjectContext` shared; `<Trait>Serve::into_object()` and a
//! client that takes the key, `CartClient::new(&ctx, "ada").add(&item)`. `#[workflow]` takes one
//! `run(&self, ctx: WorkflowContext, ..)` and shared handlers (`SharedWorkflowContext`):
//! `<Trait>Serve::into_workflow()` and a keyed client of the shared handlers.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote};
use syn::{
    parse_macro_input, Error, FnArg, GenericArgument, ItemTrait, LitStr, PathArguments, ReturnType,
    TraitItem, Type,
};

/// What a trait declares.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Service,
    Object,
    Workflow,
}

/// Declares a durable service; see the crate documentation.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    declare(Kind::Service, attr, item)
}

/// Declares a virtual object; see the crate documentation.
#[proc_macro_attribute]
pub fn object(attr: TokenStream, item: TokenStream) -> TokenStream {
    declare(Kind::Object, attr, item)
}

/// Declares a workflow; see the crate documentation.
#[proc_macro_attribute]
pub fn workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    declare(Kind::Workflow, attr, item)
}

fn declare(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let trait_item = parse_macro_input!(item as ItemTrait);
    let mut name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown option; the only one is `name = \"...\"`"))
        }
    });
    parse_macro_input!(attr with parser);
    match expand(kind, trait_item, name) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// How a handler runs, from its context's type.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// A service handler (`Context`).
    Plain,
    /// An exclusive object handler (`ObjectContext`).
    Exclusive,
    /// A shared object or workflow handler.
    Shared,
    /// A workflow's `run` (`WorkflowContext`).
    Run,
}

struct Handler {
    ident: syn::Ident,
    input: Type,
    output: Type,
    role: Role,
}

/// The role a handler of `kind` taking a context of type `ctx` has.
fn role(kind: Kind, ctx: &Type, ident: &syn::Ident) -> syn::Result<Role> {
    let name = match ctx {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
    .unwrap_or_default();
    let wrong = |expected: &str| {
        Err(Error::new_spanned(
            ctx,
            format!("a handler here takes {expected} as its context"),
        ))
    };
    match (kind, name.as_str()) {
        (Kind::Service, "Context") => Ok(Role::Plain),
        (Kind::Service, _) => wrong("`Context`"),
        (Kind::Object, "ObjectContext") => Ok(Role::Exclusive),
        (Kind::Object, "SharedObjectContext") => Ok(Role::Shared),
        (Kind::Object, _) => wrong("`ObjectContext` (exclusive) or `SharedObjectContext` (shared)"),
        (Kind::Workflow, "WorkflowContext") if ident == "run" => Ok(Role::Run),
        (Kind::Workflow, "SharedWorkflowContext") if ident != "run" => Ok(Role::Shared),
        (Kind::Workflow, _) if ident == "run" => {
            wrong("`WorkflowContext` (it is the workflow's `run`)")
        }
        (Kind::Workflow, _) => {
            wrong("`SharedWorkflowContext` (only `run` takes `WorkflowContext`)")
        }
    }
}

/// `T` from `Result<T, HandlerError>`.
fn ok_type(ret: &ReturnType) -> syn::Result<Type> {
    let err = || Error::new_spanned(ret, "a handler returns `Result<Output, HandlerError>`");
    let ReturnType::Type(_, ty) = ret else {
        return Err(err());
    };
    let Type::Path(path) = &**ty else {
        return Err(err());
    };
    let last = path.path.segments.last().ok_or_else(err)?;
    if last.ident != "Result" {
        return Err(err());
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Err(err());
    };
    match args.args.first() {
        Some(GenericArgument::Type(t)) => Ok(t.clone()),
        _ => Err(err()),
    }
}

fn expand(
    kind: Kind,
    mut item: ItemTrait,
    name: Option<LitStr>,
) -> syn::Result<proc_macro2::TokenStream> {
    let trait_ident = item.ident.clone();
    let vis = item.vis.clone();
    let service_name =
        name.unwrap_or_else(|| LitStr::new(&trait_ident.to_string(), Span::call_site()));
    let mut handlers = Vec::new();
    for entry in &mut item.items {
        let TraitItem::Fn(method) = entry else {
            return Err(Error::new_spanned(
                entry,
                "a service trait holds only handler methods",
            ));
        };
        let sig = &mut method.sig;
        if sig.asyncness.is_none() {
            return Err(Error::new_spanned(sig.fn_token, "handlers are `async fn`"));
        }
        let args: Vec<&FnArg> = sig.inputs.iter().collect();
        let shape = "a handler looks like `async fn name(&self, ctx: Context, input: Input) -> Result<Output, HandlerError>`";
        if args.len() != 3
            || !matches!(args[0], FnArg::Receiver(r) if r.reference.is_some() && r.mutability.is_none())
        {
            return Err(Error::new_spanned(&sig.inputs, shape));
        }
        let (FnArg::Typed(ctx), FnArg::Typed(input)) = (args[1], args[2]) else {
            return Err(Error::new_spanned(&sig.inputs, shape));
        };
        let output = ok_type(&sig.output)?;
        handlers.push(Handler {
            ident: sig.ident.clone(),
            input: (*input.ty).clone(),
            output,
            role: role(kind, &ctx.ty, &sig.ident)?,
        });
        // `async fn` in a trait gives no `Send` bound; handlers run on tokio, so ask for one.
        let ret = match &sig.output {
            ReturnType::Type(_, ty) => quote!(#ty),
            ReturnType::Default => quote!(()),
        };
        sig.asyncness = None;
        sig.output = syn::parse2(
            quote!(-> impl ::std::future::Future<Output = #ret> + ::std::marker::Send),
        )?;
    }

    if kind == Kind::Workflow && !handlers.iter().any(|h| h.role == Role::Run) {
        return Err(Error::new_spanned(
            &item.ident,
            "a workflow trait has a `run(&self, ctx: WorkflowContext, input: Input)` handler",
        ));
    }
    let serve_trait = format_ident!("{}Serve", trait_ident);
    let client = format_ident!("{}Client", trait_ident);
    let wrap = |ident: &syn::Ident| {
        quote! {
            {
                let this = this.clone();
                move |ctx, input| {
                    let this = this.clone();
                    async move { this.#ident(ctx, input).await }
                }
            }
        }
    };
    let run = handlers
        .iter()
        .find(|h| h.role == Role::Run)
        .map(|h| wrap(&h.ident));
    let registrations = handlers.iter().filter(|h| h.role != Role::Run).map(|h| {
        let name = LitStr::new(&h.ident.to_string(), h.ident.span());
        let register = match h.role {
            Role::Plain => quote!(handler),
            Role::Exclusive => quote!(exclusive),
            Role::Shared | Role::Run => quote!(shared),
        };
        let handler = wrap(&h.ident);
        quote!(.#register(#name, #handler))
    });
    let keyed = kind != Kind::Service;
    // A workflow's `run` is submitted, called (submit or attach, then wait) or attached to.
    let run_methods = handlers.iter().filter(|h| h.role == Role::Run).map(|h| {
        let Handler { input, output, .. } = h;
        let doc_run = format!(
            "Submits the workflow `{}` at the client's key (or finds its run) and waits for its result.",
            service_name.value()
        );
        let doc_submit = format!(
            "Submits the workflow `{}` at the client's key without waiting; returns its run's id.",
            service_name.value()
        );
        let doc_attach = format!(
            "Waits for the run of the workflow `{}` at the client's key, submitted elsewhere (`404` if none).",
            service_name.value()
        );
        quote! {
            #[doc = #doc_run]
            pub fn run(&self, input: &#input) -> ::lambda_handler_sdk::DurableFuture<#output> {
                ::lambda_handler_sdk::CallContext::workflow_call(self.ctx, #service_name, &self.key, input)
            }

            #[doc = #doc_submit]
            pub fn submit(&self, input: &#input) -> ::std::result::Result<::lambda_handler_sdk::InvocationId, ::lambda_handler_sdk::TerminalError> {
                ::lambda_handler_sdk::CallContext::workflow_submit(self.ctx, #service_name, &self.key, input)
            }

            #[doc = #doc_attach]
            pub fn attach(&self) -> ::lambda_handler_sdk::DurableFuture<#output> {
                ::lambda_handler_sdk::CallContext::workflow_attach(self.ctx, #service_name, &self.key)
            }

            /// Resolves the workflow's promise `name` with `value` (recorded as a step).
            pub fn resolve_promise<'a, T: ::lambda_handler_sdk::__serde::Serialize>(&'a self, name: &'a str, value: &'a T) -> impl ::std::future::Future<Output = ::std::result::Result<(), ::lambda_handler_sdk::TerminalError>> + Send + 'a {
                ::lambda_handler_sdk::CallContext::resolve_workflow_promise(self.ctx, #service_name, &self.key, name, value)
            }

            /// Rejects the workflow's promise `name` with `message` (recorded as a step).
            pub fn reject_promise<'a>(&'a self, name: &'a str, message: &'a str) -> impl ::std::future::Future<Output = ::std::result::Result<(), ::lambda_handler_sdk::TerminalError>> + Send + 'a {
                ::lambda_handler_sdk::CallContext::reject_workflow_promise(self.ctx, #service_name, &self.key, name, message)
            }
        }
    });
    let methods = handlers.iter().filter(|h| h.role != Role::Run).map(|h| {
        let Handler { ident, input, output, .. } = h;
        let name = LitStr::new(&ident.to_string(), ident.span());
        let send = format_ident!("{}_send", ident);
        let send_after = format_ident!("{}_send_after", ident);
        let on = if keyed { " on the client's key" } else { "" };
        let doc_call = format!("Calls `{}/{}`{on} and returns the future of its output.", service_name.value(), ident);
        let doc_send = format!("Sends to `{}/{}` without waiting; returns the child's id.", service_name.value(), ident);
        let doc_after = format!("Sends to `{}/{}` after `delay`; returns the child's id.", service_name.value(), ident);
        let (call, send_now, send_later) = if keyed {
            (
                quote!(::lambda_handler_sdk::CallContext::object_call(self.ctx, #service_name, &self.key, #name, input)),
                quote!(::lambda_handler_sdk::CallContext::object_send(self.ctx, #service_name, &self.key, #name, input)),
                quote!(::lambda_handler_sdk::CallContext::object_send_after(self.ctx, delay, #service_name, &self.key, #name, input)),
            )
        } else {
            (
                quote!(::lambda_handler_sdk::CallContext::call(self.ctx, #service_name, #name, input)),
                quote!(::lambda_handler_sdk::CallContext::send(self.ctx, #service_name, #name, input)),
                quote!(::lambda_handler_sdk::CallContext::send_after(self.ctx, delay, #service_name, #name, input)),
            )
        };
        quote! {
            #[doc = #doc_call]
            pub fn #ident(&self, input: &#input) -> ::lambda_handler_sdk::DurableFuture<#output> {
                #call
            }

            #[doc = #doc_send]
            pub fn #send(&self, input: &#input) -> ::std::result::Result<::lambda_handler_sdk::InvocationId, ::lambda_handler_sdk::TerminalError> {
                #send_now
            }

            #[doc = #doc_after]
            pub fn #send_after(&self, delay: ::std::time::Duration, input: &#input) -> ::std::result::Result<::lambda_handler_sdk::InvocationId, ::lambda_handler_sdk::TerminalError> {
                #send_later
            }
        }
    });
    let serve_doc = format!(
        "Serves an implementation of [`{trait_ident}`] as `{}`.",
        service_name.value()
    );
    let client_doc = format!(
        "A typed client of `{}`, for use inside handlers.",
        service_name.value()
    );

    let (into, built, start) = match kind {
        Kind::Service => (
            quote!(into_service),
            quote!(::lambda_handler_sdk::Service),
            quote!(::lambda_handler_sdk::Service::new(#service_name)),
        ),
        Kind::Object => (
            quote!(into_object),
            quote!(::lambda_handler_sdk::VirtualObject),
            quote!(::lambda_handler_sdk::VirtualObject::new(#service_name)),
        ),
        Kind::Workflow => (
            quote!(into_workflow),
            quote!(::lambda_handler_sdk::Workflow),
            quote!(::lambda_handler_sdk::Workflow::new(#service_name, #run)),
        ),
    };
    let (key_field, key_param, key_init) = if keyed {
        (
            quote!(key: ::std::string::String,),
            quote!(, key: &str),
            quote!(key: key.to_owned(),),
        )
    } else {
        (quote!(), quote!(), quote!())
    };
    let new_doc = if keyed {
        "A client that calls the handlers of `key` through `ctx`'s journal (any handler's context)."
    } else {
        "A client that calls through `ctx`'s journal (any handler's context)."
    };

    Ok(quote! {
        #item

        #[doc = #serve_doc]
        #vis trait #serve_trait: #trait_ident + ::std::marker::Sized + ::std::marker::Send + ::std::marker::Sync + 'static {
            /// Ready for [`lambda_handler_sdk::Endpoint::service`].
            fn #into(self) -> #built {
                let this = ::std::sync::Arc::new(self);
                #start #(#registrations)*
            }
        }

        impl<T: #trait_ident + ::std::marker::Send + ::std::marker::Sync + 'static> #serve_trait for T {}

        #[doc = #client_doc]
        #vis struct #client<'ctx> {
            ctx: &'ctx ::lambda_handler_sdk::Context,
            #key_field
        }

        impl<'ctx> #client<'ctx> {
            #[doc = #new_doc]
            pub fn new(ctx: &'ctx impl ::lambda_handler_sdk::CallContext #key_param) -> Self {
                Self { ctx: ::lambda_handler_sdk::CallContext::as_context(ctx), #key_init }
            }

            #(#run_methods)*
            #(#methods)*
        }
    })
}
