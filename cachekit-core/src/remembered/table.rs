//! The per-thread tables of a [`RecentCalls`](super::RecentCalls), what they may
//! keep alive, and their release when a thread exits.
//!
//! A slot holds its L1 entry strongly (a read costs no atomic operation)
//! while two limits allow it: [`HELD_BYTES`] per thread, and the L1's
//! [`PinBudget`], shared by every thread and function on that L1, so that
//! the values kept alive past their eviction stay within a fixed share of
//! the L1 budget however many threads there are. Past either limit a slot
//! holds its entry weakly. When a thread exits, its tables drop what they
//! hold (`thread_local`'s `ThreadLocal` would otherwise keep them until the
//! next thread with the same id comes along).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use thread_local::ThreadLocal;

use super::{L1Ref, WeakL1Ref};
use crate::memory::PinBudget;

/// Per thread, the values the table may keep in memory by itself: entries
/// it holds strongly stay allocated after L1 drops them, until the thread
/// looks at that slot again or exits. Entries past this budget are held
/// weakly (which costs two atomic operations per read).
pub(super) const HELD_BYTES: usize = 64 * 1024;

/// What a [`RecentCalls`](super::RecentCalls) keeps for all its threads; shared
/// with the threads' exit hooks.
pub(super) struct Tables {
    pub(super) threads: ThreadLocal<RefCell<Table>>,
    /// Every table's count of calls answered from a remembered entry. (A
    /// table outlives its thread: `ThreadLocal` hands it to the next one.)
    pub(super) hits: Mutex<Vec<Arc<AtomicU64>>>,
    /// The share of the L1 budget the tables may keep alive.
    pub(super) pins: Arc<PinBudget>,
}

/// One thread's slots.
pub(super) struct Table {
    /// Empty until the thread's first lookup, then `SLOTS` long.
    pub(super) slots: Vec<Option<Slot>>,
    /// The weights of the entries held strongly, against `HELD_BYTES`
    /// and `pins`.
    pub(super) held: usize,
    /// Calls this table answered; only its thread writes it, so a bump is
    /// a plain load and store, not a locked add.
    pub(super) hits: Arc<AtomicU64>,
    /// Whether `hits` is in [`Tables::hits`] already.
    pub(super) counted: bool,
    pub(super) pins: Arc<PinBudget>,
}

pub(super) struct Slot {
    pub(super) args: Box<[u8]>,
    pub(super) key: Arc<str>,
    pub(super) entry: Held,
}

/// How a slot holds its key's L1 entry.
pub(super) enum Held {
    Nothing,
    /// Kept in memory by the slot; the weight counts against `HELD_BYTES`
    /// and the L1's pin budget.
    Strong(L1Ref, usize),
    /// Readable while something else (L1) keeps it in memory.
    Weak(WeakL1Ref),
}

impl Tables {
    pub(super) fn new(pins: Arc<PinBudget>) -> Self {
        Self {
            threads: ThreadLocal::new(),
            hits: Mutex::default(),
            pins,
        }
    }

    /// Calls answered from a remembered entry, on every thread.
    pub(super) fn hits(&self) -> u64 {
        let tables = self.hits.lock().unwrap_or_else(PoisonError::into_inner);
        tables
            .iter()
            .fold(0, |sum, hits| sum.wrapping_add(hits.load(Relaxed)))
    }

    /// This thread's table, made empty on first use.
    #[inline(always)]
    pub(super) fn table(&self) -> &RefCell<Table> {
        self.threads.get_or(|| {
            RefCell::new(Table {
                slots: Vec::new(),
                held: 0,
                hits: Arc::default(),
                counted: false,
                pins: self.pins.clone(),
            })
        })
    }

    /// Counts the table's hits in [`hits`](Self::hits) (once), and has the
    /// thread drop the table's entries when it exits.
    #[cold]
    pub(super) fn start(self: &Arc<Self>, table: &mut Table) {
        if !table.counted {
            table.counted = true;
            let mut tables = self.hits.lock().unwrap_or_else(PoisonError::into_inner);
            tables.push(table.hits.clone());
        }
        // Unavailable while the thread's own destructors run: then the
        // table stays for the next thread, bounded by the pin budget.
        let _ = EXITS.try_with(|exits| {
            if let Ok(mut exits) = exits.0.try_borrow_mut() {
                exits.retain(|tables| tables.strong_count() > 0);
                exits.push(Arc::downgrade(self));
            }
        });
    }

    /// Empties this thread's table, if it has one it is not using.
    fn release_this_thread(&self) {
        if let Some(Ok(mut table)) = self.threads.get().map(RefCell::try_borrow_mut) {
            table.clear();
        }
    }
}

impl Table {
    /// Forgets `entry`'s hold on its value; gives back what it held.
    pub(super) fn release(held: &mut usize, pins: &PinBudget, entry: &mut Held) {
        if let Held::Strong(_, weight) = std::mem::replace(entry, Held::Nothing) {
            *held -= weight;
            pins.give_back(weight);
        }
    }

    /// Holds `entry` strongly if both limits allow its `weight`, else weakly.
    pub(super) fn hold(held: &mut usize, pins: &PinBudget, entry: &L1Ref, weight: usize) -> Held {
        if held.saturating_add(weight) <= HELD_BYTES && pins.take(weight) {
            *held += weight;
            Held::Strong(entry.clone(), weight)
        } else {
            Held::Weak(entry.downgrade())
        }
    }

    /// Drops every slot (the next lookup on this thread starts afresh).
    fn clear(&mut self) {
        self.slots = Vec::new();
        self.pins.give_back(std::mem::take(&mut self.held));
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        self.pins.give_back(self.held);
    }
}

/// The tables this thread used, emptied when it exits.
struct Exits(RefCell<Vec<Weak<Tables>>>);

impl Drop for Exits {
    fn drop(&mut self) {
        for tables in self.0.get_mut().drain(..) {
            if let Some(tables) = tables.upgrade() {
                tables.release_this_thread();
            }
        }
    }
}

thread_local! {
    static EXITS: Exits = const { Exits(RefCell::new(Vec::new())) };
}
