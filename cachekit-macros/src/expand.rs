//! Step 3: code generation.
//!
//! The function's body moves, unchanged, into `<fn>_uncached`; the function
//! itself becomes a call through its handle (`<fn>_cache()`), and the other
//! companions reuse both. Generated locals have mixed-site hygiene, so a
//! user's `key = ...` expression cannot see them.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, ItemFn, Pat, Signature};

use crate::args::{Returns, TtlValue};
use crate::validate::{Config, Operation};
use crate::{args, validate};

/// The whole attribute: parse, validate, generate. On error the function is
/// emitted unchanged beside the errors, so that the rest of the crate still
/// type-checks and editors keep working.
pub(crate) fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let err = syn::Error::new(
                Span::call_site(),
                "#[cached] applies to functions with a body: free functions, and methods \
                 in an inherent `impl` block",
            )
            .to_compile_error();
            return quote!(#item #err);
        }
    };
    match args::parse(attr).and_then(|options| validate::validate(options, &func)) {
        Ok(config) => generate(&config, func),
        Err(err) => {
            let err = err.to_compile_error();
            quote!(#func #err)
        }
    }
}

/// Names shared by the generated items.
struct Names {
    /// `cachekit::__private` (or the `crate = ...` path's).
    private: TokenStream,
    /// `Self::` inside an `impl`, nothing outside.
    scope: TokenStream,
    cache: Ident,
    uncached: Ident,
    refresh: Ident,
    invalidate: Ident,
    clear: Ident,
    /// `[`get_user`]` or `[`Self::get_user`]`, for the companions' docs.
    link: String,
}

