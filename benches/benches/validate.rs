//! `Store::validate` (every built-in check: ids unique, ids preserved and content
//! unchanged against the previous version, references, lifecycle, vectors valid, drift)
//! on an agent-memory store of N × 384, against
//! - a bare Lance scan of the same columns (the floor: reading what validate reads,
//!   checking nothing), and
//! - the peer script a user would write: pylance + numpy/pandas doing the same checks
//!   (`benches/python/validate_peer.py`, run when `MEMLANE_BENCH_PYTHON` names a Python
//!   with pylance, as `make bench` does).
//!
//! Same store, same run, order alternated, each measurement in a fresh process.
//!
//! `cargo bench -p memlane-benches --bench validate -- [ROWS] [REPS]` (default 1000000 3).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark prints its figures

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use futures::TryStreamExt;
use lance::Dataset;
use memlane_benches::{peak_rss_kib, vector_batches};
use memlane_store::memlane_core::Space;
use memlane_store::{CreateOptions, Store};

const DIM: usize = 384;
const CHUNK: usize = 100_000;

fn base() -> String {
    format!("{}/memlane-bench/validate", std::env::temp_dir().display())
}

/// An agent-memory store: `rows` records with kind, status, supersedes (1% point at an
/// earlier record) and timestamps, added in chunks; then one record's content updated,
/// so the last version has a real predecessor of the same size to compare with.
async fn generate(rows: usize) {
    let uri = base();
    let _ = std::fs::remove_dir_all(&uri);
    let space = Space::new("e384", DIM)
        .with_model("bench", "random", "1")
        .with_normalized(true);
    let mut store = Store::create(
        &uri,
        CreateOptions {
            plain: false,
            spaces: vec![space],
            fields: vec![],
            rows_per_fragment: None,
            ..Default::default()
        },
        None,
        &Default::default(),
    )
    .await
    .expect("create");
    let none = HashMap::new();
    let kinds = ["semantic", "episodic", "procedural", "message"];
    let mut start = 0;
    while start < rows {
        let n = CHUNK.min(rows - start);
        let (_, mut b) = vector_batches(n, DIM, n, "e384", 42 + start as u64);
        let b = b.remove(0);
        let ids = StringArray::from_iter_values((start..start + n).map(|i| format!("r{i}")));
        let kind = StringArray::from_iter_values((start..start + n).map(|i| kinds[i % 4]));
        // every 100th record (from r100 on) supersedes the one before it, which is
        // marked superseded: references and lifecycle have real chains to follow
        let status = StringArray::from_iter_values((start..start + n).map(|i| {
            if i % 100 == 99 {
                "superseded"
            } else {
                "active"
            }
        }));
        let sup = StringArray::from_iter(
            (start..start + n).map(|i| (i % 100 == 0 && i > 0).then(|| format!("r{}", i - 1))),
        );
        let ts = TimestampMicrosecondArray::from_iter_values(
            (start..start + n).map(|i| 1_700_000_000_000_000 + i as i64 * 1_000_000),
        )
        .with_timezone("UTC");
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("content", DataType::Utf8, true),
            b.schema().field(2).clone(),
            Field::new("kind", DataType::Utf8, true),
            Field::new("status", DataType::Utf8, true),
            Field::new("supersedes", DataType::Utf8, true),
            Field::new(
                "created_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(ids),
                b.column(1).clone(),
                b.column(2).clone(),
                Arc::new(kind),
                Arc::new(status),
                Arc::new(sup),
                Arc::new(ts),
            ],
        )
        .expect("batch");
        store.add(batch, &none).await.expect("add");
        start += n;
    }
    // one record edited: the version validated has a predecessor of the same size
    let (_, mut b) = vector_batches(1, DIM, 1, "e384", 7);
    let b = b.remove(0);
    let edited = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("content", DataType::Utf8, true),
            b.schema().field(2).clone(),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["r3"])),
            Arc::new(StringArray::from(vec!["record 3, edited"])),
            b.column(2).clone(),
        ],
    )
    .expect("edit");
    store.upsert(edited, &none).await.expect("upsert");
    println!(
        "{{\"rows\":{},\"version\":{}}}",
        store.count().await.expect("count"),
        store.version()
    );
}

