//! Step 1: the attribute's options, parsed into typed values.
//!
//! Every problem found here is collected, so one compile shows all of them,
//! each pointing at the offending token.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitBool, LitStr, Meta, Path, Token, UnOp};

use crate::errors::Errors;

/// Every option, in the order the docs list them.
pub(crate) const OPTIONS: &[&str] = &[
    "backend",
    "ttl",
    "l1_ttl",
    "l1",
    "max_stale",
    "compute_timeout",
    "namespace",
    "name",
    "version",
    "key",
    "skip",
    "cache_none",
    "interop",
    "encrypted",
    "returns",
    "crate",
];

/// A lifetime given as whole seconds or as a `Duration` expression.
pub(crate) enum TtlValue {
    /// `ttl = 60`: checked to be at least one second.
    Secs(u64, Span),
    /// `ttl = Duration::from_millis(500)`: checked at run time.
    Expr(Box<Expr>),
}

/// What the function returns, as far as caching is concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Returns {
    /// Any `T`: always cached.
    Value,
    /// `Result<T, E>`: only `Ok` is cached.
    Result,
    /// `Option<T>`: only `Some` is cached (unless `cache_none`).
    Option,
}

/// The attribute's options, typed but not yet checked against the function.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) backend: Option<Expr>,
    pub(crate) ttl: Option<TtlValue>,
    pub(crate) l1_ttl: Option<TtlValue>,
    pub(crate) l1: Option<LitBool>,
    pub(crate) max_stale: Option<TtlValue>,
    pub(crate) compute_timeout: Option<TtlValue>,
    pub(crate) namespace: Option<LitStr>,
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<(u32, Span)>,
    pub(crate) key: Option<Expr>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) cache_none: Option<Span>,
    pub(crate) interop: Option<Span>,
    pub(crate) encrypted: Option<Span>,
    pub(crate) returns: Option<(Returns, Span)>,
    pub(crate) krate: Option<Path>,
}

/// Parses the tokens between the attribute's parentheses.
///
/// # Errors
/// Every unknown, duplicate or ill-typed option, combined.
pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Options> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)?;
    let mut options = Options::default();
    let mut seen: Vec<String> = Vec::new();
    let mut errors = Errors::default();
    for meta in metas {
        let path = meta.path();
        let name = match path.get_ident() {
            Some(ident) => ident.to_string(),
            None => {
                errors.push(syn::Error::new_spanned(path, unknown_option(path)));
                continue;
            }
        };
        if !OPTIONS.contains(&name.as_str()) {
            errors.push(syn::Error::new_spanned(path, unknown_option(path)));
            continue;
        }
        if seen.contains(&name) {
            errors.push(syn::Error::new_spanned(
                path,
                format!("duplicate option `{name}`: give each option once"),
            ));
            continue;
        }
        seen.push(name.clone());
        if let Err(err) = apply(&mut options, &name, meta) {
            errors.push(err);
        }
    }
    errors.finish(options)
}

fn unknown_option(path: &Path) -> String {
    let shown = path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::");
    let hint = closest(&shown)
        .map(|near| format!("did you mean `{near}`? "))
        .unwrap_or_default();
    format!(
        "unknown option `{shown}`; {hint}valid options are: {}",
        OPTIONS.join(", ")
    )
}

