//! OpenTelemetry export of the library's spans (`apply`, `step`, `calibrate`,
//! `backfill`, `stage_and_check`, `commit`): OTLP over HTTP with the JSON encoding, which
//! every collector's OTLP/HTTP receiver takes (the OpenTelemetry Collector, Jaeger,
//! Tempo, Honeycomb, ...). Built with the `otlp` feature (on by default); switched on by
//! the standard variables:
//!
//! - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), or `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   (`/v1/traces` is appended);
//! - `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (`k=v,k2=v2`);
//! - `OTEL_EXPORTER_OTLP_TIMEOUT` / `..._TRACES_TIMEOUT` (milliseconds, default 10000);
//! - `OTEL_SERVICE_NAME` (default `memlane`) and `OTEL_RESOURCE_ATTRIBUTES` (`k=v,...`).
//!
//! Spans are batched on a background thread (at most 256 a request, or every second) and
//! flushed when the command ends. An export that fails is a warning, never a failed
//! command. A span that carries an `error` field ends with status ERROR and that message.
//!
//! Written here rather than with the `opentelemetry` crates: their HTTP exporter brings a
//! second `reqwest` and changes the features of `tracing` that Lance is built with, so
//! the feature would cost a second build of Lance; this uses the `reqwest` already built.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Subscriber, warn};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Spans sent in one request at most.
const BATCH: usize = 256;
/// How long a finished span may wait for its batch.
const LINGER: Duration = Duration::from_secs(1);
/// How long the end of the command waits for the last export.
const FLUSH: Duration = Duration::from_secs(10);

/// Where and how to export, from the environment.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The traces URL.
    endpoint: String,
    /// Extra request headers.
    headers: Vec<(String, String)>,
    /// Per-request timeout.
    timeout: Duration,
    /// Resource attributes (service.name first).
    resource: Vec<(String, String)>,
}

/// The value of the first of `names` that is set and not empty.
fn var(names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .find(|v| !v.trim().is_empty())
}

