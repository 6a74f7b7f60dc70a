//! Re-embed on object storage (issue 16): the same gradual re-embed of ROWS rows with a
//! zero-cost 384-d embedder, on a local S3-compatible server (moto's server mode on
//! 127.0.0.1, the one the tests use) against on local disk, same run, same data. The
//! ratio is what the object-store path (Lance over HTTP, the lock's conditional puts,
//! side files through the object store) costs over a local file system; moto is a Python
//! server holding objects in memory, so against a real S3 the network dominates instead.
//!
//! `cargo bench -p memlane-benches --bench s3_reembed -- [ROWS] [REPS]` (defaults 200000, 3).
//! Figures: `benches/results/s3_reembed.json`.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use memlane_benches::{ZeroCost, median, record};
use memlane_store::{CreateOptions, StorageOptions, Store};
use memlane_tests::S3Server;

const DIM: usize = 384;

fn records(n: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, true),
    ]));
    let ids = StringArray::from_iter_values((0..n).map(|i| format!("r{i}")));
    let text = StringArray::from_iter_values(
        (0..n).map(|i| format!("memory {i}: the user asked about parsing JSON documents")),
    );
    RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(text)]).expect("batch")
}

fn migrations(dir: &std::path::Path) -> Vec<memlane_store::memlane_core::Migration> {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        dir.join("0001_new.toml"),
        format!("[[steps]]\nop = \"add_space\"\nspace = \"new\"\nmodel = \"zero\"\ndimension = {DIM}\nnormalized = true\n\n[[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"zero\"\n"),
    )
    .expect("write");
    memlane_store::read_folder(dir.to_str().expect("utf-8 path")).expect("folder")
}

/// Create a plain store of `n` rows at `uri`, then time the re-embed's apply.
async fn run(uri: &str, storage: StorageOptions, n: usize, migs: &std::path::Path) -> f64 {
    let opts = CreateOptions {
        plain: true,
        storage,
        ..Default::default()
    };
    let mut store = Store::create(uri, opts, Some(records(n)), &Default::default())
        .await
        .expect("create");
    let t = std::time::Instant::now();
    store
        .migrator(migrations(migs))
        .embedder("zero", Arc::new(ZeroCost(DIM)))
        .apply()
        .await
        .expect("apply");
    let secs = t.elapsed().as_secs_f64();
    let (with, total) = store.coverage(Some("new")).await.expect("coverage");
    let rows = u64::try_from(n).expect("rows");
    assert_eq!((with, total), (rows, rows), "every row re-embedded");
    secs
}

#[allow(clippy::print_stdout)]
fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = args.first().map_or(200_000, |a| a.parse().expect("rows"));
    let reps: usize = args.get(1).map_or(3, |a| a.parse().expect("reps"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let s3 = S3Server::start("memlane-bench");
    let storage: StorageOptions = s3.options().into_iter().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for r in 0..reps {
            let dir = tmp.path().join(format!("local{r}"));
            local.push(
                run(
                    dir.to_str().expect("utf-8"),
                    StorageOptions::new(),
                    n,
                    &tmp.path().join("migs"),
                )
                .await,
            );
            remote.push(
                run(
                    &s3.uri(&format!("s{r}")),
                    storage.clone(),
                    n,
                    &tmp.path().join("migs"),
                )
                .await,
            );
        }
    });
    let (l, s) = (median(local.clone()), median(remote.clone()));
    println!("re-embed of {n} rows x {DIM}d, zero-cost embedder (median of {reps}):");
    println!("  local disk        {l:8.2} s");
    println!("  S3 (moto, local)  {s:8.2} s   ratio {:.2}x", s / l);
    let path = record(
        "s3_reembed",
        &serde_json::json!({
            "rows": n, "dim": DIM, "reps": reps,
            "local_secs": local, "s3_secs": remote,
            "local_median_s": l, "s3_median_s": s, "ratio_s3_over_local": s / l,
            "server": "moto server mode on 127.0.0.1 (in-memory, Python)",
        }),
    );
    println!("figures: {}", path.display());
}
