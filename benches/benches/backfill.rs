//! Gradual re-embed benchmarks (issue 3), same run, same data:
//! 1. backfill with a zero-cost embedder vs bare Lance `add_columns` writing the same column;
//! 2. search latency p50/p99 while the backfill runs vs idle;
//! 3. catch-up lag under a steady 100 rows/s writer.
//!
//! `cargo bench -p memlane-benches --bench backfill -- [ROWS] [REPS]` (defaults 200000, 3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    FixedSizeListArray, Float32Array, RecordBatch, RecordBatchIterator, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use lance::Dataset;
use lance::dataset::{BatchUDF, NewColumnTransform, WriteMode, WriteParams};
use memlane_benches::ZeroCost;
use memlane_store::{CreateOptions, Embedder, Store};

const DIM: usize = 384;

fn dir() -> String {
    format!("{}/memlane-bench/backfill", std::env::temp_dir().display())
}

fn records(n: usize, start: usize) -> (Arc<Schema>, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, true),
    ]));
    let mut out = Vec::new();
    let mut s = start;
    while s < start + n {
        let m = 8192.min(start + n - s);
        let ids = StringArray::from_iter_values((s..s + m).map(|i| format!("r{i}")));
        let text = StringArray::from_iter_values((s..s + m).map(|i| {
            format!("memory {i}: the user asked about parsing JSON documents and file paths")
        }));
        out.push(
            RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(text)])
                .expect("batch"),
        );
        s += m;
    }
    (schema, out)
}

async fn fresh_store(name: &str, n: usize) -> Store {
    let uri = format!("{}/{name}", dir());
    let _ = std::fs::remove_dir_all(&uri);
    let (_, batches) = records(n, 0);
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat");
    Store::create(
        &uri,
        CreateOptions {
            plain: true,
            ..Default::default()
        },
        Some(batch),
        &Default::default(),
    )
    .await
    .expect("create")
}

fn migrations() -> Vec<memlane_store::memlane_core::Migration> {
    let d = format!("{}/migs", dir());
    std::fs::create_dir_all(&d).expect("dir");
    std::fs::write(
        format!("{d}/0001_new.toml"),
        format!("[[steps]]\nop = \"add_space\"\nspace = \"new\"\nmodel = \"zero\"\ndimension = {DIM}\nnormalized = true\n\n[[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"zero\"\n"),
    )
    .expect("write");
    memlane_store::read_folder(&d).expect("folder")
}

async fn memlane_backfill(n: usize) -> (f64, f64) {
    let mut store = fresh_store("memlane", n).await;
    let t = Instant::now();
    let r = store
        .migrator(migrations())
        .embedder("zero", Arc::new(ZeroCost(DIM)))
        .apply()
        .await
        .expect("apply");
    let total = t.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let backfill = r.migrations[0]
        .steps
        .iter()
        .find(|s| s.op == "reembed")
        .map_or(0, |s| s.duration_ms) as f64
        / 1000.0;
    (total, backfill)
}

