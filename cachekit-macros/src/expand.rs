//! Step 3: code generation.
//!
//! The function's body moves, unchanged, into `<fn>_uncached`; the function
//! itself becomes a call through its handle (`<fn>_cache()`), and the other
//! companions reuse both. Generated locals have mixed-site hygiene, so a
//! user's `key = ...` expression cannot see them.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, ItemFn, Pat, Signature, Visibility};

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

/// The function and its companions: `_uncached`, `_refresh`,
/// `_invalidate`, `_clear` and `_cache`.
fn generate(config: &Config, func: ItemFn) -> TokenStream {
    let common = Common::new(config, &func);
    let main = cached_fn(&common, &func);
    let uncached = uncached_fn(&common, func.clone());
    let refresh = refresh_fn(&common);
    let invalidate = invalidate_fn(&common);
    let clear = clear_fn(&common, &func);
    let cache = cache_fn(&common, &func);
    quote! {
        #main

        #uncached

        #refresh

        #invalidate

        #clear

        #cache
    }
}

/// What the function and its companions are built from.
struct Common<'a> {
    config: &'a Config,
    names: Names,
    /// The function's `cfg` and lint attributes (see [`shared`]).
    attrs: Vec<Attribute>,
    vis: Visibility,
    /// The function's signature without `mut` bindings.
    sig: Signature,
    /// The locals holding the handle and the looked-up key.
    handle: Ident,
    key: Ident,
    /// The closure deriving the key (see [`derive_key`]).
    derive: TokenStream,
    /// `value`, `result` or `option`: how a hit and a miss are returned.
    mode: &'static str,
    /// `_blocking` for a sync function, else nothing.
    suffix: &'static str,
    /// The runtime function a call goes through, e.g. `result_blocking`.
    call: Ident,
    call_body: TokenStream,
    dot_await: TokenStream,
}

impl<'a> Common<'a> {
    fn new(config: &'a Config, func: &ItemFn) -> Self {
        let names = Names::new(config, func);
        let derive = derive_key(config, &names.private);
        let call_body = call_body(config, &names);
        let mode = match (config.returns, config.cache_none) {
            (Returns::Value, _) | (Returns::Option, true) => "value",
            (Returns::Result, _) => "result",
            (Returns::Option, false) => "option",
        };
        let suffix = if config.is_async { "" } else { "_blocking" };
        let mut sig = func.sig.clone();
        strip_binding_mut(&mut sig);
        Common {
            config,
            names,
            attrs: func.attrs.iter().filter_map(shared).collect(),
            vis: func.vis.clone(),
            sig,
            handle: local("__cachekit_handle"),
            key: local("__cachekit_key"),
            derive,
            mode,
            suffix,
            // Pointing at the return type: "cannot be cached" errors land there.
            call: Ident::new(&format!("{mode}{suffix}"), config.output_span),
            call_body,
            dot_await: if config.is_async {
                quote!(.await)
            } else {
                quote!()
            },
        }
    }

    /// The key lookup of a `Cached` or `Refresh` call. An async call
    /// settles its remembered entry (the thread's table is borrowed) before
    /// its first `.await`: a hit returns here.
    fn lookup(&self, call: &str) -> TokenStream {
        let Common { handle, derive, .. } = self;
        let private = &self.names.private;
        let call = Ident::new(call, Span::call_site());
        let lookup = quote!(#handle.lookup(#private::Call::#call, #derive));
        if !self.config.is_async {
            return lookup;
        }
        let key = &self.key;
        let value = local("__cachekit_value");
        let hit = match self.mode {
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
    }
}

/// The function itself: look up, else run the body.
fn cached_fn(common: &Common<'_>, func: &ItemFn) -> TokenStream {
    let Common {
        vis,
        sig,
        handle,
        key,
        call,
        call_body,
        dot_await,
        ..
    } = common;
    let Names {
        private,
        scope,
        cache,
        ..
    } = &common.names;
    // `expect` becomes `allow` here too: the body, where most lints fire,
    // now lives in `_uncached`.
    let attrs: Vec<Attribute> = func.attrs.iter().map(expect_to_allow).collect();
    let lookup = common.lookup("Cached");
    quote! {
        #(#attrs)*
        #vis #sig {
            let #handle = #scope #cache();
            let #key = #lookup;
            #private::#call(#handle, #private::Call::Cached, #key, move || #call_body) #dot_await
        }
    }
}

/// `_uncached`: the original body, under the original signature.
fn uncached_fn(common: &Common<'_>, mut body_fn: ItemFn) -> TokenStream {
    let Names { uncached, link, .. } = &common.names;
    let attrs = &common.attrs;
    body_fn.attrs = attrs.clone();
    body_fn.sig.ident = uncached.clone();
    let doc = format!(
        "Runs {link} without its cache: the body only, neither reading nor writing \
         cached entries."
    );
    quote! {
        #(#attrs)*
        #[doc = #doc]
        #[allow(dead_code)]
        #body_fn
    }
}

/// `_refresh`: run the body, store its result, return it.
fn refresh_fn(common: &Common<'_>) -> TokenStream {
    let Common {
        attrs,
        vis,
        handle,
        key,
        call,
        call_body,
        dot_await,
        ..
    } = common;
    let Names {
        private,
        scope,
        cache,
        refresh,
        link,
        ..
    } = &common.names;
    let sig = renamed(&common.sig, refresh);
    let doc = format!(
        "Runs {link}'s body and stores the result in its cache as a miss would, \
         replacing the cached entry; returns the fresh result."
    );
    let lookup = common.lookup("Refresh");
    quote! {
        #(#attrs)*
        #[doc = #doc]
        #[allow(dead_code)]
        #vis #sig {
            let #handle = #scope #cache();
            let #key = #lookup;
            #private::#call(#handle, #private::Call::Refresh, #key, move || #call_body) #dot_await
        }
    }
}