/// `k=v,k2=v2` pairs (whitespace trimmed, `%XX` escapes decoded).
fn pairs(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k.trim()), decode(v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// Percent-decoding, as the W3C baggage format these variables use asks for.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            #[allow(clippy::cast_possible_truncation)]
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Config {
    /// The export the environment asks for (none: no endpoint set).
    pub(crate) fn from_env() -> Option<Config> {
        let endpoint = var(&["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]).or_else(|| {
            var(&["OTEL_EXPORTER_OTLP_ENDPOINT"])
                .map(|e| format!("{}/v1/traces", e.trim_end_matches('/')))
        })?;
        let headers = var(&[
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ])
        .map(|h| pairs(&h))
        .unwrap_or_default();
        let timeout = var(&[
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ])
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis);
        if let Some(p) = var(&[
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]) && p.trim() != "http/json"
        {
            warn!(
                target: "memlane",
                "OTEL_EXPORTER_OTLP_PROTOCOL={p}: memlane exports OTLP over HTTP with the JSON encoding (http/json), which OTLP/HTTP receivers accept on the same port"
            );
        }
        let mut resource = vec![(
            "service.name".to_owned(),
            var(&["OTEL_SERVICE_NAME"]).unwrap_or_else(|| "memlane".into()),
        )];
        resource.push((
            "service.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ));
        resource.push(("process.pid".to_owned(), std::process::id().to_string()));
        for (k, v) in var(&["OTEL_RESOURCE_ATTRIBUTES"])
            .map(|r| pairs(&r))
            .unwrap_or_default()
        {
            if !resource.iter().any(|(rk, _)| *rk == k) {
                resource.push((k, v));
            }
        }
        Some(Config {
            endpoint,
            headers,
            timeout,
            resource,
        })
    }
}

/// An attribute value.
#[derive(Debug, Clone)]
enum AttrValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl AttrValue {
    /// The OTLP JSON `AnyValue` (64-bit integers are strings in OTLP JSON).
    fn json(&self) -> Value {
        match self {
            AttrValue::Str(s) => json!({"stringValue": s}),
            AttrValue::Int(i) => json!({"intValue": i.to_string()}),
            AttrValue::Double(d) => json!({"doubleValue": d}),
            AttrValue::Bool(b) => json!({"boolValue": b}),
        }
    }
}

/// A span as it is recorded, kept in the span's extensions until it closes.
#[derive(Debug, Clone)]
struct SpanData {
    trace_id: u128,
    span_id: u64,
    parent: Option<u64>,
    name: &'static str,
    start: u64,
    attrs: BTreeMap<&'static str, AttrValue>,
}

impl Visit for SpanData {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.attrs.insert(f.name(), AttrValue::Str(v.to_owned()));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.attrs.insert(f.name(), AttrValue::Int(v));
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        let a = i64::try_from(v).map_or_else(|_| AttrValue::Str(v.to_string()), AttrValue::Int);
        self.attrs.insert(f.name(), a);
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.attrs.insert(f.name(), AttrValue::Double(v));
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.attrs.insert(f.name(), AttrValue::Bool(v));
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.attrs
            .insert(f.name(), AttrValue::Str(format!("{v:?}")));
    }
}

/// A finished span, as OTLP JSON.
fn span_json(d: &SpanData, end: u64) -> Value {
    let attributes: Vec<Value> = d
        .attrs
        .iter()
        .filter(|(k, _)| **k != "error")
        .map(|(k, v)| json!({"key": k, "value": v.json()}))
        .collect();
    let status = match d.attrs.get("error") {
        Some(AttrValue::Str(m)) => json!({"code": 2, "message": m}),
        Some(_) => json!({"code": 2}),
        None => json!({"code": 0}),
    };
    json!({
        "traceId": format!("{:032x}", d.trace_id),
        "spanId": format!("{:016x}", d.span_id),
        "parentSpanId": d.parent.map(|p| format!("{p:016x}")).unwrap_or_default(),
        "name": d.name,
        "kind": 1,
        "startTimeUnixNano": d.start.to_string(),
        "endTimeUnixNano": end.to_string(),
        "attributes": attributes,
        "status": status,
    })
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A non-zero random id (OTLP forbids all-zero ids).
fn random_id() -> u128 {
    loop {
        let v = uuid::Uuid::new_v4().as_u128();
        if v as u64 != 0 {
            return v;
        }
    }
}

/// The layer that records spans and hands finished ones to the exporter thread.
pub(crate) struct OtlpLayer {
    tx: Sender<Msg>,
}

enum Msg {
    Span(Value),
    Flush,
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span.parent().and_then(|p| {
            p.extensions()
                .get::<SpanData>()
                .map(|d| (d.trace_id, d.span_id))
        });
        let mut d = SpanData {
            trace_id: parent.map_or_else(random_id, |p| p.0),
            #[allow(clippy::cast_possible_truncation)]
            span_id: random_id() as u64,
            parent: parent.map(|p| p.1),
            name: attrs.metadata().name(),
            start: now_nanos(),
            attrs: BTreeMap::new(),
        };
        attrs.record(&mut d);
        span.extensions_mut().insert(d);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(d) = span.extensions_mut().get_mut::<SpanData>()
        {
            values.record(d);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if let Some(d) = span.extensions_mut().remove::<SpanData>() {
            let _ = self.tx.send(Msg::Span(span_json(&d, now_nanos())));
        }
    }
}

/// Ends the export when dropped: the spans still waiting are sent (bounded wait).
pub(crate) struct Exporter {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Flush);
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + FLUSH;
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// The layer and its exporter for `cfg`.
pub(crate) fn start(cfg: Config) -> (OtlpLayer, Exporter) {
    let (tx, rx) = channel();
    let thread = std::thread::Builder::new()
        .name("memlane-otlp".into())
        .spawn(move || run(&cfg, &rx))
        .ok();
    (OtlpLayer { tx: tx.clone() }, Exporter { tx, thread })
}

/// The exporter thread: batch, send, until told to flush.
fn run(cfg: &Config, rx: &Receiver<Msg>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let client = reqwest::Client::builder().timeout(cfg.timeout).build();
    let Ok(client) = client else { return };
    let mut batch: Vec<Value> = Vec::new();
    let mut oldest = Instant::now();
    let mut warned = false;
    loop {
        let done = match rx.recv_timeout(LINGER) {
            Ok(Msg::Span(s)) => {
                if batch.is_empty() {
                    oldest = Instant::now();
                }
                batch.push(s);
                false
            }
            Ok(Msg::Flush) | Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => false,
        };
        let due = batch.len() >= BATCH || oldest.elapsed() >= LINGER || done;
        if due && !batch.is_empty() {
            let spans = std::mem::take(&mut batch);
            if let Err(e) = rt.block_on(send(&client, cfg, spans))
                && !warned
            {
                warned = true;
                warn!(target: "memlane", "OpenTelemetry export to {} failed: {e}; spans are dropped, the command goes on", cfg.endpoint);
            }
        }
        if done {
            return;
        }
    }
}

/// One export request.
async fn send(client: &reqwest::Client, cfg: &Config, spans: Vec<Value>) -> Result<(), String> {
    let resource: Vec<Value> = cfg
        .resource
        .iter()
        .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
        .collect();
    let body = json!({
        "resourceSpans": [{
            "resource": {"attributes": resource},
            "scopeSpans": [{
                "scope": {"name": "memlane", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans,
            }],
        }],
    });
    let mut req = client
        .post(&cfg.endpoint)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in &cfg.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_pairs_are_trimmed_and_decoded() {
        assert_eq!(
            pairs(" x-token = a%20b ,api-key=k%3Dv,=skip"),
            vec![
                ("x-token".to_owned(), "a b".to_owned()),
                ("api-key".to_owned(), "k=v".to_owned())
            ]
        );
    }

    #[test]
    fn a_span_with_an_error_ends_with_status_error() {
        let mut d = SpanData {
            trace_id: 1,
            span_id: 2,
            parent: Some(3),
            name: "step",
            start: 5,
            attrs: BTreeMap::new(),
        };
        d.attrs.insert("op", AttrValue::Str("reembed".into()));
        d.attrs.insert("rows", AttrValue::Int(7));
        d.attrs
            .insert("error", AttrValue::Str("gate blocked".into()));
        let j = span_json(&d, 9);
        assert_eq!(j["traceId"], "00000000000000000000000000000001");
        assert_eq!(j["parentSpanId"], "0000000000000003");
        assert_eq!(j["status"], json!({"code": 2, "message": "gate blocked"}));
        assert_eq!(j["attributes"].as_array().map(Vec::len), Some(2));
        assert_eq!(j["endTimeUnixNano"], "9");
    }
}