/// The option one or two edits away from `name`, if there is one.
fn closest(name: &str) -> Option<&'static str> {
    OPTIONS
        .iter()
        .map(|opt| (edit_distance(name, opt), *opt))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, opt)| opt)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let replace = prev[j] + usize::from(ca != *cb);
            cur.push(replace.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn apply(options: &mut Options, name: &str, meta: Meta) -> syn::Result<()> {
    match name {
        "backend" => options.backend = Some(value(meta, "backend = my_backend()")?),
        "key" => options.key = Some(value(meta, "key = (user_id, lang)")?),
        "ttl" => options.ttl = Some(ttl(value(meta, "ttl = 60")?, "ttl")?),
        "l1_ttl" => options.l1_ttl = Some(ttl(value(meta, "l1_ttl = 10")?, "l1_ttl")?),
        "l1" => options.l1 = Some(bool_lit(value(meta, "l1 = false")?, "l1")?),
        "max_stale" => {
            options.max_stale = Some(ttl(value(meta, "max_stale = 3600")?, "max_stale")?)
        }
        "compute_timeout" => {
            options.compute_timeout =
                Some(ttl(value(meta, "compute_timeout = 2")?, "compute_timeout")?)
        }
        "namespace" => {
            options.namespace = Some(str_lit(
                value(meta, "namespace = \"users\"")?,
                "namespace",
                "users",
            )?)
        }
        "name" => {
            options.name = Some(str_lit(
                value(meta, "name = \"get_user\"")?,
                "name",
                "get_user",
            )?)
        }
        "version" => options.version = Some(version(value(meta, "version = 2")?)?),
        "skip" => options.skip = skip(meta)?,
        "cache_none" => options.cache_none = flag(meta, "cache_none")?,
        "interop" => options.interop = flag(meta, "interop")?,
        "encrypted" => options.encrypted = flag(meta, "encrypted")?,
        "returns" => options.returns = Some(returns(value(meta, "returns = result")?)?),
        "crate" => options.krate = Some(krate(value(meta, "crate = ::cachekit")?)?),
        _ => {}
    }
    Ok(())
}

/// The value of a `name = value` option.
fn value(meta: Meta, example: &str) -> syn::Result<Expr> {
    match meta {
        Meta::NameValue(nv) => Ok(nv.value),
        other => Err(syn::Error::new_spanned(
            &other,
            format!("expected `{example}`"),
        )),
    }
}

fn ttl(expr: Expr, option: &str) -> syn::Result<TtlValue> {
    let wrong = |span: &dyn quote::ToTokens, what: &str| {
        syn::Error::new_spanned(
            span,
            format!(
                "`{option}` takes a whole number of seconds or a `Duration` expression, \
                 not {what}: `{option} = 60` or `{option} = Duration::from_millis(1500)`"
            ),
        )
    };
    match &expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Int(int) if int.base10_digits().starts_with('-') => Err(negative(&expr, option)),
            Lit::Float(f) if f.base10_digits().starts_with('-') => Err(negative(&expr, option)),
            Lit::Int(int) => {
                if !matches!(int.suffix(), "" | "u8" | "u16" | "u32" | "u64" | "usize") {
                    return Err(wrong(int, "an integer with this suffix"));
                }
                let secs: u64 = int.base10_parse().map_err(|_| {
                    syn::Error::new_spanned(int, format!("`{option}` is too large for a u64"))
                })?;
                if secs == 0 {
                    return Err(syn::Error::new_spanned(
                        int,
                        format!(
                            "`{option} = 0` would expire entries at once; give at least 1 second, \
                             a sub-second `Duration` (`{option} = Duration::from_millis(500)`), \
                             or leave `{option}` out"
                        ),
                    ));
                }
                Ok(TtlValue::Secs(secs, int.span()))
            }
            Lit::Float(_) => Err(wrong(lit, "a float")),
            Lit::Str(_) => Err(wrong(lit, "a string")),
            Lit::Bool(_) => Err(wrong(lit, "a bool")),
            _ => Err(wrong(lit, "this literal")),
        },
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => Err(negative(&expr, option)),
        _ => Ok(TtlValue::Expr(Box::new(expr))),
    }
}

fn negative(expr: &Expr, option: &str) -> syn::Error {
    syn::Error::new_spanned(
        expr,
        format!("`{option}` must be positive: a lifetime cannot be negative"),
    )
}

fn str_lit(expr: Expr, option: &str, example: &str) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s),
        other => Err(syn::Error::new_spanned(
            &other,
            format!("`{option}` takes a string literal: `{option} = \"{example}\"`"),
        )),
    }
}

fn bool_lit(expr: Expr, option: &str) -> syn::Result<LitBool> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b),
        other => Err(syn::Error::new_spanned(
            &other,
            format!("`{option}` takes `true` or `false`"),
        )),
    }
}

fn version(expr: Expr) -> syn::Result<(u32, Span)> {
    let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = &expr
    else {
        return Err(syn::Error::new_spanned(
            &expr,
            "`version` takes an integer literal: `version = 2`",
        ));
    };
    let n: u32 = int.base10_parse().map_err(|_| {
        syn::Error::new_spanned(int, "`version` must be an integer from 1 to 4294967295")
    })?;
    if n == 0 {
        return Err(syn::Error::new_spanned(
            int,
            "`version` starts at 1; leave it out for unversioned keys",
        ));
    }
    Ok((n, int.span()))
}