impl Names {
    fn new(config: &Config, func: &ItemFn) -> Self {
        let krate = &config.krate;
        let name = &func.sig.ident;
        let shown = name.to_string();
        let shown = shown.strip_prefix("r#").unwrap_or(&shown);
        Names {
            private: quote!(#krate::__private),
            scope: if config.in_impl {
                quote!(Self::)
            } else {
                quote!()
            },
            cache: format_ident!("{}_cache", shown, span = name.span()),
            uncached: format_ident!("{}_uncached", shown, span = name.span()),
            refresh: format_ident!("{}_refresh", shown, span = name.span()),
            invalidate: format_ident!("{}_invalidate", shown, span = name.span()),
            clear: format_ident!("{}_clear", shown, span = name.span()),
            link: if config.in_impl {
                format!("[`{shown}`](Self::{shown})")
            } else {
                format!("[`{shown}`]({shown})")
            },
        }
    }
}

/// A local of the generated code, invisible to the user's tokens.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

fn generate(config: &Config, func: ItemFn) -> TokenStream {
    let names = Names::new(config, &func);
    let shared_attrs: Vec<Attribute> = func.attrs.iter().filter_map(shared).collect();
    let vis = &func.vis;
    let Names {
        private,
        scope,
        cache,
        uncached,
        refresh,
        invalidate,
        clear,
        link,
    } = &names;
    let dot_await = if config.is_async {
        quote!(.await)
    } else {
        quote!()
    };
    let handle = local("__cachekit_handle");
    let key = local("__cachekit_key");
    let derive = derive_key(config, private);
    let lookup = |call: &str| {
        let call = Ident::new(call, Span::call_site());
        quote!(#handle.lookup(#private::Call::#call, #derive))
    };
    let (lookup_cached, lookup_refresh) = (lookup("Cached"), lookup("Refresh"));
    let call_body = call_body(config, &names);

    // The function itself: look up, else run the body.
    let mode = match (config.returns, config.cache_none) {
        (Returns::Value, _) | (Returns::Option, true) => "value",
        (Returns::Result, _) => "result",
        (Returns::Option, false) => "option",
    };
    let suffix = if config.is_async { "" } else { "_blocking" };
    // Pointing at the return type: "cannot be cached" errors land there.
    let call = Ident::new(&format!("{mode}{suffix}"), config.output_span);
    let mut main_sig = func.sig.clone();
    strip_binding_mut(&mut main_sig);
    // `expect` becomes `allow` here too: the body, where most lints fire,
    // now lives in `_uncached`.
    let main_attrs: Vec<Attribute> = func.attrs.iter().map(expect_to_allow).collect();
    // An async call settles its remembered entry (the thread's table is
    // borrowed) before its first `.await`: a hit returns here.
    let settle = |lookup: &TokenStream| {
        if !config.is_async {
            return lookup.clone();
        }
        let value = local("__cachekit_value");
        let hit = match mode {
            "result" => quote!(::core::result::Result::Ok(#value)),
            "option" => quote!(::core::option::Option::Some(#value)),
            _ => quote!(#value),
        };
        quote! {
            match #private::settle(#handle, #lookup) {
                ::core::result::Result::Ok(#value) => return #hit,
                ::core::result::Result::Err(#key) => #key,
            }
        }
    };
    let (lookup_cached, lookup_refresh) = (settle(&lookup_cached), settle(&lookup_refresh));
    let main = quote! {
        #(#main_attrs)*
        #vis #main_sig {
            let #handle = #scope #cache();
            let #key = #lookup_cached;
            #private::#call(#handle, #private::Call::Cached, #key, move || #call_body) #dot_await
        }
    };

    // `_uncached`: the original body, under the original signature.
    let mut body_fn = func.clone();
    body_fn.attrs = shared_attrs.clone();
    body_fn.sig.ident = uncached.clone();
    let uncached_doc = format!(
        "Runs {link} without its cache: the body only, neither reading nor writing \
         cached entries."
    );

    // `_refresh`: run the body, store its result, return it.
    let refresh_sig = renamed(&main_sig, refresh);
    let refresh_doc = format!(
        "Runs {link}'s body and stores the result in its cache as a miss would, \
         replacing the cached entry; returns the fresh result."
    );

    // `_invalidate`: the arguments the key is made of.
    let invalidate_sig = invalidate_sig(config, &main_sig, invalidate, &config.krate);
    let invalidate_call = Ident::new(&format!("invalidate{suffix}"), Span::call_site());
    let invalidate_doc = format!(
        "Removes the cached entry of {link} for these arguments from every tier; \
         returns whether there was one.\n\n# Errors\n\nWhen the shared tier (L2) fails, \
         so that the entry may still be there."
    );

    // `_clear`: every entry of the function.
    let asyncness = &func.sig.asyncness;
    let krate = &config.krate;
    let clear_call = Ident::new(&format!("clear{suffix}"), Span::call_site());
    let clear_doc = format!(
        "Removes every cached entry of {link} from every tier; returns how many were \
         removed.\n\n# Errors\n\nWhen the shared tier (L2) fails, so that entries may remain."
    );

    // `_cache`: the handle, built on first use.
    let cache_doc = format!(
        "The cache handle of {link}: its stats, key segments and cache, built on the \
         first call."
    );
    let setup = setup(config, &func, private);
    let construct = match &config.backend {
        None => quote!(#private::CachedFn::with_default(#setup)),
        Some(expr) => {
            let tiers = local("__cachekit_tiers");
            let into = quote_spanned!(expr.span()=> #private::into_cache(#expr, #tiers));
            quote!(#private::CachedFn::with_backend(#setup, |#tiers| #into))
        }
    };
    let cell = local("__CACHEKIT_HANDLE");

    quote! {
        #main

        #(#shared_attrs)*
        #[doc = #uncached_doc]
        #[allow(dead_code)]
        #body_fn

        #(#shared_attrs)*
        #[doc = #refresh_doc]
        #[allow(dead_code)]
        #vis #refresh_sig {
            let #handle = #scope #cache();
            let #key = #lookup_refresh;
            #private::#call(#handle, #private::Call::Refresh, #key, move || #call_body) #dot_await
        }

        #(#shared_attrs)*
        #[doc = #invalidate_doc]
        #[allow(dead_code)]
        #[allow(unused_variables)]
        #vis #invalidate_sig {
            let #handle = #scope #cache();
            let #key = #handle.key(#derive);
            #handle.#invalidate_call(#key) #dot_await
        }

        #(#shared_attrs)*
        #[doc = #clear_doc]
        #[allow(dead_code)]
        #vis #asyncness fn #clear() -> #krate::Result<u64> {
            #scope #cache().#clear_call() #dot_await
        }

        #(#shared_attrs)*
        #[doc = #cache_doc]
        #[allow(dead_code)]
        #vis fn #cache() -> &'static #private::CachedFn {
            static #cell: #private::OnceLock<#private::CachedFn> = #private::OnceLock::new();
            #cell.get_or_init(|| #construct)
        }
    }
}

/// The attributes every companion shares with the function: `cfg` (so they
/// exist exactly when it does) and lint levels (they repeat its signature).
/// `expect` becomes `allow`: a companion may well not trigger the lint, and
/// an unmet expectation would warn.
fn shared(attr: &Attribute) -> Option<Attribute> {
    ["cfg", "allow", "warn", "deny", "forbid", "expect"]
        .iter()
        .any(|name| attr.path().is_ident(name))
        .then(|| expect_to_allow(attr))
}

fn expect_to_allow(attr: &Attribute) -> Attribute {
    let mut attr = attr.clone();
    if let syn::Meta::List(list) = &mut attr.meta {
        if list.path.is_ident("expect") {
            list.path = syn::parse_quote!(allow);
        }
    }
    attr
}

/// `|keys, read| key2(keys, read, &a, &b)`: the lookup of a call's key
/// arguments, for `handle.lookup` and `handle.key`.
///
/// Each argument is passed on its own, spanned at its name, so that one
/// which is not `Serialize` is reported there rather than at the attribute.
fn derive_key(config: &Config, private: &TokenStream) -> TokenStream {
    let refs: Vec<TokenStream> = match &config.key {
        Some(expr) => vec![quote_spanned!(expr.span()=> &(#expr))],
        None => config
            .args
            .iter()
            .filter(|a| a.in_key)
            .map(|a| {
                let ident = &a.ident;
                quote_spanned!(ident.span()=> &#ident)
            })
            .collect(),
    };
    let keys = local("__cachekit_keys");
    let want = local("__cachekit_want");
    let helper = format_ident!("key{}", refs.len());
    let serde = if refs.is_empty() {
        quote!(#private::key0(#keys, #want))
    } else {
        quote!(#private::#helper(#keys, #want, #(#refs),*))
    };
    if config.key.is_some() {
        // One expression, evaluated once: the serde path only.
        return quote!(|#keys, #want| #serde);
    }
    // Plain integers and strings encode without serde (see `Arg`), to the
    // same bytes; any other argument sends the list the serde way.
    let direct = local("__cachekit_direct");
    let fits = local("__cachekit_fits");
    let count = refs.len();
    let pushes = refs
        .iter()
        .map(|r| quote!((&#private::Arg(#r)).push_to(&mut #direct)));
    quote! {
        |#keys, #want| {
            #[allow(unused_imports)]
            use #private::{ViaDirect as _, ViaSerde as _};
            let mut #direct = #private::ArgBytes::new(#count);
            #[allow(clippy::needless_borrow, clippy::nonminimal_bool)]
            let #fits = true #(&& #pushes)*;
            if #fits {
                if let ::core::option::Option::Some(found) = #private::probe_encoded(#keys, #want, &#direct) {
                    return found;
                }
            }
            #serde
        }
    }
}

/// `Self::get_user_uncached(self, a, b)`.
fn call_body(config: &Config, names: &Names) -> TokenStream {
    let Names {
        scope, uncached, ..
    } = names;
    let turbofish = &config.turbofish;
    let receiver = config.receiver.as_ref().map(|r| {
        let token = r.self_token;
        quote!(#token,)
    });
    let args = config.args.iter().map(|a| &a.ident);
    quote!(#scope #uncached #turbofish (#receiver #(#args),*))
}

/// The signature with `mut` bindings removed: the generated body only moves
/// the arguments on, so `mut` would warn.
fn strip_binding_mut(sig: &mut Signature) {
    for input in &mut sig.inputs {
        match input {
            FnArg::Typed(pt) => {
                if let Pat::Ident(pi) = &mut *pt.pat {
                    pi.mutability = None;
                }
            }
            FnArg::Receiver(r) if r.reference.is_none() => r.mutability = None,
            FnArg::Receiver(_) => {}
        }
    }
}

fn renamed(sig: &Signature, ident: &Ident) -> Signature {
    let mut sig = sig.clone();
    sig.ident = ident.clone();
    sig
}

/// `_invalidate` takes what the key is made of: the key arguments, or,
/// with `key = ...`, the receiver and every argument not skipped.
fn invalidate_sig(config: &Config, sig: &Signature, ident: &Ident, krate: &syn::Path) -> Signature {
    let mut out = renamed(sig, ident);
    let keep_receiver = config.key.is_some();
    out.inputs = sig
        .inputs
        .iter()
        .filter(|input| match input {
            FnArg::Receiver(_) => keep_receiver,
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) => config
                    .args
                    .iter()
                    .any(|a| a.ident == pi.ident && !a.skipped),
                _ => false,
            },
        })
        .cloned()
        .collect();
    out.output = syn::parse_quote!(-> #krate::Result<bool>);
    out
}

/// The `Setup` literal the handle is built from.
fn setup(config: &Config, func: &ItemFn, private: &TokenStream) -> TokenStream {
    let namespace = &config.namespace;
    let name = func.sig.ident.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    let operation = match &config.operation {
        Operation::Named(op) => quote!(#private::Operation::Named(#op)),
        Operation::Free => quote! {
            #private::Operation::Free { module: ::core::module_path!(), name: #name }
        },
        Operation::Method => quote! {
            #private::Operation::Method {
                module: ::core::module_path!(),
                owner: ::core::any::type_name::<Self>(),
                name: #name,
            }
        },
    };
    let version = match config.version {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    };
    let ttl = ttl_tokens(config.ttl.as_ref(), private);
    let l1_ttl = ttl_tokens(config.l1_ttl.as_ref(), private);
    let max_stale = ttl_tokens(config.max_stale.as_ref(), private);
    let compute_timeout = ttl_tokens(config.compute_timeout.as_ref(), private);
    let l1 = config.l1;
    quote! {
        #private::Setup {
            namespace: #namespace,
            operation: #operation,
            version: #version,
            ttl: #ttl,
            max_stale: #max_stale,
            compute_timeout: #compute_timeout,
            tiers: #private::Tiers { l1: #l1, l1_ttl: #l1_ttl },
        }
    }
}

/// `ttl = 60` is a constant; `ttl = <expr>` is evaluated once and must be a
/// `std::time::Duration` (the user's own `Duration` import is used as is:
/// injecting one would leave theirs unused).
fn ttl_tokens(ttl: Option<&TtlValue>, private: &TokenStream) -> TokenStream {
    match ttl {
        None => quote!(::core::option::Option::None),
        Some(TtlValue::Secs(secs, span)) => {
            quote_spanned!(*span=> ::core::option::Option::Some(#private::Duration::from_secs(#secs)))
        }
        Some(TtlValue::Expr(expr)) => {
            let value = local("__cachekit_ttl");
            let typed = quote_spanned!(expr.span()=> let #value: #private::Duration = #expr;);
            quote!(::core::option::Option::Some({ #typed #value }))
        }
    }
}
