//! Step 2: the options checked against the function they decorate.
//!
//! The result is a [`Config`] that code generation can trust: every key
//! argument is a plain named argument, no `&mut` anywhere, segments valid.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, GenericParam, Generics, Ident, ItemFn, LitStr, Pat, PathArguments,
    Receiver, ReturnType, Signature, Type,
};

use crate::args::{Options, Returns, TtlValue};
use crate::errors::Errors;
use crate::segment;

/// The most arguments a key is made of: cachekit's `__private::key16`
/// (serde serializes tuples of up to 16 elements).
const MAX_KEY_ARGS: usize = 16;

/// One named argument of the function.
pub(crate) struct Arg {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// Part of the key (not skipped, no `key = ...` given).
    pub(crate) in_key: bool,
    /// Skipped: not needed to compute the key.
    pub(crate) skipped: bool,
}

/// How the default operation segment is derived at run time.
pub(crate) enum Operation {
    /// `name = "..."`, already validated.
    Named(String),
    /// From `module_path!()` and the function's name.
    Free,
    /// From `module_path!()`, `Self`'s name and the method's name.
    Method,
}

/// Everything code generation needs, checked.
pub(crate) struct Config {
    pub(crate) is_async: bool,
    pub(crate) returns: Returns,
    pub(crate) cache_none: bool,
    /// `interop`: the family's interop/v1 values.
    pub(crate) interop: bool,
    /// `encrypted`: values encrypted with the process's encryption setting.
    pub(crate) encrypted: bool,
    pub(crate) namespace: String,
    pub(crate) operation: Operation,
    pub(crate) version: Option<u32>,
    pub(crate) ttl: Option<TtlValue>,
    pub(crate) l1_ttl: Option<TtlValue>,
    pub(crate) l1: bool,
    pub(crate) max_stale: Option<TtlValue>,
    pub(crate) compute_timeout: Option<TtlValue>,
    pub(crate) backend: Option<syn::Expr>,
    pub(crate) key: Option<syn::Expr>,
    pub(crate) receiver: Option<Receiver>,
    /// Inside an `impl` block: companions are associated functions.
    pub(crate) in_impl: bool,
    pub(crate) args: Vec<Arg>,
    /// The type and const parameters, to call the body explicitly.
    pub(crate) turbofish: Option<TokenStream>,
    /// The span of the return type, where "cannot be cached" errors point.
    pub(crate) output_span: Span,
    pub(crate) krate: syn::Path,
}

/// Checks `options` against `func`.
///
/// # Errors
/// Every problem found, combined, each pointing at its token.
pub(crate) fn validate(options: Options, func: &ItemFn) -> syn::Result<Config> {
    let mut errors = Errors::default();
    let sig = &func.sig;
    check_fn_kind(sig, &mut errors);
    let has_key = options.key.is_some();
    if !has_key {
        check_generics_have_key(&sig.generics, &mut errors);
    }
    let (receiver, mut args) = arguments(sig, has_key, &mut errors);
    apply_skip(&options.skip, &mut args, &mut errors);
    check_key_args(&args, &mut errors);

    let (returns, output_span) = returns_of(&sig.output, options.returns, &mut errors);
    if let (Some(span), false) = (options.cache_none, returns == Returns::Option) {
        errors.push(syn::Error::new(
            span,
            "`cache_none` only applies to functions returning `Option<T>` \
             (use `returns = option` if a type alias hides the `Option`)",
        ));
    }

    if let Some(span) = options.interop {
        check_interop_names(span, &options, &mut errors);
    }
    let namespace = namespace_of(options.namespace.as_ref(), &mut errors);
    let version = options.version.map(|(n, _)| n);
    let in_impl = receiver.is_some() || mentions_self(func);
    let operation = operation_of(options.name.as_ref(), version, in_impl, &mut errors);

    let config = Config {
        is_async: sig.asyncness.is_some(),
        returns,
        cache_none: options.cache_none.is_some(),
        interop: options.interop.is_some(),
        encrypted: options.encrypted.is_some(),
        namespace,
        operation,
        version,
        ttl: options.ttl,
        l1_ttl: options.l1_ttl,
        l1: options.l1.is_none_or(|b| b.value),
        max_stale: options.max_stale,
        compute_timeout: options.compute_timeout,
        backend: options.backend,
        key: options.key,
        receiver,
        in_impl,
        args,
        turbofish: turbofish(&sig.generics),
        output_span,
        krate: options
            .krate
            .unwrap_or_else(|| syn::parse_quote!(::cachekit)),
    };
    errors.finish(config)
}

