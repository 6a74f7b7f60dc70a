//! Gradual re-embedding: checkpoints, resume, writes during the backfill, abort, contract.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float32Type;
use memlane_store::memlane_core::Space;
use memlane_store::{CreateOptions, EmbedError, Embedder, Store, StoreError};
use serde_json::json;

use crate::common::*;

/// Counts rows embedded; fails once when the count passes `fail_after`.
struct Counting {
    inner: Arc<dyn Embedder>,
    rows: AtomicUsize,
    fail_after: AtomicUsize,
}

impl Embedder for Counting {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let before = self.rows.fetch_add(texts.len(), Ordering::SeqCst);
        if before >= self.fail_after.load(Ordering::SeqCst) {
            self.fail_after.store(usize::MAX, Ordering::SeqCst);
            self.rows.fetch_sub(texts.len(), Ordering::SeqCst);
            return Err("GPU fell off the bus".into());
        }
        self.inner.embed(texts)
    }
    fn batch_size(&self) -> usize {
        50
    }
}

const MIG: &str = "[[steps]]\nop = \"add_space\"\nspace = \"new\"\nmodel = \"hash\"\nrevision = \"7\"\ndimension = 96\nnormalized = true\n\n[[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"e\"\nsample = 50\n";

async fn memory_store(dir: &tempfile::TempDir) -> Store {
    let opts = CreateOptions {
        spaces: vec![
            Space::new("old", 32)
                .with_model("memlane", "hash", "0")
                .with_normalized(true),
        ],
        rows_per_fragment: Some(100),
        ..Default::default()
    };
    let emb = HashMap::from([("old".to_owned(), hash(32, 0))]);
    Store::create_from_json(&uri(dir, "g"), opts, &corpus(), &emb)
        .await
        .unwrap()
}

