//! Vector indexes as part of a space: `create_index` builds Lance's own index in a sealed
//! step that proves its recall, search uses it, a re-embed carries it to the new space
//! before the switch, lint guards the parameters and the switch.

use std::collections::HashMap;

use lance::index::DatasetIndexExt;
use memlane_store::memlane_core::{CheckKind, IndexKind, Space};
use memlane_store::{CreateOptions, SearchOptions, Store, StoreError};

use crate::common::*;

async fn indexed_store(dir: &tempfile::TempDir) -> Store {
    let opts = CreateOptions {
        spaces: vec![
            Space::new("old", 64)
                .with_model("memlane", "hash", "0")
                .with_normalized(true),
        ],
        ..Default::default()
    };
    let emb = HashMap::from([("old".to_owned(), hash(64, 0))]);
    Store::create_from_json(&uri(dir, "ix"), opts, &corpus(), &emb)
        .await
        .unwrap()
}

fn folder(dir: &tempfile::TempDir, name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let f = dir.path().join(name);
    std::fs::create_dir_all(&f).unwrap();
    for (n, t) in files {
        std::fs::write(f.join(n), t).unwrap();
    }
    f
}

const INDEX: &str = "[[steps]]\nop = \"create_index\"\nspace = \"old\"\nindex = { kind = \"ivf_pq\", partitions = 4, sub_vectors = 8, nprobes = 4 }\n";
const REEMBED: &str = "[[steps]]\nop = \"add_space\"\nspace = \"new\"\nmodel = \"hash\"\nrevision = \"7\"\ndimension = 96\nnormalized = true\n\n[[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"e\"\nsample = 50\n";