/// `const`, `unsafe`, `extern` and variadic functions cannot be cached.
fn check_fn_kind(sig: &Signature, errors: &mut Errors) {
    if let Some(c) = &sig.constness {
        errors.push(syn::Error::new_spanned(c, "a `const fn` cannot be cached"));
    }
    if let Some(u) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            u,
            "#[cached] does not support `unsafe fn`; cache a safe wrapper instead",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "#[cached] does not support `extern` functions; cache a Rust wrapper instead",
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            v,
            "variadic functions cannot be cached",
        ));
    }
}

/// Without `key = ...`, the first type or const parameter is an error.
fn check_generics_have_key(generics: &Generics, errors: &mut Errors) {
    for param in &generics.params {
        if matches!(param, GenericParam::Type(_) | GenericParam::Const(_)) {
            errors.push(syn::Error::new_spanned(
                param,
                "a generic function needs `key = ...`: calls with the same arguments but \
                 different generic types would share one cache entry; give a key that \
                 tells them apart, e.g. `#[cached(key = (std::any::type_name::<T>(), id))]`",
            ));
            break;
        }
    }
}

/// The receiver and the named arguments, every one in the key unless
/// `key = ...` is given; reports `&mut`, `self` by value and patterns.
fn arguments(sig: &Signature, has_key: bool, errors: &mut Errors) -> (Option<Receiver>, Vec<Arg>) {
    let mut receiver = None;
    let mut args = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                if let Some(err) = receiver_error(r) {
                    errors.push(err);
                }
                receiver = Some(r.clone());
            }
            FnArg::Typed(pt) => {
                if let Some(err) = find_mut_ref(&pt.ty) {
                    errors.push(err);
                }
                match &*pt.pat {
                    Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                        args.push(Arg {
                            ident: pi.ident.clone(),
                            ty: (*pt.ty).clone(),
                            in_key: !has_key,
                            skipped: false,
                        });
                    }
                    other => errors.push(syn::Error::new_spanned(
                        other,
                        "#[cached] needs each argument bound to a plain name (`user: User`), \
                         so it can be part of the key; destructure it in the body instead",
                    )),
                }
            }
        }
    }
    (receiver, args)
}

/// Takes the arguments `skip(...)` names out of the key.
fn apply_skip(skip: &[Ident], args: &mut [Arg], errors: &mut Errors) {
    for (i, name) in skip.iter().enumerate() {
        if name == "self" {
            errors.push(syn::Error::new_spanned(
                name,
                "`self` is never part of the key; remove it from `skip`",
            ));
        } else if skip[..i].contains(name) {
            errors.push(syn::Error::new_spanned(
                name,
                format!("`{name}` is skipped twice"),
            ));
        } else if let Some(arg) = args.iter_mut().find(|a| a.ident == *name) {
            arg.in_key = false;
            arg.skipped = true;
        } else {
            let known: Vec<String> = args.iter().map(|a| format!("`{}`", a.ident)).collect();
            let known = if known.is_empty() {
                "the function has no arguments".to_owned()
            } else {
                format!("its arguments are {}", known.join(", "))
            };
            errors.push(syn::Error::new_spanned(
                name,
                format!(
                    "`skip` names `{name}`, which is not an argument of this function; {known}"
                ),
            ));
        }
    }
}

/// Key arguments must have nameable types, and be at most `MAX_KEY_ARGS`.
fn check_key_args(args: &[Arg], errors: &mut Errors) {
    for arg in args.iter().filter(|a| a.in_key) {
        if let Some(tokens) = find_impl_trait(&arg.ty) {
            errors.push(syn::Error::new_spanned(
                tokens,
                format!(
                    "an `impl Trait` argument cannot be part of the key: its type has no name \
                     to check; leave it out with `skip({})`, or give the key with `key = ...`",
                    arg.ident
                ),
            ));
        }
    }

    let key_args: Vec<&Arg> = args.iter().filter(|a| a.in_key).collect();
    if key_args.len() > MAX_KEY_ARGS {
        errors.push(syn::Error::new_spanned(
            &key_args[MAX_KEY_ARGS].ident,
            format!(
                "at most {MAX_KEY_ARGS} arguments can be part of the key; leave some out \
                 with `skip(...)`, or give the key with `key = ...`"
            ),
        ));
    }
}