fn vectors_of(
    store_batches: &[arrow::array::RecordBatch],
) -> HashMap<String, (Option<String>, Option<Vec<f32>>)> {
    let mut out = HashMap::new();
    for b in store_batches {
        let ids = b.column(0).as_string::<i32>();
        let text = b.column(1).as_string::<i32>();
        let v = b.column(2).as_fixed_size_list();
        for i in 0..b.num_rows() {
            let vec = v
                .is_valid(i)
                .then(|| v.value(i).as_primitive::<Float32Type>().values().to_vec());
            out.insert(
                ids.value(i).to_owned(),
                (text.is_valid(i).then(|| text.value(i).to_owned()), vec),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_checkpoints_resumes_and_catches_up_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = memory_store(&dir).await;
    let folder = dir.path().join("m");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("0001_new.toml"), MIG).unwrap();
    let files = memlane_store::read_folder(&folder).unwrap();
    let emb = Arc::new(Counting {
        inner: hash(96, 7),
        rows: 0.into(),
        // 8 canaries and the 50-row compatibility sample come first
        fail_after: (58 + 230).into(),
    });

    // the embedder dies after ~230 rows: the first 100-row fragment is committed on its
    // own (the rate is not known yet), the next batch (fragments 2-4, a fast embedder's
    // checkpoint interval) is in flight and not committed
    let err = store
        .migrator(files.clone())
        .embedder("e", emb.clone())
        .apply()
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Embedder { .. }), "{err}");
    let st = Store::open(store.uri()).await.unwrap();
    let cp = st.state().in_flight.clone().unwrap().checkpoint.unwrap();
    assert_eq!((cp.space.as_str(), cp.embedded), ("new", 100));
    assert_eq!(
        st.state().active_space.as_deref(),
        Some("old"),
        "not complete: the old space serves"
    );
    // reads during the backfill: the new space answers over the rows it covers
    let (with, total) = st.coverage(Some("new")).await.unwrap();
    assert_eq!((with, total), (100, 392));
    let recs = corpus();
    let q = hash(96, 7)
        .embed(&[recs[5]["content"].as_str().unwrap()])
        .unwrap();
    assert_eq!(
        st.search(Some("new"), &q, 1, None).await.unwrap()[0].id,
        recs[5]["id"].as_str().unwrap()
    );
    let q_old = hash(32, 0)
        .embed(&[recs[300]["content"].as_str().unwrap()])
        .unwrap();
    assert_eq!(
        st.search(None, &q_old, 1, None).await.unwrap()[0].id,
        recs[300]["id"].as_str().unwrap()
    );

    // writes during the backfill: a new memory and a changed one (old space embedded by the writer)
    let writer = HashMap::from([("old".to_owned(), hash(32, 0))]);
    store
        .add_json(
            &[json!({"id": "late", "content": "a memory written during the migration"})],
            &writer,
        )
        .await
        .unwrap();
    let changed = recs[3]["id"].as_str().unwrap().to_owned();
    let mut rec = recs[3].clone();
    rec["content"] = "this memory was rewritten while the re-embed ran".into();
    let up = store.upsert_json(&[rec], &writer).await.unwrap();
    assert_eq!((up.inserted, up.updated), (0, 1));

    let before_resume = emb.rows.load(Ordering::SeqCst);
    // resume: only what is left (and what changed) is embedded
    let r = store
        .migrator(files.clone())
        .embedder("e", emb.clone())
        .apply()
        .await
        .unwrap();
    assert!(r.migrations[0].resumed);
    let resumed = emb.rows.load(Ordering::SeqCst) - before_resume;
    // the resumed run embeds at most the rows no commit holds (392 - the 100 of fragment
    // 1; fewer where a side file kept some) plus the new row and the rewritten one: no
    // committed row is embedded again. (The sample's vectors written by the first run
    // only live in that run: uncommitted sampled rows are embedded again.)
    assert!(
        resumed <= 392 - 100 + 2,
        "{resumed} rows embedded on resume: a committed row was embedded again"
    );
    assert!(resumed >= 2, "the new and the rewritten row are embedded");
    assert_eq!(store.state().active_space.as_deref(), Some("new"));
    assert!(store.state().in_flight.is_none());

    // every live row's new vector is the embedder's output for its current content
    let b = store
        .scan(Some(&["id", "content", "vec_new"]), None)
        .await
        .unwrap();
    let rows = vectors_of(&b);
    assert_eq!(rows.len(), 393);
    for (id, (text, v)) in &rows {
        let want = hash(96, 7).embed(&[text.as_deref().unwrap()]).unwrap();
        assert_eq!(v.as_deref(), Some(want.as_slice()), "{id}");
    }
    assert!(rows[&changed].0.as_deref().unwrap().contains("rewritten"));
    // old vectors untouched
    let b = store
        .scan(Some(&["id", "content", "vec_old"]), None)
        .await
        .unwrap();
    for (id, (text, v)) in vectors_of(&b) {
        assert_eq!(
            v.unwrap(),
            hash(32, 0).embed(&[text.as_deref().unwrap()]).unwrap(),
            "{id}"
        );
    }
    let vr = store.verify(Some(&files)).await.unwrap();
    assert!(vr.ok(), "{vr}");

    // contract: the old space goes; the active one cannot
    assert!(store.contract("new", "x").await.is_err());
    store.contract("old", "migrated").await.unwrap();
    assert!(store.schema().field_with_name("vec_old").is_err());
    assert!(store.state().space("old").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn abort_before_complete_leaves_the_store_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = memory_store(&dir).await;
    let cols_before: Vec<String> = store
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let state_before = store.state().clone();
    let folder = dir.path().join("m");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("0001_new.toml"), MIG).unwrap();
    let files = memlane_store::read_folder(&folder).unwrap();
    let emb = Arc::new(Counting {
        inner: hash(96, 7),
        rows: 0.into(),
        fail_after: 120.into(),
    });
    store
        .migrator(files.clone())
        .embedder("e", emb)
        .apply()
        .await
        .unwrap_err();
    store.refresh().await.unwrap();
    assert!(store.state().in_flight.is_some());
    store.abort("model rejected in review").await.unwrap();
    let cols: Vec<String> = store
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(cols, cols_before);
    assert_eq!(store.state().spaces, state_before.spaces);
    assert!(store.state().in_flight.is_none());
    assert_eq!(store.count().await.unwrap(), 392);
    assert!(store.abort("again").await.is_err(), "nothing in flight");
    // the migration can be applied again from scratch
    store
        .migrator(files.clone())
        .embedder("e", hash(96, 7))
        .apply()
        .await
        .unwrap();
    assert_eq!(store.state().active_space.as_deref(), Some("new"));
    // after complete, only forward
    assert!(
        store
            .abort("too late")
            .await
            .unwrap_err()
            .to_string()
            .contains("no migration is in flight")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn embedder_faults_name_the_batch_and_record_and_commit_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = memory_store(&dir).await;
    let folder = dir.path().join("m");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("0001_new.toml"), MIG).unwrap();
    let files = memlane_store::read_folder(&folder).unwrap();
    let faults: Vec<(Arc<dyn Embedder>, &str)> = vec![
        (
            Arc::new(|t: &[&str]| -> Result<Vec<f32>, EmbedError> {
                Ok(vec![0.1; (t.len() - 1) * 96])
            }),
            "expected",
        ),
        (
            Arc::new(|t: &[&str]| -> Result<Vec<f32>, EmbedError> { Ok(vec![0.1; t.len() * 95]) }),
            "expected",
        ),
        (
            Arc::new(|t: &[&str]| -> Result<Vec<f32>, EmbedError> {
                let mut v = hash(96, 7).embed(t)?;
                v[96 * 3 + 5] = f32::NAN;
                Ok(v)
            }),
            "non-finite",
        ),
        (
            Arc::new(|t: &[&str]| -> Result<Vec<f32>, EmbedError> { Ok(vec![0.0; t.len() * 96]) }),
            "zero vector",
        ),
    ];
    for (e, needle) in faults {
        let err = store
            .migrator(files.clone())
            .embedder("e", e)
            .apply()
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(needle) && msg.contains("batch 0") && msg.contains("first record"),
            "{msg}"
        );
        store.refresh().await.unwrap();
        assert_eq!(
            store.coverage(Some("new")).await.unwrap().0,
            0,
            "nothing of a bad batch lands"
        );
    }
    store
        .migrator(files)
        .embedder("e", hash(96, 7))
        .apply()
        .await
        .unwrap();
    assert_eq!(store.coverage(None).await.unwrap(), (392, 392));
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_contracts_the_replaced_space_once_due() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = memory_store(&dir).await;
    // a long retention: kept, listed as pending, not dropped by later applies
    let long = dir.path().join("long");
    std::fs::create_dir_all(&long).unwrap();
    std::fs::write(
        long.join("0001_new.toml"),
        format!("{MIG}contract_after = \"7d\"\n"),
    )
    .unwrap();
    store
        .migrator(memlane_store::read_folder(&long).unwrap())
        .embedder("e", hash(96, 7))
        .apply()
        .await
        .unwrap();
    let p = &store.state().pending_contracts;
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].space.as_str(), p[0].retention.as_str()),
        ("old", "7d")
    );
    assert!(store.contract_due().await.unwrap().is_empty());
    assert!(store.state().space("old").is_some());

    // a zero retention: the next apply (nothing pending to run) drops it
    let dir2 = tempfile::tempdir().unwrap();
    let mut store = memory_store(&dir2).await;
    let now = dir2.path().join("now");
    std::fs::create_dir_all(&now).unwrap();
    std::fs::write(
        now.join("0001_new.toml"),
        format!("{MIG}contract_after = \"0s\"\n"),
    )
    .unwrap();
    let files = memlane_store::read_folder(&now).unwrap();
    store
        .migrator(files.clone())
        .embedder("e", hash(96, 7))
        .apply()
        .await
        .unwrap();
    assert!(
        store.state().space("old").is_some(),
        "kept until the next apply"
    );
    store.migrator(files).apply().await.unwrap();
    store.refresh().await.unwrap();
    assert!(store.state().space("old").is_none());
    assert!(store.state().pending_contracts.is_empty());
    assert!(store.dataset().schema().field("vec_old").is_none());
    let h = store.history().await.unwrap();
    let last = h.last().and_then(|x| x.entry.as_ref()).unwrap();
    assert!(
        last.reason
            .as_deref()
            .unwrap_or("")
            .contains("retention 0s"),
        "{last:?}"
    );
    assert_eq!(
        store
            .search(None, &hash(96, 7).embed(&["json"]).unwrap(), 3, None)
            .await
            .unwrap()
            .len(),
        3
    );
}