#[tokio::test(flavor = "multi_thread")]
async fn create_index_builds_a_sealed_index_that_search_uses_and_a_reembed_carries() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = indexed_store(&dir).await;
    let f = folder(&dir, "m", &[("0001_index.toml", INDEX)]);
    let files = memlane_store::read_folder(&f).unwrap();
    let r = store.migrator(files.clone()).apply().await.unwrap();
    // the step proved its recall on the version it committed
    let inv = &r.migrations[0].steps[0].invariants;
    let recall = inv
        .iter()
        .find(|i| i.check == CheckKind::IndexRecall)
        .expect("index_recall@10 recorded");
    assert!(recall.passed, "{}", recall.message);
    assert!(
        recall.message.contains("index_recall@10[old]"),
        "{}",
        recall.message
    );
    // recorded in the space's identity, and Lance has it (what pylance/lancedb use)
    let spec = store.space(Some("old")).unwrap().index.clone().unwrap();
    assert_eq!((spec.kind, spec.partitions), (IndexKind::IvfPq, Some(4)));
    let names: Vec<String> = store
        .dataset()
        .load_indices()
        .await
        .unwrap()
        .iter()
        .map(|i| i.name.clone())
        .collect();
    assert_eq!(names, vec!["vec_old_idx".to_owned()]);
    // search answers through the index, and says so; exact search on request
    let recs = corpus();
    let q = hash(64, 0)
        .embed(&[recs[11]["content"].as_str().unwrap()])
        .unwrap();
    let via = store
        .search_with(None, &q, 5, None, &SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(via.index, Some(IndexKind::IvfPq));
    assert_eq!(via.hits[0].id, recs[11]["id"].as_str().unwrap());
    let exact = store
        .search_with(
            None,
            &q,
            5,
            None,
            &SearchOptions {
                exact: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(exact.index, None);
    assert_eq!(exact.hits[0].id, via.hits[0].id);
    let v = store.verify(Some(&files)).await.unwrap();
    assert!(v.ok(), "{v}");

    // a re-embed that activates a new space gives it the replaced space's index kind
    // (sub_vectors and partitions re-derived for 96 dims) before the switch
    let f2 = folder(
        &dir,
        "m2",
        &[("0001_index.toml", INDEX), ("0002_new.toml", REEMBED)],
    );
    let files2 = memlane_store::read_folder(&f2).unwrap();
    store
        .migrator(files2.clone())
        .embedder("e", hash(96, 7))
        .apply()
        .await
        .unwrap();
    assert_eq!(store.state().active_space.as_deref(), Some("new"));
    let carried = store.space(Some("new")).unwrap().index.clone().unwrap();
    assert_eq!((carried.kind, carried.nprobes), (IndexKind::IvfPq, Some(4)));
    let names: Vec<String> = store
        .dataset()
        .load_indices()
        .await
        .unwrap()
        .iter()
        .map(|i| i.name.clone())
        .collect();
    assert!(names.contains(&"vec_new_idx".to_owned()), "{names:?}");
    let hist = store.history().await.unwrap();
    assert!(hist.iter().any(|h| {
        h.entry
            .as_ref()
            .and_then(|e| e.reason.as_deref())
            .is_some_and(|r| r.contains("ivf_pq index built on `new`"))
    }));
    let q = hash(96, 7)
        .embed(&[recs[40]["content"].as_str().unwrap()])
        .unwrap();
    let via = store
        .search_with(None, &q, 3, None, &SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(via.index, Some(IndexKind::IvfPq));
    assert_eq!(via.hits[0].id, recs[40]["id"].as_str().unwrap());
    let v = store.verify(Some(&files2)).await.unwrap();
    assert!(v.ok(), "{v}");

    // rows written after the switch have no vector in the old, still indexed space:
    // its indexed search (no `IS NOT NULL` prefilter) still answers k hits, all with a
    // distance, none of them a row without an old vector
    let late: Vec<serde_json::Value> = (0..60)
        .map(|i| serde_json::json!({"id": format!("late-{i}"), "content": format!("written after the switch, number {i}")}))
        .collect();
    let emb = HashMap::from([("new".to_owned(), hash(96, 7))]);
    store.add_json(&late, &emb).await.unwrap();
    let (with, total) = store.coverage(Some("old")).await.unwrap();
    assert!(
        with < total,
        "the late rows have no old vector: {with}/{total}"
    );
    let q = hash(64, 0)
        .embed(&[recs[40]["content"].as_str().unwrap()])
        .unwrap();
    let old = store
        .search_with(Some("old"), &q, 10, None, &SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(old.index, Some(IndexKind::IvfPq));
    assert_eq!(old.hits.len(), 10);
    assert_eq!(old.hits[0].id, recs[40]["id"].as_str().unwrap());
    assert!(
        old.hits
            .iter()
            .all(|h| h.distance.is_finite() && !h.id.starts_with("late-")),
        "{:?}",
        old.hits
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_below_its_recall_floor_is_blocked_and_nothing_lands() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = indexed_store(&dir).await;
    let before = store.version();
    // one probed partition of sixteen cannot find 99.9% of the exact neighbours
    let weak = "[[steps]]\nop = \"create_index\"\nspace = \"old\"\nindex = { kind = \"ivf_pq\", partitions = 16, sub_vectors = 4, nprobes = 1, refine_factor = 0, min_recall = 0.999 }\n";
    let f = folder(&dir, "m", &[("0001_weak.toml", weak)]);
    let err = store
        .migrator(memlane_store::read_folder(&f).unwrap())
        .apply()
        .await
        .unwrap_err();
    match &err {
        StoreError::InvariantViolation { details, .. } => {
            assert!(details.contains("index_recall@10"), "{details}")
        }
        e => panic!("{e}"),
    }
    let reopened = Store::open(store.uri()).await.unwrap();
    assert_eq!(reopened.version(), before);
    assert!(reopened.space(Some("old")).unwrap().index.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn lint_checks_index_parameters_and_warns_when_a_switch_drops_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = indexed_store(&dir).await;
    let bad = "[[steps]]\nop = \"create_index\"\nspace = \"old\"\nindex = { kind = \"ivf_pq\", sub_vectors = 7 }\n";
    let f = folder(&dir, "bad", &[("0001_bad.toml", bad)]);
    let plan = store
        .plan(&memlane_store::read_folder(&f).unwrap())
        .await
        .unwrap();
    let e = plan.errors().next().expect("bad-index");
    assert!(
        e.to_string().contains("does not divide the dimension 64"),
        "{e}"
    );

    // an indexed active space replaced by a truncation without an index: a warning
    let f = folder(&dir, "ix", &[("0001_index.toml", INDEX)]);
    store
        .migrator(memlane_store::read_folder(&f).unwrap())
        .apply()
        .await
        .unwrap();
    let trunc = "[[steps]]\nop = \"truncate\"\nfrom = \"old\"\nspace = \"small\"\ndimension = 32\n";
    let f = folder(
        &dir,
        "t",
        &[("0001_index.toml", INDEX), ("0002_small.toml", trunc)],
    );
    let plan = store
        .plan(&memlane_store::read_folder(&f).unwrap())
        .await
        .unwrap();
    assert!(
        plan.findings.iter().any(|x| x.code == "index-dropped"),
        "{:?}",
        plan.findings
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_reports_rows_the_index_does_not_cover_and_optimize_folds_them_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = indexed_store(&dir).await;
    let f = folder(&dir, "m", &[("0001_index.toml", INDEX)]);
    store
        .migrator(memlane_store::read_folder(&f).unwrap())
        .apply()
        .await
        .unwrap();
    let emb = HashMap::from([("old".to_owned(), hash(64, 0))]);
    let late: Vec<serde_json::Value> = (0..30)
        .map(|i| serde_json::json!({"id": format!("late-{i}"), "content": format!("a memory written after the index, number {i}")}))
        .collect();
    store.add_json(&late, &emb).await.unwrap();
    let r = store.validate(&[], None).await.unwrap();
    let cov = r
        .results
        .iter()
        .find(|x| x.name == "index_coverage[old]")
        .unwrap();
    assert!(
        !cov.passed && cov.message.contains("30 of 422"),
        "{}",
        cov.message
    );
    let f = folder(
        &dir,
        "m2",
        &[
            ("0001_index.toml", INDEX),
            (
                "0002_optimize.toml",
                "[[steps]]\nop = \"optimize_index\"\nspace = \"old\"\n",
            ),
        ],
    );
    store
        .migrator(memlane_store::read_folder(&f).unwrap())
        .apply()
        .await
        .unwrap();
    let r = store.validate(&[], None).await.unwrap();
    let cov = r
        .results
        .iter()
        .find(|x| x.name == "index_coverage[old]")
        .unwrap();
    assert!(cov.passed, "{}", cov.message);
}