/// `namespace = "..."` checked, or the crate's name.
fn namespace_of(namespace: Option<&LitStr>, errors: &mut Errors) -> String {
    match namespace {
        Some(lit) => errors
            .keep(segment::check(lit, "namespace", None))
            .unwrap_or_default(),
        None => errors
            .keep(segment::crate_namespace(Span::call_site()))
            .unwrap_or_default(),
    }
}

/// `interop` needs `namespace` and `name` spelled out: the other languages
/// name the entries the same way, and a default derived from the crate and
/// module would change with a rename.
fn check_interop_names(span: Span, options: &Options, errors: &mut Errors) {
    let missing: Vec<&str> = [
        ("namespace", options.namespace.is_none()),
        ("name", options.name.is_none()),
    ]
    .into_iter()
    .filter_map(|(option, absent)| absent.then_some(option))
    .collect();
    if !missing.is_empty() {
        errors.push(syn::Error::new(
            span,
            format!(
                "`interop` needs `namespace = \"...\"` and `name = \"...\"`, the segments \
                 every language uses for these entries (as in cachekit-py's \
                 `@cache(interop=\"get_user\", namespace=\"users\")`); missing: {}",
                missing.join(", ")
            ),
        ));
    }
}

/// `name = "..."` checked, or how to derive the name at run time.
fn operation_of(
    name: Option<&LitStr>,
    version: Option<u32>,
    in_impl: bool,
    errors: &mut Errors,
) -> Operation {
    match name {
        Some(lit) => Operation::Named(
            errors
                .keep(segment::check(lit, "name", version))
                .unwrap_or_default(),
        ),
        None if in_impl => Operation::Method,
        None => Operation::Free,
    }
}

