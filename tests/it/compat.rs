//! Embedding compatibility inside the store: fingerprints, gates in `apply`, declared
//! modes, adapters serving new-model queries against the old space, prefix lint.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memlane_store::memlane_core::Space;
use memlane_store::memlane_core::compat::Verdict;
use memlane_store::{CreateOptions, EmbedError, Embedder, Store, StoreError};

use crate::common::*;

/// A store over the real corpus with an `old` space (hash 32-d, seed 0) embedded at
/// creation, which fingerprints the space.
async fn old_store(dir: &tempfile::TempDir, name: &str) -> Store {
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
    Store::create_from_json(&uri(dir, name), opts, &corpus(), &emb)
        .await
        .unwrap()
}

fn folder(
    dir: &tempfile::TempDir,
    name: &str,
    text: &str,
) -> Vec<memlane_store::memlane_core::Migration> {
    let f = dir.path().join(name);
    std::fs::create_dir_all(&f).unwrap();
    std::fs::write(f.join("0001_new.toml"), text).unwrap();
    memlane_store::read_folder(&f).unwrap()
}

const ADD_NEW: &str = "[[steps]]\nop = \"add_space\"\nspace = \"new\"\nmodel = \"hash\"\nrevision = \"7\"\ndimension = 96\nnormalized = true\n\n[[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"e\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_same_dimension_model_swap_is_refused_by_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = old_store(&dir, "fp").await;
    let fp = store
        .state()
        .space("old")
        .unwrap()
        .fingerprint
        .clone()
        .unwrap();
    assert_eq!(fp.texts.len(), memlane_store::CANARIES.len());
    assert!(fp.vectors.iter().all(|v| v.len() == 32));

    // the same model writes
    let rec = serde_json::json!({"id": "n1", "content": "a new memory"});
    store
        .add_json(&[rec], &HashMap::from([("old".to_owned(), hash(32, 0))]))
        .await
        .unwrap();
    // another model of the same dimension behind the same name: refused, nothing written
    let before = store.count().await.unwrap();
    let rec = serde_json::json!({"id": "n2", "content": "another memory"});
    let err = store
        .add_json(&[rec], &HashMap::from([("old".to_owned(), hash(32, 1))]))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, StoreError::ModelDrift { ref space, cosine, .. } if space == "old" && cosine < 0.9),
        "{msg}"
    );
    assert!(
        msg.contains("model drift") && msg.contains("does not reproduce its fingerprint"),
        "{msg}"
    );
    assert_eq!(store.count().await.unwrap(), before);

    // a re-embed records the new space's fingerprint; a later run with another model
    // for it is refused before anything is embedded
    // a 300-row sample: the backfill embeds the other 92 rows, and dies among them
    let files = folder(&dir, "m", &format!("{ADD_NEW}sample = 300\n"));
    let failing = Arc::new(FailAfter {
        inner: hash(96, 7),
        rows: 0.into(),
        limit: 308 + 40,
    });
    assert!(
        store
            .migrator(files.clone())
            .embedder("e", failing)
            .apply()
            .await
            .is_err()
    );
    let st = Store::open(store.uri()).await.unwrap();
    assert!(st.state().space("new").unwrap().fingerprint.is_some());
    let err = store
        .migrator(files.clone())
        .embedder("e", hash(96, 8))
        .apply()
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ModelDrift { ref space, .. } if space == "new"),
        "{err}"
    );
    // the right model resumes and completes
    store
        .migrator(files)
        .embedder("e", hash(96, 7))
        .apply()
        .await
        .unwrap();
    assert_eq!(store.state().active_space.as_deref(), Some("new"));
}

/// Fails once more than `limit` texts were embedded (the 8 canaries and the 392-row
/// compatibility sample count too).
struct FailAfter {
    inner: Arc<dyn Embedder>,
    rows: AtomicUsize,
    limit: usize,
}

