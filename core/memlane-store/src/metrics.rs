//! Metrics of a running apply for the people on call, in the Prometheus text exposition
//! format (version 0.0.4): fed by the apply's progress events (rows, rate, lag, the
//! backfill's commits, conflicts and retries, the embedder's requests and tokens) and by
//! each step's report as it completes (gate verdicts, invariant failures). The library
//! renders them; a host serves [`ApplyMetrics::render`] (the CLI's `--metrics-addr`).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use memlane_core::{BackfillStats, StepReport};

use crate::ops::{Progress, ProgressFn};

/// What has been seen so far.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// The current step: (migration, step index, op, phase).
    current: Option<(u32, usize, String, String)>,
    /// Rows embedded by steps already completed.
    embedded_done: u64,
    /// Rows the current step has embedded.
    embedded_now: u64,
    rows_per_sec: f64,
    remaining: u64,
    eta_secs: Option<f64>,
    /// Backfill stats of completed steps, added up, and of the current one.
    stats_done: BackfillStats,
    stats_now: BackfillStats,
    /// Step commits (one per completed step, besides the backfill's).
    step_commits: u64,
    steps_completed: u64,
    steps_blocked: u64,
    gates: std::collections::BTreeMap<String, u64>,
    invariant_failures: u64,
    invariant_warnings: u64,
}

/// The metrics of one apply.
#[derive(Debug)]
pub struct ApplyMetrics {
    store: String,
    seen: Mutex<Seen>,
}

impl ApplyMetrics {
    /// Metrics for an apply on `store`.
    pub fn new(store: impl Into<String>) -> Arc<Self> {
        Arc::new(ApplyMetrics {
            store: store.into(),
            seen: Mutex::new(Seen::default()),
        })
    }

    /// A progress callback that records each event, then calls `next` (the host's own
    /// progress display) if any.
    pub fn progress(self: &Arc<Self>, next: Option<ProgressFn>) -> ProgressFn {
        let me = self.clone();
        Arc::new(move |p: &Progress| {
            me.observe(p);
            if let Some(f) = &next {
                f(p);
            }
        })
    }

