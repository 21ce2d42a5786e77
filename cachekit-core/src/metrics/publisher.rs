//! What is published in batches or sampled: once a second from one
//! background thread, and at once on [`publish`].
//!
//! A hit is the hottest path there is, and a `metrics` counter's increment
//! is a call into the `metrics` crate even for a no-op handle (it is not
//! inlined), and with a recorder a locked add on a cache line every thread
//! shares. So hits are only counted where they already are, per thread
//! (`ThreadCounter`, the remembered tables); a [`Total`] reads that running
//! total and adds what is new to its counters (also when it is dropped).
//! Gauges of state that changes without an event of ours (a pool's
//! connections) are sampled the same way.

use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use metrics::Counter;

/// How often the background thread publishes every total.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(1);

type Read = Box<dyn Fn() -> u64 + Send + Sync>;

/// Something the publisher thread calls once a second.
pub(crate) trait Publish: Send + Sync {
    /// Publishes what changed since the last call; calls into the
    /// recorder, never blocks for long.
    fn publish(&self);
}

/// Keeps `P` published for as long as it lives.
pub(crate) struct Published<P: Publish + 'static>(Arc<P>);

impl<P: Publish + 'static> Published<P> {
    pub(crate) fn new(publish: P) -> Self {
        let publish = Arc::new(publish);
        let weak: Weak<P> = Arc::downgrade(&publish);
        register(weak);
        Self(publish)
    }
}

impl<P: Publish + 'static> std::ops::Deref for Published<P> {
    type Target = P;
    fn deref(&self) -> &P {
        &self.0
    }
}

/// Counters kept equal to a running total, published in batches.
pub(crate) struct Total(Published<Shared>);

struct Shared {
    counters: Box<[Counter]>,
    read: Read,
    /// The part of the total already added to the counters. Locked for
    /// the whole publish, so that once a [`publish`] returns, every count
    /// made before it is in the counters (not still on its way in from a
    /// concurrent publisher).
    published: Mutex<u64>,
}

impl Publish for Shared {
    fn publish(&self) {
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let total = (self.read)();
        if total > *published {
            for counter in self.counters.iter() {
                counter.increment(total - *published);
            }
            *published = total;
        }
    }
}

impl Total {
    /// Keeps each of `counters` equal to what `read` returns (a total that
    /// only grows), from now on.
    pub(crate) fn new(
        counters: Vec<Counter>,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        Self(Published::new(Shared {
            counters: counters.into_boxed_slice(),
            published: Mutex::new(read()),
            read: Box::new(read),
        }))
    }
}

impl Drop for Total {
    fn drop(&mut self) {
        self.0.publish();
    }
}

impl std::fmt::Debug for Total {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let published = *self
            .0
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Total")
            .field("published", &published)
            .finish_non_exhaustive()
    }
}

type Registry = Mutex<Vec<Weak<dyn Publish>>>;

/// Everything published, for the publisher.
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn register(publish: Weak<dyn Publish>) {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(publish);
    start_publisher();
}

/// Publishes every batched count and sampled gauge now: the hits of every
/// cache and `#[cached]` function, the Redis pools' connections. They are
/// otherwise published once a second; call this before rendering a scrape
/// when the counts must be exact to the call.
pub fn publish() {
    // Read the list, then publish without holding its lock: a publish
    // calls into the recorder.
    let live: Vec<Arc<dyn Publish>> = {
        let mut all = registry().lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|p| p.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    for p in live {
        p.publish();
    }
}

/// Starts the thread that publishes every [`PUBLISH_EVERY`], once per
/// process. Should it fail to start, counts are published by [`publish`]
/// and when caches are dropped, and the failure is logged.
fn start_publisher() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let started = std::thread::Builder::new()
            .name("cachekit-metrics".into())
            .stack_size(64 * 1024)
            .spawn(|| {
                let mut logged = false;
                loop {
                    std::thread::sleep(PUBLISH_EVERY);
                    // A recorder that panics must not end the publishing of
                    // every other cache's counts.
                    if std::panic::catch_unwind(publish).is_err() && !logged {
                        logged = true;
                        tracing::error!(target: "cachekit", "the metrics recorder panicked while cachekit published its counts (logged once)");
                    }
                }
            });
        if let Err(err) = started {
            tracing::error!(target: "cachekit", error = %err, "cannot start the metrics publisher thread: hit counters are published only by cachekit::publish_metrics()");
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    /// What the recorder's one counter gained since the last call (a
    /// snapshot resets it).
    fn gained(recorder: &DebuggingRecorder) -> u64 {
        let snapshot = recorder.snapshotter().snapshot().into_vec();
        match snapshot.as_slice() {
            [(_, _, _, DebugValue::Counter(n))] => *n,
            other => panic!("one counter expected: {other:?}"),
        }
    }

    #[test]
    fn publishes_what_the_total_gained_once_each() {
        let recorder = DebuggingRecorder::new();
        let running = Arc::new(AtomicU64::new(5));
        let read = running.clone();
        let total = metrics::with_local_recorder(&recorder, || {
            let counter = metrics::counter!("total_test");
            Total::new(vec![counter], move || read.load(Ordering::Relaxed))
        });
        // What the total held before it was published is not counted.
        publish();
        assert_eq!(gained(&recorder), 0);
        running.fetch_add(3, Ordering::Relaxed);
        publish();
        publish();
        assert_eq!(gained(&recorder), 3);
        // Concurrent publishers add each increment once.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        running.fetch_add(1, Ordering::Relaxed);
                        total.0.publish();
                    }
                });
            }
        });
        publish();
        assert_eq!(gained(&recorder), 4000);
        running.fetch_add(2, Ordering::Relaxed);
        drop(total);
        assert_eq!(gained(&recorder), 2, "dropping publishes the rest");
    }
}