/// Blocks once, after `after` rows, until `compacted` is set: a compaction by another
/// writer lands in the middle of the backfill, at a known point.
struct WaitsForCompaction {
    rows: AtomicUsize,
    after: usize,
    asked: Arc<std::sync::atomic::AtomicBool>,
    compacted: Arc<std::sync::atomic::AtomicBool>,
}

impl Embedder for WaitsForCompaction {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let before = self.rows.fetch_add(texts.len(), Ordering::SeqCst);
        if before >= self.after && !self.asked.swap(true, Ordering::SeqCst) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while !self.compacted.load(Ordering::SeqCst) {
                if std::time::Instant::now() > deadline {
                    return Err("the compaction never came".into());
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        hash(96, 7).embed(texts)
    }
    fn batch_size(&self) -> usize {
        50
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compaction_by_another_writer_during_the_backfill_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = memory_store(&dir).await;
    let n = store.count().await.unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("0001_new.toml"), MIG).unwrap();
    let files = memlane_store::read_folder(folder.path()).unwrap();
    let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let compacted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Lance's own compaction, as another process would run it, once the embedder is
    // half-way through the first fragments
    let compactor = {
        let (asked, compacted, at) = (asked.clone(), compacted.clone(), uri(&dir, "g"));
        tokio::spawn(async move {
            while !asked.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            let mut ds = lance::Dataset::open(&at).await.unwrap();
            let before = ds.get_fragments().len();
            let opts = lance::dataset::optimize::CompactionOptions {
                target_rows_per_fragment: 10_000,
                ..Default::default()
            };
            lance::dataset::optimize::compact_files(&mut ds, opts, None)
                .await
                .unwrap();
            compacted.store(true, Ordering::SeqCst);
            (before, ds.get_fragments().len())
        })
    };
    let e = Arc::new(WaitsForCompaction {
        rows: 0.into(),
        after: 50 + 150,
        asked,
        compacted,
    });
    let r = store
        .migrator(files.clone())
        .embedder("e", e)
        .apply()
        .await
        .unwrap();
    let (before, after) = compactor.await.unwrap();
    assert!(
        after < before,
        "the compaction did not rewrite: {before} -> {after}"
    );
    let b = r.migrations[0].steps[1].backfill.clone().unwrap();
    assert!(b.dropped >= 1, "{b:?}");
    // every row has its vector of the new space, current for its content
    assert_eq!(store.state().active_space.as_deref(), Some("new"));
    assert_eq!(store.count().await.unwrap(), n);
    assert_eq!(store.coverage(Some("new")).await.unwrap(), (n, n));
    let v = store.verify(Some(&files)).await.unwrap();
    assert!(v.ok(), "{v}");
    let q = hash(96, 7)
        .embed(&[corpus()[7]["content"].as_str().unwrap()])
        .unwrap();
    let hit = &store.search(None, &q, 1, None).await.unwrap()[0];
    assert_eq!(hit.id, corpus()[7]["id"].as_str().unwrap());
}
