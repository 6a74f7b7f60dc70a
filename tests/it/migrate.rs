use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type};
use memlane_store::memlane_core::{ChainError, CoreError, MigrationOutcome};
use memlane_store::{CreateOptions, EmbedError, Embedder, Store, StoreError};

use crate::common::*;

fn write(dir: &std::path::Path, name: &str, body: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), body).unwrap();
}

fn column_f32(store_batches: &[arrow::array::RecordBatch], col: usize) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    for b in store_batches {
        let l = b.column(col).as_fixed_size_list();
        for i in 0..l.len() {
            out.push(l.value(i).as_primitive::<Float32Type>().values().to_vec());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_example_changes_schema_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = corpus_store(&dir, "m").await;
    let files = memlane_store::read_folder(examples("02-metadata-evolution")).unwrap();
    let plan = store.plan(&files).await.unwrap();
    assert_eq!(plan.migrations.len(), 3);
    let report = store.migrator(files.clone()).apply().await.unwrap();
    assert!(
        report
            .migrations
            .iter()
            .all(|m| m.outcome == MigrationOutcome::Applied)
    );
    let schema = store.schema();
    assert_eq!(
        schema.field_with_name("importance").unwrap().data_type(),
        &DataType::Int64
    );
    assert!(schema.field_with_name("source").is_err());
    assert!(schema.field_with_name("origin_module").is_ok());
    // backfill copied the renamed field into topic for every row
    let b = store
        .scan(Some(&["topic", "origin_module", "importance"]), None)
        .await
        .unwrap();
    for batch in &b {
        let (t, o) = (
            batch.column(0).as_string::<i32>(),
            batch.column(1).as_string::<i32>(),
        );
        let imp = batch
            .column(2)
            .as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..batch.num_rows() {
            assert_eq!(t.value(i), o.value(i));
            assert_eq!(imp.value(i), 1);
        }
    }
    // 25 expired memories deleted; history records each step with its report
    assert_eq!(store.count().await.unwrap(), 367);
    let steps: Vec<_> = store
        .history()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|h| h.entry.and_then(|e| e.report))
        .collect();
    assert_eq!(steps.len(), 7);
    assert_eq!(steps.iter().map(|s| s.rows_deleted).sum::<u64>(), 25);
    // nothing left to do; applying again is a no-op
    let again = store.migrator(files.clone()).apply().await.unwrap();
    assert!(again.migrations.is_empty());
    let vr = store.verify(Some(&files)).await.unwrap();
    assert!(vr.ok(), "{vr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn matryoshka_truncation_renormalises_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = corpus_store(&dir, "t").await;
    let files = memlane_store::read_folder(examples("03-matryoshka-truncate")).unwrap();
    store
        .migrator(files)
        .embedder("hash768", hash(768, 0))
        .apply()
        .await
        .unwrap();
    assert_eq!(store.state().active_space.as_deref(), Some("narrow256"));
    let b = store
        .scan(Some(&["vec_wide768", "vec_narrow256"]), None)
        .await
        .unwrap();
    let (wide, narrow) = (column_f32(&b, 0), column_f32(&b, 1));
    assert_eq!(wide.len(), 392);
    for (w, n) in wide.iter().zip(&narrow) {
        let norm: f32 = w[..256].iter().map(|x| x * x).sum::<f32>().sqrt();
        for (a, b) in w[..256].iter().zip(n) {
            assert!((a / norm - b).abs() < 1e-5);
        }
    }
    let sp = store.space(Some("narrow256")).unwrap();
    assert_eq!(
        (sp.dimension, sp.normalized, sp.revision.as_str()),
        (256, true, "1+truncate256")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reembed_into_new_model_switches_the_active_space() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = corpus_store(&dir, "r").await;
    let files = memlane_store::read_folder(examples("04-reembed-new-model")).unwrap();
    // the plan names the embedders the host must supply; a missing one is refused up front
    let plan = store.plan(&files).await.unwrap();
    assert_eq!(plan.embedders, vec!["hash256", "hash384v2"]);
    let v0 = store.version();
    let err = store
        .migrator(files.clone())
        .embedder("hash256", hash(256, 0))
        .apply()
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::MissingEmbedder { ref name, .. } if name == "hash384v2"),
        "{err}"
    );
    assert_eq!(store.version(), v0);

    store
        .migrator(files)
        .embedder("hash256", hash(256, 0))
        .embedder("hash384v2", hash(384, 2))
        .apply()
        .await
        .unwrap();
    assert_eq!(store.state().active_space.as_deref(), Some("new384"));
    let recs = corpus();
    let text = recs[10]["content"].as_str().unwrap();
    let hits = store
        .search(None, &hash(384, 2).embed(&[text]).unwrap(), 1, None)
        .await
        .unwrap();
    assert_eq!(hits[0].id, recs[10]["id"].as_str().unwrap());
    // the old space stays searchable with old-model queries
    let hits = store
        .search(
            Some("old256"),
            &hash(256, 0).embed(&[text]).unwrap(),
            1,
            None,
        )
        .await
        .unwrap();
    assert_eq!(hits[0].id, recs[10]["id"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn edited_renamed_removed_reordered_migrations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = corpus_store(&dir, "c").await;
    let folder = dir.path().join("migs");
    copy_folder(&examples("02-metadata-evolution"), &folder);
    store
        .migrator(memlane_store::read_folder(&folder).unwrap())
        .to(Some(2))
        .apply()
        .await
        .unwrap();
    assert_eq!(store.state().applied.len(), 2);

    // comments and formatting do not count as edits
    let p = folder.join("0001_topic.toml");
    let original = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, format!("# reviewed\n{original}\n\n")).unwrap();
    store
        .plan(&memlane_store::read_folder(&folder).unwrap())
        .await
        .unwrap();

    // a changed value does
    std::fs::write(&p, original.replace("\"general\"", "\"misc\"")).unwrap();
    let files = memlane_store::read_folder(&folder).unwrap();
    let err = store.plan(&files).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Core(CoreError::Chain(ChainError::Edited { id: 1, .. }))
        ),
        "{err}"
    );
    assert!(err.to_string().contains("0001_topic.toml") && err.to_string().contains("repair"));
    let v = store.version();
    assert!(
        store
            .migrator(files.clone())
            .apply()
            .await
            .unwrap_err()
            .is_blocked()
    );
    assert_eq!(store.version(), v);
    // a deliberate edit is recorded, then the chain is whole again
    store
        .repair(&files, 1, "renamed the default topic")
        .await
        .unwrap();
    store.plan(&files).await.unwrap();
    assert_eq!(store.state().applied[0].repairs.len(), 1);
    let vr = store.verify(Some(&files)).await.unwrap();
    assert!(vr.ok(), "{vr}");

    // renamed and removed files
    std::fs::rename(
        folder.join("0002_importance.toml"),
        folder.join("0002_score.toml"),
    )
    .unwrap();
    let e = store
        .plan(&memlane_store::read_folder(&folder).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Core(CoreError::Chain(ChainError::Renamed { id: 2, .. }))
        ),
        "{e}"
    );
    std::fs::remove_file(folder.join("0002_score.toml")).unwrap();
    let e = store
        .plan(&memlane_store::read_folder(&folder).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Core(CoreError::Chain(ChainError::Removed { id: 2, .. }))
        ),
        "{e}"
    );
    std::fs::copy(
        examples("02-metadata-evolution").join("0002_importance.toml"),
        folder.join("0002_importance.toml"),
    )
    .unwrap();
    // a new file numbered before an applied one
    write(
        &folder,
        "0000_early.toml",
        "[[steps]]\nop = \"drop_field\"\nfield = \"supersedes\"\n",
    );
    let e = store
        .plan(&memlane_store::read_folder(&folder).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Core(CoreError::Chain(ChainError::Reordered { .. }))
        ),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lint_errors_and_failing_invariants_commit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = corpus_store(&dir, "l").await;
    let folder = dir.path().join("lossy");
    write(
        &folder,
        "0001_narrow.toml",
        "[[steps]]\nop = \"add_field\"\nfield = \"n\"\ntype = \"int64\"\ndefault = 3\n\n[[steps]]\nop = \"cast_field\"\nfield = \"n\"\nto = \"int32\"\n",
    );
    let v0 = store.version();
    let err = store
        .migrator(memlane_store::read_folder(&folder).unwrap())
        .apply()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("0001_narrow.toml:7") && err.to_string().contains("lossy-cast"),
        "{err}"
    );
    assert_eq!(store.version(), v0);

    let folder = dir.path().join("inv");
    write(
        &folder,
        "0001_score.toml",
        "[[steps]]\nop = \"add_field\"\nfield = \"score\"\ntype = \"int32\"\ndefault = 1\n\n[[invariants]]\ncheck = \"expression\"\nname = \"scores above five\"\nexpr = \"score > 5\"\n",
    );
    let err = store
        .migrator(memlane_store::read_folder(&folder).unwrap())
        .apply()
        .await
        .unwrap_err();
    let StoreError::InvariantViolation { report, .. } = &err else {
        panic!("{err}")
    };
    let failed = report
        .invariants
        .iter()
        .find(|r| r.name == "scores above five")
        .unwrap();
    assert_eq!(
        (failed.failed, failed.total, failed.sample_ids.len()),
        (392, 392, 10)
    );
    assert!(err.to_string().contains("scores above five"));
    store.refresh().await.unwrap();
    assert_eq!(store.version(), v0);
    assert!(store.schema().field_with_name("score").is_err());
    assert!(store.state().in_flight.is_none());

    // with mostly and severity = warn it passes and is recorded
    write(
        &folder,
        "0001_score.toml",
        "[[steps]]\nop = \"add_field\"\nfield = \"score\"\ntype = \"int32\"\ndefault = 1\n\n[[invariants]]\ncheck = \"expression\"\nexpr = \"score > 5\"\nseverity = \"warn\"\n",
    );
    let r = store
        .migrator(memlane_store::read_folder(&folder).unwrap())
        .apply()
        .await
        .unwrap();
    let inv = &r.migrations[0].steps[0].invariants;
    assert!(inv.iter().any(|i| !i.passed && !i.blocks()));
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_checks_every_step_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = corpus_store(&dir, "d").await;
    let v0 = store.version();
    let files = memlane_store::read_folder(examples("02-metadata-evolution")).unwrap();
    let r = store
        .migrator(files.clone())
        .dry_run(true)
        .apply()
        .await
        .unwrap();
    assert_eq!(r.migrations.len(), 3);
    assert!(
        r.migrations
            .iter()
            .all(|m| m.outcome == MigrationOutcome::DryRun)
    );
    // later steps saw earlier ones: the delete step ran on the renamed schema
    assert_eq!(r.migrations[2].steps[0].rows_after, 367);
    store.refresh().await.unwrap();
    assert_eq!((store.version(), store.count().await.unwrap()), (v0, 392));
    assert!(store.state().applied.is_empty());
    assert_eq!(store.history().await.unwrap().len(), 1);
}