/// `_invalidate`: the arguments the key is made of.
fn invalidate_fn(common: &Common<'_>) -> TokenStream {
    let Common {
        config,
        attrs,
        vis,
        handle,
        key,
        derive,
        dot_await,
        ..
    } = common;
    let Names {
        scope,
        cache,
        invalidate,
        link,
        ..
    } = &common.names;
    let sig = invalidate_sig(config, &common.sig, invalidate, &config.krate);
    let call = Ident::new(&format!("invalidate{}", common.suffix), Span::call_site());
    let doc = format!(
        "Removes the cached entry of {link} for these arguments from every tier; \
         returns whether there was one.\n\n# Errors\n\nWhen the shared tier (L2) fails, \
         so that the entry may still be there."
    );
    quote! {
        #(#attrs)*
        #[doc = #doc]
        #[allow(dead_code)]
        #[allow(unused_variables)]
        #vis #sig {
            let #handle = #scope #cache();
            let #key = #handle.key(#derive);
            #handle.#call(#key) #dot_await
        }
    }
}

/// `_clear`: every entry of the function.
fn clear_fn(common: &Common<'_>, func: &ItemFn) -> TokenStream {
    let Common {
        config,
        attrs,
        vis,
        dot_await,
        ..
    } = common;
    let Names {
        scope,
        cache,
        clear,
        link,
        ..
    } = &common.names;
    let asyncness = &func.sig.asyncness;
    let krate = &config.krate;
    let call = Ident::new(&format!("clear{}", common.suffix), Span::call_site());
    let doc = format!(
        "Removes every cached entry of {link} from every tier; returns how many were \
         removed.\n\n# Errors\n\nWhen the shared tier (L2) fails, so that entries may remain."
    );
    quote! {
        #(#attrs)*
        #[doc = #doc]
        #[allow(dead_code)]
        #vis #asyncness fn #clear() -> #krate::Result<u64> {
            #scope #cache().#call() #dot_await
        }
    }
}

/// `_cache`: the handle, built (and listed by `cachekit::registry()`) on first use.
fn cache_fn(common: &Common<'_>, func: &ItemFn) -> TokenStream {
    let Common {
        config, attrs, vis, ..
    } = common;
    let Names {
        private,
        cache,
        link,
        ..
    } = &common.names;
    let doc = format!(
        "The cache handle of {link}: its stats, key segments and cache, built on the \
         first call."
    );
    let setup = setup(config, func, private);
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
        #(#attrs)*
        #[doc = #doc]
        #[allow(dead_code)]
        #vis fn #cache() -> &'static #private::CachedFn {
            static #cell: #private::OnceLock<#private::CachedFn> = #private::OnceLock::new();
            #private::CachedFn::get_or_init(&#cell, || #construct)
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
    let (interop, encrypted) = (config.interop, config.encrypted);
    quote! {
        #private::Setup {
            namespace: #namespace,
            operation: #operation,
            version: #version,
            ttl: #ttl,
            max_stale: #max_stale,
            compute_timeout: #compute_timeout,
            tiers: #private::Tiers { l1: #l1, l1_ttl: #l1_ttl },
            interop: #interop,
            encrypted: #encrypted,
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