impl Embedder for FailAfter {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        if self.rows.fetch_add(texts.len(), Ordering::SeqCst) + texts.len() > self.limit {
            return Err("out of quota".into());
        }
        self.inner.embed(texts)
    }
    fn batch_size(&self) -> usize {
        50
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gates_block_ask_for_review_or_pass_inside_apply() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = old_store(&dir, "gates").await;
    let v0 = store.version();

    // block: recall can never reach 1.5; nothing is committed
    let files = folder(
        &dir,
        "block",
        &format!("{ADD_NEW}\n[gates]\n\"recall@10\" = {{ block_below = 1.5 }}\n"),
    );
    let err = store
        .migrator(files)
        .embedder("e", hash(96, 7))
        .apply()
        .await
        .unwrap_err();
    assert!(err.is_blocked(), "{err}");
    let StoreError::GateBlocked { check, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(check.verdict, Verdict::Block);
    assert_eq!(check.gates[0].metric, "recall@10");
    assert_eq!(check.sample, 392);
    // the metrics are real: related models agree far above the shuffled baseline
    let m = &check.metrics;
    assert!(m["recall@10"] > 5.0 * m["recall@10.baseline"], "{m:?}");
    assert!(m["overlap@10"] > 5.0 * m["overlap@10.baseline"], "{m:?}");
    let st = Store::open(store.uri()).await.unwrap();
    assert!(
        st.version() <= v0 + 1,
        "at most the add_space step committed"
    );
    assert_eq!(
        st.coverage(Some("new")).await.unwrap(),
        (0, 392),
        "no backfill"
    );

    // review: refused without approval, goes ahead with it, recorded in history
    let dir2 = tempfile::tempdir().unwrap();
    let mut store = old_store(&dir2, "review").await;
    let files = folder(
        &dir2,
        "review",
        &format!(
            "{ADD_NEW}\n[gates]\n\"recall@10\" = {{ block_below = 0.0, review_below = 1.5 }}\n"
        ),
    );
    let err = store
        .migrator(files.clone())
        .embedder("e", hash(96, 7))
        .apply()
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReviewRequired { .. }), "{err}");
    assert!(err.to_string().contains("--approve"), "{err}");
    let r = store
        .migrator(files)
        .embedder("e", hash(96, 7))
        .approve(Some("hash models are a stand-in; checked by hand".into()))
        .apply()
        .await
        .unwrap();
    let step = r.migrations[0]
        .steps
        .iter()
        .find(|s| s.op == "reembed")
        .unwrap();
    let c = step.compat.as_ref().unwrap();
    assert_eq!(c.verdict, Verdict::Review);
    assert_eq!(
        c.approval.as_ref().unwrap().reason,
        "hash models are a stand-in; checked by hand"
    );
    let h = store.history().await.unwrap();
    assert!(h.iter().any(|i| {
        i.entry
            .as_ref()
            .and_then(|e| e.reason.as_deref())
            .is_some_and(|r| r.starts_with("review approved by"))
    }));
    assert_eq!(store.state().active_space.as_deref(), Some("new"));
}

#[tokio::test(flavor = "multi_thread")]
async fn declared_modes_are_verified_on_the_sample() {
    // `identical` holds for the same model under a new name...
    let dir = tempfile::tempdir().unwrap();
    let mut store = old_store(&dir, "same").await;
    let same = "[[steps]]\nop = \"add_space\"\nspace = \"copy\"\nmodel = \"hash\"\nrevision = \"0\"\ndimension = 32\nnormalized = true\n\n[[steps]]\nop = \"reembed\"\nspace = \"copy\"\nembedder = \"e\"\nmode = \"identical\"\n";
    let r = store
        .migrator(folder(&dir, "same", same))
        .embedder("e", hash(32, 0))
        .apply()
        .await
        .unwrap();
    let c = r.migrations[0].steps[1].compat.clone().unwrap();
    assert!(c.mode_failure.is_none(), "{c}");
    assert!(c.metrics["identical.mean_cosine"] > 0.9999, "{c}");

    // ...and blocks for another model of the same dimension
    let dir = tempfile::tempdir().unwrap();
    let mut store = old_store(&dir, "other").await;
    let err = store
        .migrator(folder(&dir, "other", same))
        .embedder("e", hash(32, 5))
        .apply()
        .await
        .unwrap_err();
    let StoreError::GateBlocked { check, .. } = err else {
        panic!("{err}")
    };
    assert!(check.mode_failure.is_some(), "{check}");
}