/// Fails on the call with index `fail_at` (0-based), then works.
struct Flaky {
    inner: Arc<dyn Embedder>,
    calls: std::sync::atomic::AtomicUsize,
    fail_at: usize,
}

impl Embedder for Flaky {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == self.fail_at {
            return Err("model server unavailable".into());
        }
        self.inner.embed(texts)
    }
    fn batch_size(&self) -> usize {
        64
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_step_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = corpus_store(&dir, "f").await;
    let files = memlane_store::read_folder(examples("01-agent-memory-bootstrap")).unwrap();
    let flaky = Arc::new(Flaky {
        inner: hash(384, 0),
        calls: 0.into(),
        // call 0 embeds the canaries that fingerprint the new space
        fail_at: 4,
    });
    let err = store
        .migrator(files.clone())
        .embedder("hash384", flaky)
        .apply()
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Embedder { batch: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("model server unavailable"));
    // step 1 (add_space) committed; the migration is in flight at step 2
    let reopened = Store::open(store.uri()).await.unwrap();
    let f = reopened.state().in_flight.clone().unwrap();
    assert_eq!((f.id, f.steps_done, f.steps_total), (1, 1, 2));
    assert!(reopened.state().applied.is_empty());

    // a wrong-dimension embedder is refused, naming the record
    let bad: Arc<dyn Embedder> =
        Arc::new(|t: &[&str]| -> Result<Vec<f32>, EmbedError> { Ok(vec![0.5; t.len() * 383]) });
    let err = store
        .migrator(files.clone())
        .embedder("hash384", bad)
        .apply()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("383") || err.to_string().contains("expected"),
        "{err}"
    );

    let r = store
        .migrator(files.clone())
        .embedder("hash384", hash(384, 0))
        .apply()
        .await
        .unwrap();
    assert!(r.migrations[0].resumed);
    assert_eq!(
        r.migrations[0].steps.len(),
        1,
        "only the remaining step runs"
    );
    assert_eq!(store.state().applied.len(), 1);
    assert!(store.state().in_flight.is_none());
    let vr = store.verify(Some(&files)).await.unwrap();
    assert!(vr.ok(), "{vr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn second_migrator_is_refused_while_the_lock_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = corpus_store(&dir, "k").await;
    let guard = memlane_store::lock::acquire(
        store.side_files(),
        store.storage(),
        "another apply",
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    let files = memlane_store::read_folder(examples("02-metadata-evolution")).unwrap();
    let err = store.migrator(files.clone()).apply().await.unwrap_err();
    assert!(
        matches!(err, StoreError::LockHeld { ref holder, .. } if holder == "another apply"),
        "{err}"
    );
    drop(guard);
    store.migrator(files).apply().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dedupe_and_delete_where() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<_> = corpus().into_iter().take(40).collect();
    let mut store =
        Store::create_from_json(&uri(&dir, "x"), CreateOptions::default(), &recs, &none())
            .await
            .unwrap();
    // duplicate contents under new ids, newer created_at
    let dupes: Vec<_> = recs[..5]
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r["id"] = format!("{}#copy", r["id"].as_str().unwrap()).into();
            r["created_at"] = "2030-01-01T00:00:00Z".into();
            r
        })
        .collect();
    store.add_json(&dupes, &none()).await.unwrap();
    let folder = dir.path().join("d");
    write(
        &folder,
        "0001_dedupe.toml",
        "[[steps]]\nop = \"dedupe\"\nby = \"content\"\norder_by = \"created_at\"\n\n[[steps]]\nop = \"delete_where\"\npredicate = \"kind = 'message'\"\n",
    );
    let r = store
        .migrator(memlane_store::read_folder(&folder).unwrap())
        .apply()
        .await
        .unwrap();
    assert_eq!(r.migrations[0].steps[0].rows_deleted, 5);
    let ids: Vec<String> = store
        .scan(Some(&["id"]), None)
        .await
        .unwrap()
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    // the newer copies won
    for r in &recs[..5] {
        let id = r["id"].as_str().unwrap();
        assert!(!ids.iter().any(|x| x == id));
    }
    let messages = recs.iter().filter(|r| r["kind"] == "message").count() as u64;
    // 45 rows - 5 older duplicates; the copies keep their kind, so every message goes
    assert_eq!(store.count().await.unwrap(), 40 - messages);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncation_that_yields_zero_vectors_is_blocked_naming_them() {
    // hashing vectors are sparse: their first 8 components are often all zero
    let dir = tempfile::tempdir().unwrap();
    let mut store = corpus_store(&dir, "z").await;
    let folder = dir.path().join("z");
    write(
        &folder,
        "0001_space.toml",
        "[[steps]]\nop = \"add_space\"\nspace = \"wide\"\nmodel = \"hash\"\ndimension = 768\nnormalized = true\n\n[[steps]]\nop = \"reembed\"\nspace = \"wide\"\nembedder = \"h\"\n",
    );
    write(
        &folder,
        "0002_narrow.toml",
        "[[steps]]\nop = \"truncate\"\nfrom = \"wide\"\nspace = \"tiny\"\ndimension = 8\n",
    );
    let files = memlane_store::read_folder(&folder).unwrap();
    let err = store
        .migrator(files)
        .embedder("h", hash(768, 0))
        .apply()
        .await
        .unwrap_err();
    let StoreError::InvariantViolation { report, .. } = &err else {
        panic!("{err}")
    };
    let bad = report
        .invariants
        .iter()
        .find(|r| r.name == "vectors_valid[tiny]")
        .unwrap();
    assert!(bad.failed > 0 && !bad.sample_ids.is_empty(), "{bad:?}");
    assert!(bad.message.contains("zero vector"), "{}", bad.message);
    store.refresh().await.unwrap();
    assert!(
        store.state().space("tiny").is_none(),
        "nothing of the blocked step landed"
    );
    assert_eq!(store.state().applied.len(), 1);
}