/// `::<T, N>` for the type and const parameters, if any.
fn turbofish(generics: &Generics) -> Option<TokenStream> {
    let explicit: Vec<TokenStream> = generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(t.ident.to_token_stream()),
            GenericParam::Const(c) => Some(c.ident.to_token_stream()),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    // Explicit, so that parameters only the return type mentions are not
    // left to inference (allowed beside `impl Trait` arguments since 1.63).
    (!explicit.is_empty()).then(|| quote::quote!(::<#(#explicit),*>))
}

fn receiver_error(r: &Receiver) -> Option<syn::Error> {
    let by_value = "#[cached] methods take `&self`: with `self` by value the method would \
                    consume `self` even when the cache answers; take `&self`";
    let by_mut = "#[cached] methods cannot take `&mut self`: when the cache answers, the body \
                  does not run, so its changes to `self` would not happen; take `&self`";
    if r.colon_token.is_none() {
        return match (&r.reference, &r.mutability) {
            (None, _) => Some(syn::Error::new_spanned(r, by_value)),
            (Some(_), Some(_)) => Some(syn::Error::new_spanned(r, by_mut)),
            (Some(_), None) => None,
        };
    }
    // `self: T`: plain `Self` is by value; `&mut` anywhere is a mutation.
    if let Type::Path(p) = &*r.ty {
        if p.qself.is_none() && p.path.is_ident("Self") {
            return Some(syn::Error::new_spanned(r, by_value));
        }
    }
    find_mut_ref(&r.ty).map(|_| syn::Error::new_spanned(r, by_mut))
}

/// An error at the first `&mut` inside `ty`, if any.
fn find_mut_ref(ty: &Type) -> Option<syn::Error> {
    let mut found = None;
    walk_type(ty, &mut |t| {
        if let Type::Reference(r) = t {
            if let (Some(m), None) = (&r.mutability, &found) {
                let and = r.and_token;
                found = Some(syn::Error::new_spanned(
                    quote::quote!(#and #m),
                    "#[cached] functions cannot take `&mut` arguments: when the cache answers, \
                     the body does not run, so its changes through `&mut` would not happen",
                ));
            }
        }
    });
    found
}

/// The tokens of the first `impl Trait` inside `ty`, if any (for an error
/// that underlines all of it).
fn find_impl_trait(ty: &Type) -> Option<TokenStream> {
    let mut found = None;
    walk_type(ty, &mut |t| {
        if let (Type::ImplTrait(it), None) = (t, &found) {
            found = Some(it.to_token_stream());
        }
    });
    found
}

/// Calls `f` on `ty` and every type nested in it.
fn walk_type(ty: &Type, f: &mut dyn FnMut(&Type)) {
    f(ty);
    match ty {
        Type::Array(a) => walk_type(&a.elem, f),
        Type::Group(g) => walk_type(&g.elem, f),
        Type::Paren(p) => walk_type(&p.elem, f),
        Type::Ptr(p) => walk_type(&p.elem, f),
        Type::Reference(r) => walk_type(&r.elem, f),
        Type::Slice(s) => walk_type(&s.elem, f),
        Type::Tuple(t) => t.elems.iter().for_each(|e| walk_type(e, f)),
        Type::Path(p) => {
            if let Some(q) = &p.qself {
                walk_type(&q.ty, f);
            }
            for seg in &p.path.segments {
                if let PathArguments::AngleBracketed(ab) = &seg.arguments {
                    for arg in &ab.args {
                        if let GenericArgument::Type(t) = arg {
                            walk_type(t, f);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// How the return value is cached, and where to point "cannot be cached".
fn returns_of(
    output: &ReturnType,
    forced: Option<(Returns, Span)>,
    errors: &mut Errors,
) -> (Returns, Span) {
    let ty = match output {
        ReturnType::Default => return (forced.map_or(Returns::Value, |f| f.0), output.span()),
        ReturnType::Type(_, ty) => ty,
    };
    if let Some(tokens) = find_impl_trait(ty) {
        errors.push(syn::Error::new_spanned(
            tokens,
            "an `impl Trait` return type cannot be cached: the cache must decode the value \
             into a named type; return a concrete type",
        ));
    }
    let detected = detect(ty);
    (forced.map_or(detected, |f| f.0), ty.span())
}

/// `Result<..>` (any path ending in `Result` with type arguments) or
/// `Option<T>`; anything else is a plain value.
fn detect(ty: &Type) -> Returns {
    match ty {
        Type::Group(g) => detect(&g.elem),
        Type::Paren(p) => detect(&p.elem),
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return Returns::Value;
            };
            let PathArguments::AngleBracketed(ab) = &last.arguments else {
                return Returns::Value;
            };
            let types = ab
                .args
                .iter()
                .filter(|a| matches!(a, GenericArgument::Type(_)))
                .count();
            match last.ident.to_string().as_str() {
                "Result" if types >= 1 => Returns::Result,
                "Option" if types == 1 => Returns::Option,
                _ => Returns::Value,
            }
        }
        _ => Returns::Value,
    }
}

/// Whether `Self` appears in the function, which then must be in an `impl`.
fn mentions_self(func: &ItemFn) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tt| match tt {
            TokenTree::Ident(i) => i == "Self",
            TokenTree::Group(g) => scan(g.stream()),
            _ => false,
        })
    }
    scan(func.sig.to_token_stream()) || scan(func.block.to_token_stream())
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn detect_str(ty: Type) -> Returns {
        detect(&ty)
    }

    #[test]
    fn detects_result_and_option_through_paths() {
        assert!(detect_str(parse_quote!(Result<u8, E>)) == Returns::Result);
        assert!(detect_str(parse_quote!(std::io::Result<u8>)) == Returns::Result);
        assert!(detect_str(parse_quote!(anyhow::Result<Vec<u8>>)) == Returns::Result);
        assert!(detect_str(parse_quote!(Option<u8>)) == Returns::Option);
        assert!(detect_str(parse_quote!(::core::option::Option<String>)) == Returns::Option);
        assert!(detect_str(parse_quote!(Vec<Option<u8>>)) == Returns::Value);
        assert!(detect_str(parse_quote!(MyResult)) == Returns::Value);
        assert!(detect_str(parse_quote!(Result)) == Returns::Value);
    }

    #[test]
    fn finds_nested_mut_refs_and_impl_traits() {
        assert!(find_mut_ref(&parse_quote!(Option<&mut u8>)).is_some());
        assert!(find_mut_ref(&parse_quote!(&[&mut u8])).is_some());
        assert!(find_mut_ref(&parse_quote!(&u8)).is_none());
        assert!(find_impl_trait(&parse_quote!(Vec<impl Clone>)).is_some());
        assert!(find_impl_trait(&parse_quote!(Vec<u8>)).is_none());
    }
}
