//! Bench-only switches that swap a hand-written part of the connection
//! layer for what bb8 or redis-rs provides, so that `benches/layer.rs` can
//! measure each part against its alternative in one run. Hidden from the
//! docs and not a stable API: an application has no reason to set them.

/// Bench-only: how reply deadlines are kept.
#[doc(hidden)]
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BenchDeadlines {
    /// The watchdog thread (`cachekit-deadlines`), the default.
    #[default]
    Watchdog,
    /// A tokio timer per command: the path taken when the watchdog thread
    /// cannot start.
    TokioTimer,
    /// No deadline of cachekit's own: redis-rs's `set_response_timeout`
    /// (the response timeout) on each connection. A caller's nearer
    /// deadline (`l2_timeout`) is not applied per command then.
    RedisRs,
}

/// Bench-only: how a command gets a connection.
#[doc(hidden)]
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BenchCheckout {
    /// Lanes: bb8 connections checked out once and shared, the default.
    #[default]
    Lanes,
    /// A bb8 checkout per command, whose multiplexed connection is cloned
    /// and the checkout returned before the command is sent.
    Bb8PerCommand,
    /// A bb8 checkout per command held until the reply (the bb8-redis
    /// idiom): at most `pool_size` commands in flight.
    Bb8Held,
}

/// Bench-only: the parts of the connection layer to swap; the default
/// swaps nothing.
#[doc(hidden)]
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BenchSwitches {
    /// How reply deadlines are kept.
    pub deadlines: BenchDeadlines,
    /// How a command gets a connection.
    pub checkout: BenchCheckout,
    /// No deletion marks: `delete` is a plain UNLINK and computed values
    /// are stored with a plain SET, as before they existed.
    pub no_deletion_marks: bool,
}

impl BenchSwitches {
    /// The given switches.
    pub fn new(deadlines: BenchDeadlines, checkout: BenchCheckout) -> Self {
        Self {
            deadlines,
            checkout,
            no_deletion_marks: false,
        }
    }

    /// The same switches without deletion marks.
    pub fn without_deletion_marks(mut self) -> Self {
        self.no_deletion_marks = true;
        self
    }
}