async fn run_memlane() -> serde_json::Value {
    let store = Store::open(&base()).await.expect("open");
    let t = Instant::now();
    let report = store.validate(&[], None).await.expect("validate");
    let secs = t.elapsed().as_secs_f64();
    let ran: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.total > 0)
        .map(|r| format!("{}{}", r.name, if r.passed { "" } else { " (failed)" }))
        .collect();
    serde_json::json!({"secs": secs, "checks": ran})
}

/// Read the columns validate reads (the current version's, and id + content of the
/// previous one), touching every batch, checking nothing.
async fn run_lance() -> serde_json::Value {
    let ds = Dataset::open(&base()).await.expect("open");
    let prev = ds
        .checkout_version(ds.version().version - 1)
        .await
        .expect("prev");
    let t = Instant::now();
    let mut rows = 0usize;
    let cur_cols = [
        "id",
        "content",
        "status",
        "supersedes",
        "relationships",
        "created_at",
        "updated_at",
        "vec_e384",
    ];
    for (d, cols) in [(&ds, &cur_cols[..]), (&prev, &cur_cols[..2])] {
        let mut s = d.scan();
        s.project(cols).expect("project");
        let mut st = s.try_into_stream().await.expect("stream");
        while let Some(b) = st.try_next().await.expect("batch") {
            rows += b.num_rows();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    serde_json::json!({"secs": secs, "rows": rows})
}

fn run_python(py: &str) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/validate_peer.py");
    let out = Command::new(py)
        .arg(script)
        .arg(base())
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("{}")).expect("json")
}

fn child(args: &[&str]) -> serde_json::Value {
    let exe = std::env::current_exe().expect("exe");
    let out = Command::new(exe).args(args).output().expect("child");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("{}")).expect("json")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("gen") => rt.block_on(generate(args[1].parse().expect("rows"))),
        Some("run") => {
            let mut v = rt.block_on(async {
                if args[1] == "memlane" {
                    run_memlane().await
                } else {
                    run_lance().await
                }
            });
            v["rss_kib"] = peak_rss_kib().into();
            println!("{v}");
        }
        first => {
            let rows: usize = first.map_or(1_000_000, |s| s.parse().expect("rows"));
            let reps: usize = args.get(1).map_or(3, |r| r.parse().expect("reps"));
            let py = std::env::var("MEMLANE_BENCH_PYTHON").ok();
            let g = child(&["gen", &rows.to_string()]);
            println!(
                "validate, every built-in, {} rows x {DIM} (version {}): median of {reps}, each in a fresh process",
                g["rows"], g["version"]
            );
            let mut who = vec!["lance", "memlane"];
            if py.is_some() {
                who.push("python");
            } else {
                println!("(MEMLANE_BENCH_PYTHON not set: the pylance + numpy peer is skipped)");
            }
            let mut secs: HashMap<&str, Vec<f64>> = HashMap::new();
            let mut rss: HashMap<&str, u64> = HashMap::new();
            let mut checks = serde_json::Value::Null;
            for rep in 0..reps {
                // rotate the order so no side always runs first on a cold cache
                let mut order = who.clone();
                order.rotate_left(rep % who.len());
                for w in order {
                    let r = if w == "python" {
                        run_python(py.as_deref().unwrap_or("python3"))
                    } else {
                        child(&["run", w])
                    };
                    secs.entry(w)
                        .or_default()
                        .push(r["secs"].as_f64().unwrap_or(0.0));
                    let e = rss.entry(w).or_default();
                    *e = (*e).max(r["rss_kib"].as_u64().unwrap_or(0));
                    if w == "memlane" {
                        checks = r["checks"].clone();
                    }
                }
            }
            println!("memlane ran: {checks}");
            let lance = median(secs["lance"].clone());
            let memlane = median(secs["memlane"].clone());
            println!(
                "{:<34} {:>9} {:>14} {:>13}",
                "", "median s", "vs memlane", "peak RSS MB"
            );
            for w in &who {
                let s = median(secs[w].clone());
                let name = match *w {
                    "lance" => "bare lance scan of the same columns",
                    "memlane" => "memlane validate",
                    _ => "pylance + numpy/pandas peer",
                };
                println!(
                    "{name:<34} {s:>9.2} {:>13.2}x {:>13}",
                    s / memlane,
                    rss[w] / 1024
                );
            }
            println!(
                "memlane / bare scan: {:.2}x (goal <= 1.5x)",
                memlane / lance
            );
            if let Some(p) = secs.get("python") {
                println!(
                    "peer / memlane: {:.2}x faster (goal >= 3x)",
                    median(p.clone()) / memlane
                );
            }
        }
    }
}