    /// Record one progress event.
    pub fn observe(&self, p: &Progress) {
        let Ok(mut s) = self.seen.lock() else {
            return;
        };
        let phase = if p.phase.is_empty() {
            "running"
        } else {
            p.phase.as_str()
        };
        s.current = Some((p.migration, p.step, p.op.clone(), phase.to_owned()));
        let boundary = matches!(phase, "start" | "committed" | "blocked");
        // the compatibility sample's rows are not the backfill's
        let sample = matches!(phase, "sample" | "compat");
        if p.op == "reembed" && !boundary && !sample {
            s.embedded_now = p.done;
            s.rows_per_sec = p.rows_per_sec;
            s.remaining = p.total.saturating_sub(p.done);
            s.eta_secs = p.eta_secs;
            if let Some(b) = &p.backfill {
                s.stats_now = b.clone();
            }
        }
        if let Some(r) = &p.report {
            record_step(&mut s, r, phase == "blocked");
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let s = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let mut out = String::new();
        let store = label(&self.store);
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP memlane_{name} {help}");
            let _ = writeln!(out, "# TYPE memlane_{name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(
                    out,
                    "memlane_{name}{{store=\"{store}\"{labels}}} {}",
                    num(v)
                );
            }
        };
        let (cur_stats, done_stats) = (&s.stats_now, &s.stats_done);
        let add = |f: fn(&BackfillStats) -> u64| f(cur_stats) + f(done_stats);
        let calls = |f: fn(&memlane_core::EmbedderCalls) -> u64| {
            cur_stats.embedder.as_ref().map_or(0, f) + done_stats.embedder.as_ref().map_or(0, f)
        };
        #[allow(clippy::cast_precision_loss)]
        let n = |x: u64| x as f64;
        metric(
            "rows_embedded_total",
            "counter",
            "Rows embedded by this apply's re-embeds.",
            vec![(String::new(), n(s.embedded_done + s.embedded_now))],
        );
        metric(
            "rows_per_second",
            "gauge",
            "Rows embedded per second by the current re-embed.",
            vec![(String::new(), s.rows_per_sec)],
        );
        metric(
            "backfill_remaining_rows",
            "gauge",
            "Rows the current re-embed still has to embed (the catch-up lag under writes).",
            vec![(String::new(), n(s.remaining))],
        );
        metric(
            "backfill_eta_seconds",
            "gauge",
            "Seconds left at the current rate (-1: not known yet).",
            vec![(String::new(), s.eta_secs.unwrap_or(-1.0))],
        );
        let phase = s.current.as_ref().map(|(m, i, op, ph)| {
            (
                format!(
                    ",migration=\"{m:04}\",step=\"{}\",op=\"{}\",phase=\"{}\"",
                    i + 1,
                    label(op),
                    label(ph)
                ),
                1.0,
            )
        });
        metric(
            "phase",
            "gauge",
            "The step and phase the apply is in (1 for the current one).",
            phase.into_iter().collect(),
        );
        metric(
            "commits_total",
            "counter",
            "Commits by this apply (backfill checkpoints and steps).",
            vec![(String::new(), n(s.step_commits + add(|b| b.commits)))],
        );
        metric(
            "commit_conflicts_total",
            "counter",
            "Backfill commits preempted by another writer and redone.",
            vec![(String::new(), n(add(|b| b.conflicts)))],
        );
        metric(
            "fragment_retries_total",
            "counter",
            "Fragment tasks run again after a worker failed.",
            vec![(String::new(), n(add(|b| b.retries)))],
        );
        metric(
            "embedder_requests_total",
            "counter",
            "Requests sent to embedders that count them (HTTP, model processes).",
            vec![(String::new(), n(calls(|c| c.requests)))],
        );
        metric(
            "embedder_retries_total",
            "counter",
            "Embedder requests sent again after a retryable failure.",
            vec![(String::new(), n(calls(|c| c.retries)))],
        );
        metric(
            "embedder_tokens_total",
            "counter",
            "Tokens embedding APIs reported.",
            vec![(String::new(), n(calls(|c| c.tokens.unwrap_or(0))))],
        );
        metric(
            "steps_completed_total",
            "counter",
            "Steps committed.",
            vec![(String::new(), n(s.steps_completed))],
        );
        metric(
            "steps_blocked_total",
            "counter",
            "Steps an invariant blocked.",
            vec![(String::new(), n(s.steps_blocked))],
        );
        metric(
            "gate_verdicts_total",
            "counter",
            "Compatibility gate verdicts of re-embeds.",
            ["pass", "review", "block"]
                .iter()
                .map(|v| {
                    (
                        format!(",verdict=\"{v}\""),
                        n(s.gates.get(*v).copied().unwrap_or(0)),
                    )
                })
                .collect(),
        );
        metric(
            "invariant_failures_total",
            "counter",
            "Invariant checks that failed after a step.",
            vec![
                (",severity=\"fail\"".into(), n(s.invariant_failures)),
                (",severity=\"warn\"".into(), n(s.invariant_warnings)),
            ],
        );
        out
    }
}

fn record_step(s: &mut Seen, r: &StepReport, blocked: bool) {
    if blocked {
        s.steps_blocked += 1;
    } else {
        s.steps_completed += 1;
        s.step_commits += 1;
    }
    if let Some(b) = &r.backfill {
        s.stats_done = sum(&s.stats_done, b);
    }
    s.stats_now = BackfillStats::default();
    s.embedded_done += s.embedded_now;
    s.embedded_now = 0;
    s.remaining = 0;
    if let Some(c) = &r.compat {
        *s.gates.entry(c.verdict.to_string()).or_default() += 1;
    }
    for i in r.invariants.iter().filter(|i| !i.passed) {
        if i.severity == memlane_core::Severity::Fail {
            s.invariant_failures += 1;
        } else {
            s.invariant_warnings += 1;
        }
    }
}

fn sum(a: &BackfillStats, b: &BackfillStats) -> BackfillStats {
    let calls = match (a.embedder, b.embedder) {
        (None, None) => None,
        (x, y) => Some(x.unwrap_or_default().plus(&y.unwrap_or_default())),
    };
    BackfillStats {
        commits: a.commits + b.commits,
        conflicts: a.conflicts + b.conflicts,
        dropped: a.dropped + b.dropped,
        retries: a.retries + b.retries,
        reused: a.reused + b.reused,
        from_sample: a.from_sample + b.from_sample,
        workers: Vec::new(),
        embedder: calls,
    }
}

/// A label value, escaped as the text format wants.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value (integers without a fraction).
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}
