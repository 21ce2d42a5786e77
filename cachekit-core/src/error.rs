//! One error type for every backend and for the tiered cache.

use std::fmt;

/// What went wrong, as a category a caller can branch on.
///
/// New kinds may be added in minor releases, so match with a wildcard arm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The backend could not be reached or the connection broke.
    Connection,
    /// An operation did not finish within its deadline.
    Timeout,
    /// The server rejected the credentials (or required some).
    Auth,
    /// Every pooled connection was busy and none became free in time.
    PoolExhausted,
    /// The key holds a value of another type (Redis `WRONGTYPE`).
    WrongType,
    /// A value could not be encoded or decoded.
    Serialization,
    /// The configuration is invalid; the message names the field.
    Config,
    /// A value is larger than the configured maximum.
    TooLarge,
    /// The circuit breaker is open and the backend was not called.
    CircuitOpen,
    /// A filesystem or socket operation failed.
    Io,
    /// A conditional write lost a race (compare-and-set, lock ownership).
    Conflict,
    /// The backend does not support this operation.
    Unsupported,
    /// The argument is not acceptable (a key segment, a NaN in the key arguments, ...).
    InvalidInput,
    /// The server answered something the client did not expect.
    Protocol,
    /// The computation that fills the cache failed (only from fail-closed paths).
    Compute,
    /// Too many operations were already in flight; this one was skipped.
    Overloaded,
    /// The backend denied this command or key to the client (Redis ACL
    /// `NOPERM`); other keys and commands may work.
    PermissionDenied,
    /// The backend refused a write for lack of memory or space (Redis
    /// `maxmemory` reached under `noeviction`); reads keep working.
    StorageFull,
    /// One stored entry cannot be used (a symbolic link or another foreign
    /// object where the file backend expects its own file); other keys are
    /// unaffected.
    UnusableEntry,
}

impl ErrorKind {
    /// A short lowercase name, stable across releases, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Timeout => "timeout",
            Self::Auth => "auth",
            Self::PoolExhausted => "pool_exhausted",
            Self::WrongType => "wrong_type",
            Self::Serialization => "serialization",
            Self::Config => "config",
            Self::TooLarge => "too_large",
            Self::CircuitOpen => "circuit_open",
            Self::Io => "io",
            Self::Conflict => "conflict",
            Self::Unsupported => "unsupported",
            Self::InvalidInput => "invalid_input",
            Self::Protocol => "protocol",
            Self::Compute => "compute",
            Self::Overloaded => "overloaded",
            Self::PermissionDenied => "permission_denied",
            Self::StorageFull => "storage_full",
            Self::UnusableEntry => "unusable_entry",
        }
    }

    fn default_transient(self) -> bool {
        matches!(
            self,
            Self::Connection
                | Self::Timeout
                | Self::PoolExhausted
                | Self::CircuitOpen
                | Self::Conflict
                | Self::StorageFull
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every fallible cachekit operation.
///
/// The message says what happened and, where there is one, what fixes it.
/// Messages never contain passwords or other secrets.
pub struct Error {
    kind: ErrorKind,
    message: String,
    transient: Option<bool>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with cachekit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message for humans.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            transient: None,
            source: None,
        }
    }

    /// Attaches the underlying cause, kept for [`std::error::Error::source`].
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Overrides whether a retry may succeed (the default follows the kind).
    ///
    /// A full disk is an [`ErrorKind::Io`] that may clear up; a permission
    /// error is one that will not.
    #[must_use]
    pub fn with_transient(mut self, transient: bool) -> Self {
        self.transient = Some(transient);
        self
    }

    /// The category of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        self.transient
            .unwrap_or_else(|| self.kind.default_transient())
    }

    /// Whether the error is a deadline that passed.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// Whether the backend could not be reached.
    pub fn is_connection(&self) -> bool {
        self.kind == ErrorKind::Connection
    }

    /// Whether the error says the backend as a whole is unhealthy, as
    /// opposed to a problem with one request (a key of another type, a key
    /// an ACL denies, an argument the server refused, a full Redis refusing
    /// one write): only these count towards the circuit breaker.
    ///
    /// Unhealthy: [`Connection`](ErrorKind::Connection),
    /// [`Timeout`](ErrorKind::Timeout), [`PoolExhausted`](ErrorKind::PoolExhausted),
    /// [`Io`](ErrorKind::Io), [`Auth`](ErrorKind::Auth) (the connection's
    /// credentials) and [`Protocol`](ErrorKind::Protocol) (replies that are
    /// not Redis).
    pub fn is_backend_failure(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Connection
                | ErrorKind::Timeout
                | ErrorKind::PoolExhausted
                | ErrorKind::Io
                | ErrorKind::Auth
                | ErrorKind::Protocol
        )
    }

    /// Shorthand for a [`ErrorKind::Config`] error naming the offending field.
    pub fn config(field: &str, problem: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Config, format!("invalid `{field}`: {problem}"))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(t) = self.transient {
            d.field("transient", &t);
        }
        if let Some(source) = &self.source {
            // Sources are formatted with Display: their Debug output is not ours
            // to vouch for (it might show a connection string).
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::NotConnected
            | std::io::ErrorKind::BrokenPipe => ErrorKind::Connection,
            _ => ErrorKind::Io,
        };
        Error::new(kind, err.to_string()).with_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_follows_kind_unless_overridden() {
        assert!(Error::new(ErrorKind::Timeout, "t").is_transient());
        assert!(!Error::new(ErrorKind::Auth, "a").is_transient());
        assert!(!Error::new(ErrorKind::Io, "disk").is_transient());
        assert!(Error::new(ErrorKind::Io, "disk full")
            .with_transient(true)
            .is_transient());
    }

    #[test]
    fn only_failures_of_the_backend_count_as_such() {
        use ErrorKind::*;
        for kind in [Connection, Timeout, PoolExhausted, Io, Auth, Protocol] {
            assert!(Error::new(kind, "x").is_backend_failure(), "{kind}");
        }
        for kind in [
            WrongType,
            Serialization,
            Config,
            TooLarge,
            CircuitOpen,
            Conflict,
            Unsupported,
            InvalidInput,
            Compute,
            Overloaded,
            PermissionDenied,
            StorageFull,
            UnusableEntry,
        ] {
            assert!(!Error::new(kind, "x").is_backend_failure(), "{kind}");
        }
        assert_eq!(StorageFull.as_str(), "storage_full");
        assert_eq!(PermissionDenied.as_str(), "permission_denied");
        assert_eq!(UnusableEntry.as_str(), "unusable_entry");
    }

    #[test]
    fn display_starts_with_kind_and_source_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::from(io);
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(err.to_string().starts_with("connection: "));
        assert!(std::error::Error::source(&err).is_some());
    }
}
