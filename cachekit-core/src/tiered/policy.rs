//! Per-call settings, falling back to the cache's defaults.

use std::time::Duration;

use crate::codec::ValueFormat;
use crate::encryption::Encryption;

/// The longest TTL or stale window a policy keeps: a century, as good as
/// forever. Longer ones (`Duration::MAX`) are shortened to it, so that a
/// value's life in L2 (its TTL plus its stale window) stays a time every
/// backend can store and freshness can be told from.
const LONGEST: Duration = crate::deadline::FAR;

/// How one call (or one `#[cached]` function) uses the cache. Every field
/// left `None` takes the cache's default from [`TieredCacheBuilder`](super::TieredCacheBuilder).
/// A `ttl` or `max_stale` longer than a century counts as a century.
///
/// ```
/// use std::time::Duration;
/// use cachekit::Policy;
///
/// let policy = Policy::new()
///     .ttl(Duration::from_secs(300))
///     .max_stale(Duration::from_secs(3600))
///     .refresh_ahead(0.2);
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Policy {
    /// How long a value is fresh.
    pub ttl: Option<Duration>,
    /// Serve-stale: keep values this long past their TTL and return them when
    /// recomputing fails or takes longer than `compute_timeout`.
    pub max_stale: Option<Duration>,
    /// Refresh-ahead: a hit in this last fraction of the TTL (0 < f < 1)
    /// triggers one background recomputation.
    pub refresh_ahead: Option<f64>,
    /// Shorten each TTL by a random fraction up to this (0 <= j < 1), so
    /// keys written together do not expire together.
    pub ttl_jitter: Option<f64>,
    /// With serve-stale: how long a recomputation may take before the stale
    /// value is returned instead.
    pub compute_timeout: Option<Duration>,
    /// How values are written: cachekit's envelope (the default) or the
    /// family's interop/v1 document, which cachekit-py reads.
    pub format: Option<ValueFormat>,
    /// Encrypt values (AES-256-GCM, bound to their key), in either format.
    pub encryption: Option<Encryption>,
}

impl Policy {
    /// All defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets [`ttl`](Self::ttl).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
    /// Sets [`max_stale`](Self::max_stale).
    #[must_use]
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = Some(max_stale);
        self
    }
    /// Sets [`refresh_ahead`](Self::refresh_ahead).
    #[must_use]
    pub fn refresh_ahead(mut self, fraction: f64) -> Self {
        self.refresh_ahead = Some(fraction);
        self
    }
    /// Sets [`ttl_jitter`](Self::ttl_jitter).
    #[must_use]
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.ttl_jitter = Some(fraction);
        self
    }
    /// Sets [`compute_timeout`](Self::compute_timeout).
    #[must_use]
    pub fn compute_timeout(mut self, timeout: Duration) -> Self {
        self.compute_timeout = Some(timeout);
        self
    }

    /// Sets [`format`](Self::format) to [`ValueFormat::Interop`]: values
    /// shared with cachekit-py and cachekit-rs in interop mode.
    #[must_use]
    pub fn interop(self) -> Self {
        self.format(ValueFormat::Interop)
    }
    /// Sets [`format`](Self::format).
    #[must_use]
    pub fn format(mut self, format: ValueFormat) -> Self {
        self.format = Some(format);
        self
    }
    /// Sets [`encryption`](Self::encryption).
    #[must_use]
    pub fn encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// This policy's fields, with `defaults` filling the gaps, and a TTL or
    /// stale window beyond [`LONGEST`] shortened to it.
    pub(crate) fn or(&self, defaults: &Policy) -> Policy {
        let longest = |d: Duration| d.min(LONGEST);
        Policy {
            ttl: self.ttl.or(defaults.ttl).map(longest),
            max_stale: self.max_stale.or(defaults.max_stale).map(longest),
            refresh_ahead: self.refresh_ahead.or(defaults.refresh_ahead),
            ttl_jitter: self.ttl_jitter.or(defaults.ttl_jitter),
            compute_timeout: self.compute_timeout.or(defaults.compute_timeout),
            format: self.format.or(defaults.format),
            encryption: self
                .encryption
                .clone()
                .or_else(|| defaults.encryption.clone()),
        }
    }

    /// Checks the ranges; `what` prefixes field names in errors.
    pub(crate) fn validate(&self, what: &str) -> crate::Result<()> {
        let bad =
            |field: &str, why: &str| Err(crate::Error::config(&format!("{what}{field}"), why));
        if self.ttl.is_some_and(|t| t.is_zero()) {
            return bad("ttl", "must be greater than zero");
        }
        if self.refresh_ahead.is_some_and(|f| !(f > 0.0 && f < 1.0)) {
            return bad(
                "refresh_ahead",
                "must be a fraction between 0 and 1 (exclusive)",
            );
        }
        if self.ttl_jitter.is_some_and(|j| !(0.0..1.0).contains(&j)) {
            return bad("ttl_jitter", "must be a fraction in [0, 1)");
        }
        Ok(())
    }

    /// The TTL to write: jittered (never lengthened) when jitter is set.
    pub(crate) fn write_ttl(&self) -> Option<Duration> {
        let ttl = self.ttl?;
        match self.ttl_jitter {
            // `mul_f64` panics past `Duration::MAX`, which the rounding of
            // a TTL near it to `f64` can reach; such a TTL stays as it is.
            Some(j) if j > 0.0 => Some(
                Duration::try_from_secs_f64(ttl.as_secs_f64() * (1.0 - j * fastrand::f64()))
                    .map_or(ttl, |jittered| jittered.min(ttl)),
            ),
            _ => Some(ttl),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_of_the_longest_ttl_does_not_overflow() {
        for jitter in [1e-20, 0.5, 0.999] {
            let policy = Policy::new().ttl(Duration::MAX).ttl_jitter(jitter);
            for _ in 0..1000 {
                let ttl = policy.write_ttl().unwrap();
                assert!(ttl <= Duration::MAX);
            }
        }
        let policy = Policy::new().ttl(Duration::from_secs(100)).ttl_jitter(0.5);
        for _ in 0..1000 {
            let ttl = policy.write_ttl().unwrap();
            assert!(ttl <= Duration::from_secs(100) && ttl >= Duration::from_secs(50));
        }
    }
}
