//! The tracing spans of cache calls and L2 operations, recorded by a layer
//! of this file's own (`docs/observability.md`, "Tracing spans" lists them).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::tests::Flaky;
use super::*;
use crate::keys::KeyBuilder;

const MINUTE: Duration = Duration::from_secs(60);
const KEY: &str = "spans:user:42";

/// One span as the layer saw it: its fields as recorded (at creation and
/// later), and the events emitted while it or a span inside it was entered.
#[derive(Debug, Clone)]
struct SpanRec {
    name: &'static str,
    level: Level,
    fields: BTreeMap<String, String>,
    /// `(level, message and fields)` of each event inside.
    events: Vec<(Level, String)>,
}

impl SpanRec {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Recorded {
    spans: Vec<SpanRec>,
    /// Open spans: the registry reuses the ids of closed ones.
    open: HashMap<Id, usize>,
}

/// A layer that keeps every span and the events inside it.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Recorded>>);

impl Recorder {
    fn take(&self) -> Vec<SpanRec> {
        std::mem::take(&mut self.0.lock().unwrap().spans)
    }
}

/// Collects fields as text.
struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut recorded = self.0.lock().unwrap();
        recorded.spans.push(SpanRec {
            name: attrs.metadata().name(),
            level: *attrs.metadata().level(),
            fields,
            events: Vec::new(),
        });
        let at = recorded.spans.len() - 1;
        recorded.open.insert(id.clone(), at);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut recorded = self.0.lock().unwrap();
        if let Some(&at) = recorded.open.get(id) {
            values.record(&mut Fields(&mut recorded.spans[at].fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let text = format!("{fields:?}");
        let mut recorded = self.0.lock().unwrap();
        for span in ctx.event_scope(event).into_iter().flatten() {
            if let Some(&at) = recorded.open.get(&span.id()) {
                let level = *event.metadata().level();
                recorded.spans[at].events.push((level, text.clone()));
            }
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        self.0.lock().unwrap().open.remove(&id);
    }
}

/// Runs `test` on a current-thread runtime under a recording subscriber of
/// this thread only, so that tests running alongside do not interfere.
fn traced<F: std::future::Future<Output = ()>>(test: impl FnOnce(Recorder) -> F) {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || runtime.block_on(test(recorder)));
}

fn calls(spans: &[SpanRec]) -> Vec<&SpanRec> {
    spans
        .iter()
        .filter(|s| s.name == compute::CALL_SPAN)
        .collect()
}

fn l2_ops(spans: &[SpanRec]) -> Vec<&str> {
    spans
        .iter()
        .filter(|s| s.name == l2::L2_SPAN)
        .filter_map(|s| s.field("op"))
        .collect()
}

fn two_tier(l2: &Arc<Flaky>) -> TieredCache {
    TieredCache::builder()
        .l2_arc(l2.clone() as Arc<dyn Backend>)
        .build()
        .unwrap()
}

async fn load(cache: &TieredCache) -> u64 {
    cache
        .entry(KEY)
        .ttl(MINUTE)
        .or_compute(|| async { 42 })
        .await
}

#[test]
fn a_miss_computes_in_one_debug_span_and_an_l1_hit_makes_none() {
    traced(|recorder| async move {
        let cache = two_tier(&Flaky::new());
        assert_eq!(load(&cache).await, 42);
        let spans = recorder.take();
        let call = calls(&spans);
        assert_eq!(call.len(), 1, "one span for the miss: {spans:#?}");
        let call = call[0];
        assert_eq!(call.level, Level::DEBUG);
        assert_eq!(call.field("tier"), Some("compute"));
        assert_eq!(call.field("hit"), Some("false"));
        assert!(
            call.field("l2_ms").is_some(),
            "it read and wrote L2: {call:?}"
        );
        // A plain `entry(key)` has no function to name.
        assert_eq!(call.field("namespace"), None);
        assert_eq!(call.field("function"), None);
        let ops = l2_ops(&spans);
        assert!(
            ops.contains(&"get") && ops.contains(&"set"),
            "L2 spans of the read and the write: {ops:?}"
        );
        for l2 in spans.iter().filter(|s| s.name == l2::L2_SPAN) {
            assert_eq!(l2.level, Level::TRACE);
            assert_eq!(l2.field("backend"), Some("flaky"));
            assert_eq!(l2.field("outcome"), Some("ok"));
            assert!(l2.field("ms").is_some(), "{l2:?}");
        }
        // Nothing of the key, the arguments or the value.
        for span in &spans {
            for value in span.fields.values() {
                assert!(!value.contains("spans:user"), "{span:?}");
            }
        }

        assert_eq!(load(&cache).await, 42);
        let spans = recorder.take();
        assert!(spans.is_empty(), "an L1 hit makes no span: {spans:#?}");
        assert_eq!(cache.stats().l1.hits, 1);
    });
}

#[test]
fn an_l2_hit_is_recorded_with_its_latency() {
    traced(|recorder| async move {
        let cache = two_tier(&Flaky::new());
        assert_eq!(load(&cache).await, 42);
        cache.invalidate_local(KEY);
        recorder.take();

        assert_eq!(load(&cache).await, 42);
        let spans = recorder.take();
        let call = calls(&spans);
        assert_eq!(call.len(), 1, "{spans:#?}");
        assert_eq!(call[0].field("tier"), Some("l2"));
        assert_eq!(call[0].field("hit"), Some("true"));
        let l2_ms: f64 = call[0].field("l2_ms").unwrap().parse().unwrap();
        assert!(l2_ms > 0.0, "{l2_ms}");
        assert_eq!(l2_ops(&spans), ["get"]);

        // `get` past L1 makes the same span.
        cache.invalidate_local(KEY);
        assert_eq!(cache.get::<u64>(KEY).await, Some(42));
        let spans = recorder.take();
        let call = calls(&spans);
        assert_eq!(call.len(), 1, "{spans:#?}");
        assert_eq!(call[0].field("tier"), Some("l2"));
        assert_eq!(call[0].field("hit"), Some("true"));
        assert!(call[0].field("l2_ms").is_some());
        // ... and an L1 hit of `get` none.
        assert_eq!(cache.get::<u64>(KEY).await, Some(42));
        assert!(recorder.take().is_empty());
    });
}

#[test]
fn an_l2_error_is_an_event_inside_the_call_span() {
    traced(|recorder| async move {
        let l2 = Flaky::new();
        l2.fail_reads.store(true, SeqCst);
        let cache = two_tier(&l2);
        assert_eq!(load(&cache).await, 42);
        let spans = recorder.take();
        let call = calls(&spans);
        assert_eq!(call.len(), 1, "{spans:#?}");
        let call = call[0];
        assert_eq!(call.field("tier"), Some("compute"));
        assert_eq!(call.field("hit"), Some("false"));
        let failed = |events: &[(Level, String)]| {
            events
                .iter()
                .any(|(level, text)| *level == Level::WARN && text.contains("L2 unavailable"))
        };
        assert!(failed(&call.events), "{call:#?}");
        // Inside the read's own span, which says how it went.
        let read = spans
            .iter()
            .find(|s| s.name == l2::L2_SPAN && s.field("op") == Some("get"))
            .unwrap();
        assert_eq!(read.field("outcome"), Some("connection"));
        assert!(failed(&read.events), "{read:#?}");
    });
}

#[test]
fn a_call_by_arguments_names_its_namespace_and_function() {
    traced(|recorder| async move {
        let cache = two_tier(&Flaky::new());
        let users = KeyBuilder::new("users", "get_user").unwrap();
        let name = cache
            .entry_for(&users, &(42,))
            .ttl(MINUTE)
            .or_compute(|| async { "Ada".to_owned() })
            .await;
        assert_eq!(name, "Ada");
        let spans = recorder.take();
        let call = calls(&spans);
        assert_eq!(call.len(), 1, "{spans:#?}");
        assert_eq!(call[0].field("namespace"), Some("users"));
        assert_eq!(call[0].field("function"), Some("get_user"));
        assert_eq!(call[0].field("tier"), Some("compute"));
    });
}