async fn lance_add_columns(n: usize) -> f64 {
    let uri = format!("{}/lance", dir());
    let _ = std::fs::remove_dir_all(&uri);
    let (schema, batches) = records(n, 0);
    let params = WriteParams {
        mode: WriteMode::Create,
        enable_stable_row_ids: true,
        max_rows_per_file: 65_536,
        ..Default::default()
    };
    let mut ds = Dataset::write(
        RecordBatchIterator::new(batches.into_iter().map(Ok), schema),
        uri.as_str(),
        Some(params),
    )
    .await
    .expect("write");
    let out = Arc::new(Schema::new(vec![Field::new(
        "vec_new",
        DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float32, true)),
            DIM as i32,
        ),
        true,
    )]));
    let o2 = out.clone();
    let udf = BatchUDF {
        mapper: Box::new(move |b: &RecordBatch| {
            let texts: Vec<&str> = b
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .map(|a| a.iter().flatten().collect())
                .unwrap_or_default();
            let flat = ZeroCost(DIM)
                .embed(&texts)
                .map_err(|e| lance::Error::invalid_input(e.to_string()))?;
            let v = FixedSizeListArray::try_new(
                Arc::new(Field::new("item", DataType::Float32, true)),
                DIM as i32,
                Arc::new(Float32Array::from(flat)),
                None,
            )?;
            Ok(RecordBatch::try_new(o2.clone(), vec![Arc::new(v)])?)
        }),
        output_schema: out,
        result_checkpoint: None,
    };
    let t = Instant::now();
    ds.add_columns(
        NewColumnTransform::BatchUDF(udf),
        Some(vec!["content".into()]),
        Some(8192),
    )
    .await
    .expect("add_columns");
    t.elapsed().as_secs_f64()
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// Search the old space every 20 ms while `busy` runs (or for `idle` when None).
async fn search_latencies(
    uri: String,
    until: Arc<std::sync::atomic::AtomicBool>,
    limit: usize,
) -> Vec<f64> {
    let store = Store::open(&uri).await.expect("open");
    let q = vec![1.0f32 / (8f32).sqrt(); 8];
    let mut out = Vec::new();
    while !until.load(std::sync::atomic::Ordering::SeqCst) && out.len() < limit {
        let t = Instant::now();
        store
            .search(Some("old"), &q, 10, None)
            .await
            .expect("search");
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

async fn with_old_space(name: &str, n: usize) -> Store {
    let uri = format!("{}/{name}", dir());
    let _ = std::fs::remove_dir_all(&uri);
    let old = memlane_store::memlane_core::Space::new("old", 8)
        .with_model("bench", "tiny", "1")
        .with_normalized(true);
    let (_, batches) = records(n, 0);
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat");
    let emb: std::collections::HashMap<String, Arc<dyn Embedder>> = [(
        "old".to_owned(),
        memlane_store::HashEmbedder::new(8, 0).arc(),
    )]
    .into();
    Store::create(
        &uri,
        CreateOptions {
            spaces: vec![old],
            ..Default::default()
        },
        Some(batch),
        &emb,
    )
    .await
    .expect("create")
}

#[allow(clippy::print_stdout)]
fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = args.first().map_or(200_000, |a| a.parse().expect("rows"));
    let reps: usize = args.get(1).map_or(3, |a| a.parse().expect("reps"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // 1. backfill vs bare add_columns
        let (mut m_total, mut m_back, mut l) = (vec![], vec![], vec![]);
        for _ in 0..reps {
            l.push(lance_add_columns(n).await);
            let (t, b) = memlane_backfill(n).await;
            m_total.push(t);
            m_back.push(b);
        }
        let (lm, mb, mt) = (pct(l, 0.5), pct(m_back, 0.5), pct(m_total, 0.5));
        println!("backfill {n} rows x {DIM}d, zero-cost embedder (median of {reps}):");
        println!("  bare lance add_columns        {lm:8.2} s");
        println!("  memlane reembed backfill      {mb:8.2} s   ratio {:.2}x", mb / lm);
        println!("  memlane apply (space+reembed+checks) {mt:8.2} s   ratio {:.2}x", mt / lm);

        // 2. search latency during the backfill vs idle
        let store = with_old_space("search", n).await;
        let uri = store.uri().to_owned();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let idle = search_latencies(uri.clone(), stop.clone(), 150).await;
        let stop2 = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let searcher = tokio::spawn(search_latencies(uri.clone(), stop2.clone(), usize::MAX));
        let mut s = Store::open(&uri).await.expect("open");
        s.migrator(migrations()).embedder("zero", Arc::new(ZeroCost(DIM))).apply().await.expect("apply");
        stop2.store(true, std::sync::atomic::Ordering::SeqCst);
        let busy = searcher.await.expect("join");
        println!("search latency, k=10 on {n} rows (ms): idle p50 {:.1} p99 {:.1} (n={}); during backfill p50 {:.1} p99 {:.1} (n={}); p99 ratio {:.2}x",
            pct(idle.clone(), 0.5), pct(idle.clone(), 0.99), idle.len(), pct(busy.clone(), 0.5), pct(busy.clone(), 0.99), busy.len(), pct(busy, 0.99) / pct(idle, 0.99));

        // 3. catch-up lag under a steady 100 rows/s writer
        let store = with_old_space("lag", n).await;
        let uri = store.uri().to_owned();
        let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let w = writing.clone();
        let u2 = uri.clone();
        let writer = tokio::spawn(async move {
            let mut st = Store::open(&u2).await.expect("open");
            let emb: std::collections::HashMap<String, Arc<dyn Embedder>> = [("old".to_owned(), memlane_store::HashEmbedder::new(8, 0).arc())].into();
            let mut k = 0usize;
            let t0 = Instant::now();
            while w.load(std::sync::atomic::Ordering::SeqCst) {
                let (_, b) = records(10, 10_000_000 + k * 10);
                // once the new space is active this writer (old model only) is refused: stop
                if st.add(b[0].clone(), &emb).await.is_err() {
                    break;
                }
                k += 1;
                // 10 rows every 100 ms = 100 rows/s
                let due = Duration::from_millis(100 * k as u64);
                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            k * 10
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut s = Store::open(&uri).await.expect("open");
        let t = Instant::now();
        let r = s.migrator(migrations()).embedder("zero", Arc::new(ZeroCost(DIM))).apply().await.expect("apply");
        let took = t.elapsed().as_secs_f64();
        writing.store(false, std::sync::atomic::Ordering::SeqCst);
        let written = writer.await.expect("join");
        // lag: checkpoints' remaining rows after the first pass
        let lags: Vec<u64> = s.history().await.expect("history").iter()
            .filter_map(|h| h.entry.as_ref()?.reason.clone())
            .filter(|r| r.starts_with("catch_up"))
            .filter_map(|r| r.split(", ").nth(1)?.split(' ').next()?.parse().ok())
            .collect();
        let (with, total) = s.coverage(Some("new")).await.expect("coverage");
        println!("catch-up under a 100 rows/s writer: {written} rows written during the migration ({took:.1} s), {} catch-up checkpoints, max lag after a commit {} rows, coverage at completion {with}/{total}; rows written after the completing commit are caught up by the next apply",
            lags.len(), lags.iter().max().copied().unwrap_or(0));
        let _ = r;
    });
}
