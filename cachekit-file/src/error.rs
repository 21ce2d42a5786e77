//! Turns filesystem errors into cachekit errors that name the path and the fix.

use std::any::Any;
use std::io;
use std::path::Path;

use cachekit_core::{Error, ErrorKind};
use rustix::io::Errno;

/// Classifies `err`, raised while doing `what` (e.g. "writing") to `path`.
///
/// A full disk may clear up (transient); permission and read-only errors
/// will not until someone changes the system (permanent).
pub(crate) fn io_error(what: &str, path: &Path, err: io::Error) -> Error {
    let path = path.display();
    let (message, transient) = match Errno::from_io_error(&err) {
        Some(Errno::NOSPC | Errno::DQUOT) => (
            format!(
                "disk full while {what} {path}: free space on that filesystem, lower the \
                 cache's max_bytes, or move the cache with CACHEKIT_FILE_DIR"
            ),
            true,
        ),
        Some(Errno::ACCESS | Errno::PERM) => (
            format!(
                "permission denied while {what} {path}: the cache directory must be owned and \
                 writable by this user (chown it, then chmod 700), or choose another one with \
                 CACHEKIT_FILE_DIR"
            ),
            false,
        ),
        Some(Errno::ROFS) => (
            format!(
                "read-only filesystem while {what} {path}: point CACHEKIT_FILE_DIR (or the \
                 config's dir) at a writable filesystem"
            ),
            false,
        ),
        Some(Errno::LOOP) => {
            // One entry is unusable; the backend and other keys are fine.
            let message = format!(
                "{path} is a symbolic link while {what} it: cache entries are never followed \
                 through links; remove the link"
            );
            return Error::new(ErrorKind::UnusableEntry, message)
                .with_transient(false)
                .with_source(err);
        }
        _ => (format!("{what} {path} failed: {err}"), false),
    };
    Error::new(ErrorKind::Io, message)
        .with_transient(transient)
        .with_source(err)
}

/// Same as [`io_error`] for rustix's errno type.
pub(crate) fn errno_error(what: &str, path: &Path, err: Errno) -> Error {
    io_error(what, path, err.into())
}

/// A blocking worker that panicked or was cancelled (runtime shutting down).
pub(crate) fn join_error(err: tokio::task::JoinError) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("file backend worker did not finish: {err}"),
    )
}

/// A write on the calling thread that panicked: reported as [`join_error`]
/// reports one on the blocking pool.
pub(crate) fn caller_panic(panic: &(dyn Any + Send)) -> Error {
    let message = match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(message), _) => message,
        (None, Some(message)) => message.as_str(),
        (None, None) => "(not a string)",
    };
    Error::new(
        ErrorKind::Io,
        format!(
            "file backend write did not finish: it panicked on the calling thread with message \
             {message:?}; this is a bug in cachekit-file, please report it"
        ),
    )
}

/// A blocking task that ended without answering (it cannot, short of a
/// panic, which [`join_error`] reports instead).
pub(crate) fn no_answer() -> Error {
    Error::new(
        ErrorKind::Io,
        "file backend worker ended without a result; this is a bug in cachekit-file, please report it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(errno: Errno) -> Error {
        io_error(
            "writing",
            Path::new("/cache/abc"),
            io::Error::from_raw_os_error(errno.raw_os_error()),
        )
    }

    // The injected-error variant of the disk-full test: it always runs, and
    // tests/disk_full.rs adds the real tmpfs run where mounting is allowed.
    #[test]
    fn disk_full_is_transient_io_with_path_and_fix() {
        for errno in [Errno::NOSPC, Errno::DQUOT] {
            let err = classify(errno);
            assert_eq!(err.kind(), ErrorKind::Io);
            assert!(err.is_transient());
            assert!(err.message().contains("disk full"), "{err}");
            assert!(err.message().contains("/cache/abc"), "{err}");
            assert!(err.message().contains("max_bytes"), "{err}");
            assert!(std::error::Error::source(&err).is_some());
        }
    }

    #[test]
    fn permission_and_read_only_are_permanent() {
        for errno in [Errno::ACCESS, Errno::PERM] {
            let err = classify(errno);
            assert_eq!(err.kind(), ErrorKind::Io);
            assert!(!err.is_transient());
            assert!(err.message().contains("permission denied"), "{err}");
            assert!(err.message().contains("chmod 700"), "{err}");
        }
        let err = classify(Errno::ROFS);
        assert!(!err.is_transient());
        assert!(err
            .message()
            .contains("read-only filesystem while writing /cache/abc"));
        let link = classify(Errno::LOOP);
        assert_eq!(link.kind(), ErrorKind::UnusableEntry);
        assert!(link.message().contains("symbolic link"), "{link}");
        let other = classify(Errno::IO);
        assert_eq!(other.kind(), ErrorKind::Io);
        assert!(other.message().starts_with("writing /cache/abc failed"));
    }
}