/// A "new model" that is the old one (hash 32-d) padded to 48-d and rotated by a fixed
/// signed permutation: an orthogonal map, so a Procrustes adapter recovers it.
struct Rotated;

impl Embedder for Rotated {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let old = hash(32, 0).embed(texts)?;
        let mut out = Vec::with_capacity(texts.len() * 48);
        for v in old.chunks_exact(32) {
            for j in 0..48 {
                let src = (j * 7 + 3) % 48;
                let x = if src < 32 { v[src] } else { 0.0 };
                out.push(if j % 3 == 0 { -x } else { x });
            }
        }
        Ok(out)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hash_models_of_different_seeds_get_no_adapter_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = old_store(&dir, "none").await;
    let r = store
        .migrator(folder(&dir, "m", ADD_NEW))
        .embedder("e", hash(96, 7))
        .apply()
        .await
        .unwrap();
    let c = r.migrations[0].steps[1].compat.clone().unwrap();
    assert!(c.adapter.is_none(), "{c}");
    assert!(c.adapter_summary.starts_with("no adapter reaches"), "{c}");
    assert_eq!(c.suggested_mode.as_str(), "none");
    assert!(store.state().adapters.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_adapter_serves_new_model_queries_against_the_old_space_during_a_reembed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = old_store(&dir, "adapter").await;
    let files = folder(
        &dir,
        "m",
        &format!(
            "{}sample = 300\n",
            ADD_NEW.replace("dimension = 96", "dimension = 48")
        ),
    );
    // the check embeds the sample (300 of the 392 rows) and canaries; the backfill writes
    // those from the sample, embeds the other 92 and dies midway
    let e = Arc::new(FailAfter {
        inner: Arc::new(Rotated),
        rows: 0.into(),
        limit: 308 + 40,
    });
    assert!(
        store
            .migrator(files)
            .embedder("e", e)
            .apply()
            .await
            .is_err()
    );
    let st = Store::open(store.uri()).await.unwrap();
    assert_eq!(st.state().active_space.as_deref(), Some("old"));
    let (with, total) = st.coverage(Some("new")).await.unwrap();
    assert!(with < total, "{with}/{total}: still backfilling");
    let check = st
        .state()
        .in_flight
        .as_ref()
        .unwrap()
        .compat
        .clone()
        .unwrap();
    let a = st
        .state()
        .adapters
        .last()
        .unwrap_or_else(|| panic!("no adapter was kept:\n{check}"));
    assert_eq!((a.from.as_str(), a.to.as_str()), ("new", "old"));

    // new-model queries, old space, through the adapter: they find the records the old
    // model's own queries find
    let recs = corpus();
    let (mut agree, mut n) = (0usize, 0usize);
    for r in recs.iter().step_by(20) {
        let text = r["content"].as_str().unwrap();
        let q_new = Rotated.embed(&[text]).unwrap();
        let q_old = hash(32, 0).embed(&[text]).unwrap();
        let via = st
            .search_adapted(Some("old"), "new", &q_new, 5, None)
            .await
            .unwrap();
        let native = st.search(Some("old"), &q_old, 5, None).await.unwrap();
        n += 1;
        if via[0].id == native[0].id {
            agree += 1;
        }
    }
    assert!(
        agree * 10 >= n * 9,
        "{agree}/{n} adapted queries found the native top hit\n{check}"
    );
    assert!(a.retention > 0.9, "{check}");
    // no adapter the other way
    let q = hash(32, 0).embed(&["x"]).unwrap();
    let err = st
        .search_adapted(Some("new"), "old", &q, 5, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoAdapter { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reembed_with_other_prefixes_than_its_space_is_a_lint_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = old_store(&dir, "prefix").await;
    let text = ADD_NEW.replace(
        "embedder = \"e\"\n",
        "embedder = \"e\"\nquery_prefix = \"query: \"\n",
    );
    let plan = store.plan(&folder(&dir, "p", &text)).await.unwrap();
    assert!(
        plan.findings.iter().any(|f| f.code == "prefix-mismatch"),
        "{plan}"
    );
}
