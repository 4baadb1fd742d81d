//! `#[service]`: declare a durable service as a trait, get serving and a typed client.
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

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote};
use syn::{
    parse_macro_input, Error, FnArg, GenericArgument, ItemTrait, LitStr, PathArguments, ReturnType,
    TraitItem, Type,
};

/// Declares a durable service; see the crate documentation.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
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
    match expand(trait_item, name) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

struct Handler {
    ident: syn::Ident,
    input: Type,
    output: Type,
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

fn expand(mut item: ItemTrait, name: Option<LitStr>) -> syn::Result<proc_macro2::TokenStream> {
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
        let FnArg::Typed(input) = args[2] else {
            return Err(Error::new_spanned(&sig.inputs, shape));
        };
        let output = ok_type(&sig.output)?;
        handlers.push(Handler {
            ident: sig.ident.clone(),
            input: (*input.ty).clone(),
            output,
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

    let serve_trait = format_ident!("{}Serve", trait_ident);
    let client = format_ident!("{}Client", trait_ident);
    let registrations = handlers.iter().map(|h| {
        let ident = &h.ident;
        let name = LitStr::new(&ident.to_string(), ident.span());
        quote! {
            .handler(#name, {
                let this = this.clone();
                move |ctx, input| {
                    let this = this.clone();
                    async move { this.#ident(ctx, input).await }
                }
            })
        }
    });
    let methods = handlers.iter().map(|h| {
        let Handler { ident, input, output } = h;
        let name = LitStr::new(&ident.to_string(), ident.span());
        let send = format_ident!("{}_send", ident);
        let send_after = format_ident!("{}_send_after", ident);
        let doc_call = format!("Calls `{}/{}` and returns the future of its output.", service_name.value(), ident);
        let doc_send = format!("Sends to `{}/{}` without waiting; returns the child's id.", service_name.value(), ident);
        let doc_after = format!("Sends to `{}/{}` after `delay`; returns the child's id.", service_name.value(), ident);
        quote! {
            #[doc = #doc_call]
            pub fn #ident(&self, input: &#input) -> ::lambda_handler_sdk::DurableFuture<#output> {
                ::lambda_handler_sdk::CallContext::call(self.ctx, #service_name, #name, input)
            }

            #[doc = #doc_send]
            pub fn #send(&self, input: &#input) -> ::std::result::Result<::lambda_handler_sdk::InvocationId, ::lambda_handler_sdk::TerminalError> {
                ::lambda_handler_sdk::CallContext::send(self.ctx, #service_name, #name, input)
            }

            #[doc = #doc_after]
            pub fn #send_after(&self, delay: ::std::time::Duration, input: &#input) -> ::std::result::Result<::lambda_handler_sdk::InvocationId, ::lambda_handler_sdk::TerminalError> {
                ::lambda_handler_sdk::CallContext::send_after(self.ctx, delay, #service_name, #name, input)
            }
        }
    });
    let serve_doc = format!(
        "Serves an implementation of [`{trait_ident}`] as the service `{}`.",
        service_name.value()
    );
    let client_doc = format!(
        "A typed client of the service `{}`, for use inside handlers.",
        service_name.value()
    );

    Ok(quote! {
        #item

        #[doc = #serve_doc]
        #vis trait #serve_trait: #trait_ident + ::std::marker::Sized + ::std::marker::Send + ::std::marker::Sync + 'static {
            /// The service, ready for [`lambda_handler_sdk::Endpoint::service`].
            fn into_service(self) -> ::lambda_handler_sdk::Service {
                let this = ::std::sync::Arc::new(self);
                ::lambda_handler_sdk::Service::new(#service_name) #(#registrations)*
            }
        }

        impl<T: #trait_ident + ::std::marker::Send + ::std::marker::Sync + 'static> #serve_trait for T {}

        #[doc = #client_doc]
        #vis struct #client<'ctx> {
            ctx: &'ctx ::lambda_handler_sdk::Context,
        }

        impl<'ctx> #client<'ctx> {
            /// A client that calls through `ctx`'s journal (any handler's context).
            pub fn new(ctx: &'ctx impl ::lambda_handler_sdk::CallContext) -> Self {
                Self { ctx: ::lambda_handler_sdk::CallContext::as_context(ctx) }
            }

            #(#methods)*
        }
    })
}