fn skip(meta: Meta) -> syn::Result<Vec<Ident>> {
    let Meta::List(list) = meta else {
        return Err(syn::Error::new_spanned(
            &meta,
            "expected `skip(arg, ...)`: the arguments to leave out of the key",
        ));
    };
    // `parse_any` so that `skip(self)` gets a clear error in validation
    // rather than "expected identifier".
    let names = list.parse_args_with(|input: syn::parse::ParseStream<'_>| {
        Punctuated::<Ident, Token![,]>::parse_terminated_with(input, Ident::parse_any)
    })?;
    if names.is_empty() {
        return Err(syn::Error::new_spanned(
            &list,
            "`skip()` names no argument; name the arguments to leave out of the key, or remove it",
        ));
    }
    Ok(names.into_iter().collect())
}

fn flag(meta: Meta, option: &str) -> syn::Result<Option<Span>> {
    match meta {
        Meta::Path(path) => Ok(Some(path.span())),
        Meta::NameValue(nv) => Ok(bool_lit(nv.value, option)?.value.then(|| nv.path.span())),
        Meta::List(list) => Err(syn::Error::new_spanned(
            &list,
            format!("`{option}` is a flag: write `{option}` alone"),
        )),
    }
}

fn returns(expr: Expr) -> syn::Result<(Returns, Span)> {
    let kind = match &expr {
        Expr::Path(p) if p.qself.is_none() => {
            p.path
                .get_ident()
                .and_then(|i| match i.to_string().as_str() {
                    "value" => Some(Returns::Value),
                    "result" => Some(Returns::Result),
                    "option" => Some(Returns::Option),
                    _ => None,
                })
        }
        _ => None,
    };
    match kind {
        Some(kind) => Ok((kind, expr.span())),
        None => Err(syn::Error::new_spanned(
            &expr,
            "`returns` is one of `value` (cache every return value), `result` (cache `Ok` only) \
             or `option` (cache `Some` only)",
        )),
    }
}

fn krate(expr: Expr) -> syn::Result<Path> {
    match expr {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => Ok(p.path),
        other => Err(syn::Error::new_spanned(
            &other,
            "`crate` takes a path to the cachekit crate: `crate = ::my_reexports::cachekit`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn errors_of(tokens: TokenStream) -> String {
        match parse(tokens) {
            Ok(_) => String::new(),
            Err(err) => err
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    #[test]
    fn parses_every_option() {
        let opts = parse(quote! {
            backend = make(), ttl = 60, l1_ttl = Duration::from_secs(5), l1 = false,
            namespace = "users", name = "get_user", version = 3, key = (id, lang),
            skip(db, pool), cache_none, returns = option, crate = ::other::cachekit,
        })
        .unwrap();
        assert!(opts.backend.is_some() && opts.key.is_some());
        assert!(matches!(opts.ttl, Some(TtlValue::Secs(60, _))));
        assert!(matches!(opts.l1_ttl, Some(TtlValue::Expr(_))));
        assert!(!opts.l1.unwrap().value);
        assert_eq!(opts.namespace.unwrap().value(), "users");
        assert_eq!(opts.name.unwrap().value(), "get_user");
        assert_eq!(opts.version.unwrap().0, 3);
        assert_eq!(opts.skip.len(), 2);
        assert!(opts.cache_none.is_some());
        assert!(opts.returns.unwrap().0 == Returns::Option);
        assert_eq!(opts.krate.unwrap().segments.len(), 2);
    }

    #[test]
    fn collects_all_errors_at_once() {
        let all = errors_of(quote! { ttl = 0, tll = 5, name = 3, ttl = 4, version = 0 });
        assert!(all.contains("`ttl = 0`"), "{all}");
        assert!(all.contains("did you mean `ttl`"), "{all}");
        assert!(all.contains("`name` takes a string literal"), "{all}");
        assert!(all.contains("duplicate option `ttl`"), "{all}");
        assert!(all.contains("`version` starts at 1"), "{all}");
    }

    #[test]
    fn rejects_ill_typed_ttls() {
        assert!(errors_of(quote! { ttl = -5 }).contains("must be positive"));
        assert!(errors_of(quote! { ttl = 1.5 }).contains("not a float"));
        assert!(errors_of(quote! { ttl = "60" }).contains("not a string"));
        assert!(errors_of(quote! { ttl = 60i8 }).contains("suffix"));
        assert!(errors_of(quote! { ttl = 99999999999999999999999 }).contains("too large"));
    }

    #[test]
    fn cache_none_false_is_off() {
        assert!(parse(quote! { cache_none = false })
            .unwrap()
            .cache_none
            .is_none());
    }
}
