//! `apply` of a Matryoshka truncation 768 -> 256 against the bare Lance operation that
//! writes the same column (`add_columns` with the same kernel), same run, same data.
//! Each measurement runs in a fresh child process so peak RSS is per operation.
//!
//! `cargo bench -p memlane-benches --bench truncate -- [SIZES] [REPS]`
//! (defaults: 250000,500000,1000000 and 3).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark prints its figures

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, FixedSizeListArray, Float32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type, Schema};
use lance::Dataset;
use lance::dataset::{BatchUDF, NewColumnTransform, WriteMode, WriteParams};
use memlane_benches::{peak_rss_kib, reader, vector_batches};
use memlane_store::memlane_core::{Space, space::truncate_flat};
use memlane_store::{CreateOptions, Store};

const MIGRATION: &str =
    "[[steps]]\nop = \"truncate\"\nfrom = \"e768\"\nspace = \"e256\"\ndimension = 256\n";

fn base(size: usize) -> String {
    format!(
        "{}/memlane-bench/truncate-{size}",
        std::env::temp_dir().display()
    )
}

async fn generate(size: usize) {
    let uri = base(size);
    let _ = std::fs::remove_dir_all(&uri);
    let space = Space::new("e768", 768)
        .with_model("bench", "random", "1")
        .with_normalized(true);
    // create the memlane store (v1) empty, then append generated vectors in one commit
    let mut store = Store::create(
        &uri,
        CreateOptions {
            plain: true,
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
    let (schema, batches) = vector_batches(size, 768, 8192, "e768", 42);
    let params = WriteParams {
        mode: WriteMode::Append,
        ..Default::default()
    };
    let ds = Dataset::write(reader(schema, batches), uri.as_str(), Some(params))
        .await
        .expect("append");
    // record the append as memlane's so the store's state is carried forward
    drop(ds);
    store.refresh().await.expect("refresh");
    println!("{{\"generated\":{size},\"version\":{}}}", store.version());
}

async fn run_memlane(size: usize) -> f64 {
    let uri = base(size);
    let mut store = Store::open(&uri).await.expect("open");
    store.restore("2", "bench reset").await.expect("reset");
    let dir = format!("{uri}.migs");
    let _ = std::fs::create_dir_all(&dir);
    std::fs::write(format!("{dir}/0001_truncate.toml"), MIGRATION).expect("write migration");
    let files = memlane_store::read_folder(&dir).expect("folder");
    let t = Instant::now();
    store.migrator(files).apply().await.expect("apply");
    t.elapsed().as_secs_f64()
}

async fn run_lance(size: usize) -> f64 {
    let uri = base(size);
    let mut ds = Dataset::open(&uri).await.expect("open");
    let mut old = ds.checkout_version(2).await.expect("checkout");
    old.restore().await.expect("reset");
    ds.checkout_latest().await.expect("latest");
    let out = Arc::new(Schema::new(vec![Field::new(
        "vec_e256",
        memlane_store::arrow_type(&memlane_store::memlane_core::FieldType::Vector(256)),
        true,
    )]));
    let o2 = out.clone();
    let udf = BatchUDF {
        mapper: Box::new(move |b: &RecordBatch| {
            let l = b.column(0).as_fixed_size_list();
            let vals = l.values().as_primitive::<Float32Type>().values();
            let mut flat = Vec::new();
            truncate_flat(
                &vals[l.offset() * 768..(l.offset() + l.len()) * 768],
                768,
                256,
                &mut flat,
            );
            let v = FixedSizeListArray::try_new(
                Arc::new(Field::new("item", DataType::Float32, true)),
                256,
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
        Some(vec!["vec_e768".into()]),
        Some(8192),
    )
    .await
    .expect("add_columns");
    t.elapsed().as_secs_f64()
}

fn child(args: &[String]) -> serde_json::Value {
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
        Some("gen") => rt.block_on(generate(args[1].parse().expect("size"))),
        Some("run") => {
            let size = args[2].parse().expect("size");
            let secs = rt.block_on(async {
                if args[1] == "memlane" {
                    run_memlane(size).await
                } else {
                    run_lance(size).await
                }
            });
            println!("{{\"secs\":{secs},\"rss_kib\":{}}}", peak_rss_kib());
        }
        first => {
            let sizes: Vec<usize> = first.map_or_else(
                || vec![250_000, 500_000, 1_000_000],
                |s| s.split(',').map(|x| x.parse().expect("size")).collect(),
            );
            let reps: usize = args.get(1).map_or(3, |r| r.parse().expect("reps"));
            println!(
                "truncate 768 -> 256: memlane apply vs bare lance add_columns (median of {reps}, each in a fresh process)"
            );
            println!(
                "{:>9} {:>12} {:>12} {:>7} {:>14} {:>14}",
                "rows", "memlane s", "lance s", "ratio", "memlane RSS MB", "lance RSS MB"
            );
            for size in sizes {
                child(&["gen".into(), size.to_string()]);
                let (mut m, mut l, mut mr, mut lr) = (vec![], vec![], 0u64, 0u64);
                for _ in 0..reps {
                    // alternate the order so neither side always runs on a warm cache
                    for who in ["lance", "memlane"] {
                        let r = child(&["run".into(), who.into(), size.to_string()]);
                        let (s, rss) = (
                            r["secs"].as_f64().unwrap_or(0.0),
                            r["rss_kib"].as_u64().unwrap_or(0),
                        );
                        if who == "memlane" {
                            m.push(s);
                            mr = mr.max(rss);
                        } else {
                            l.push(s);
                            lr = lr.max(rss);
                        }
                    }
                }
                let (mm, lm) = (median(m), median(l));
                println!(
                    "{size:>9} {mm:>12.2} {lm:>12.2} {:>6.2}x {:>14} {:>14}",
                    mm / lm,
                    mr / 1024,
                    lr / 1024
                );
                let _ = std::fs::remove_dir_all(base(size));
            }
        }
    }
}
