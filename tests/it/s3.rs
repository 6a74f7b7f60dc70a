//! A store on object storage: everything memlane does, on a real S3-compatible server
//! (moto's server mode on 127.0.0.1, see `memlane_tests::S3Server`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memlane_store::memlane_core::Space;
use memlane_store::{
    CreateOptions, EmbedError, Embedder, SideFiles, StorageOptions, Store, StoreError,
};
use memlane_tests::S3Server;
use serde_json::json;

use crate::common::*;

const MIG: &str = "[[steps]]\nop = \"add_space\"\nspace = \"new\"\nmodel = \"hash\"\nrevision = \"7\"\ndimension = 96\nnormalized = true\n\n[[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"e\"\nsample = 50\n";

fn storage(s3: &S3Server) -> StorageOptions {
    s3.options().into_iter().collect()
}

/// Fails once, after `fail_after` rows.
struct FailsOnce {
    rows: AtomicUsize,
    fail_after: AtomicUsize,
}

impl Embedder for FailsOnce {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let before = self.rows.fetch_add(texts.len(), Ordering::SeqCst);
        if before >= self.fail_after.load(Ordering::SeqCst) {
            self.fail_after.store(usize::MAX, Ordering::SeqCst);
            return Err("the model server went away".into());
        }
        hash(96, 7).embed(texts)
    }
    fn batch_size(&self) -> usize {
        50
    }
}

async fn s3_store(s3: &S3Server, name: &str) -> Store {
    let opts = CreateOptions {
        spaces: vec![
            Space::new("old", 32)
                .with_model("memlane", "hash", "0")
                .with_normalized(true),
        ],
        rows_per_fragment: Some(100),
        storage: storage(s3),
        ..Default::default()
    };
    let emb = HashMap::from([("old".to_owned(), hash(32, 0))]);
    Store::create_from_json(&s3.uri(name), opts, &corpus(), &emb)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_on_s3_migrates_resumes_verifies_and_restores_on_the_object_store() {
    let s3 = S3Server::start("memlane-it");
    let cwd_before: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut store = s3_store(&s3, "agent").await;
    assert_eq!(store.count().await.unwrap(), 392);
    // the dataset and the side files are objects in the bucket
    let keys = s3.list("agent/");
    assert!(
        keys.iter().any(|k| k.starts_with("agent/_versions/")),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"agent/_memlane/head.json".to_owned()),
        "{keys:?}"
    );
    let created: Vec<String> = keys
        .into_iter()
        .filter(|k| k.starts_with("agent/data/") && k.ends_with(".lance"))
        .collect();

    // a re-embed whose model fails half-way: the side files of the fragment in flight
    // go to the bucket, and the lock is released
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001_new.toml"), MIG).unwrap();
    let files = memlane_store::read_folder(dir.path()).unwrap();
    // (the backfill embeds ~87 rows a fragment: the ~13 the sample holds are written
    // from it), so this fails in the second batch of the fourth fragment
    let emb = Arc::new(FailsOnce {
        rows: 0.into(),
        fail_after: (58 + 280).into(),
    });
    let err = store
        .migrator(files.clone())
        .embedder("e", emb.clone())
        .apply()
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Embedder { .. }), "{err}");
    let side: Vec<String> = s3.list("agent/_memlane/");
    assert!(side.iter().any(|k| k.contains("/backfill/")), "{side:?}");
    assert!(!side.iter().any(|k| k.ends_with("lock.json")), "{side:?}");

    // a writer during the backfill, through a second handle
    let mut writer = Store::open_with(&s3.uri("agent"), storage(&s3))
        .await
        .unwrap();
    writer
        .add_json(
            &[json!({"id": "late", "content": "written while the re-embed waits"})],
            &HashMap::from([("old".to_owned(), hash(32, 0))]),
        )
        .await
        .unwrap();

    // resumed: completes, the side files are spent, every row has its new vector
    let r = store
        .migrator(files.clone())
        .embedder("e", emb.clone())
        .apply()
        .await
        .unwrap();
    assert!(r.migrations[0].resumed);
    assert_eq!(store.state().active_space.as_deref(), Some("new"));
    assert_eq!(store.coverage(Some("new")).await.unwrap(), (393, 393));
    assert!(
        !s3.list("agent/_memlane/")
            .iter()
            .any(|k| k.contains("/backfill/"))
    );
    let q = hash(96, 7)
        .embed(&["written while the re-embed waits"])
        .unwrap();
    assert_eq!(store.search(None, &q, 1, None).await.unwrap()[0].id, "late");
    let v = store.verify(Some(&files)).await.unwrap();
    assert!(v.ok(), "{v}");

    // validation reports are kept in the bucket and read back
    let vr = store.validate(&[], None).await.unwrap();
    store.record_validation(&vr).await.unwrap();
    assert!(s3.list("agent/_memlane/validate/").len() == 1);
    assert!(!store.validate_history().await.unwrap().is_empty());

    // a forward restore to the imported version, verified
    store
        .restore("1", "rehearsal on S3: start over")
        .await
        .unwrap();
    assert_eq!(store.state().active_space.as_deref(), Some("old"));
    let v = store.verify(None).await.unwrap();
    assert!(v.ok(), "{v}");

    // a byte flipped in a data object the restored version reads: verify names the file
    let data = created[0].clone();
    let mut bytes = s3.get(&data);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    s3.put(&data, &bytes);
    let reopened = Store::open_with(&s3.uri("agent"), storage(&s3))
        .await
        .unwrap();
    let v = reopened.verify(None).await.unwrap();
    assert!(!v.ok(), "a flipped byte must fail verify: {v}");
    let name = data.rsplit('/').next().unwrap();
    assert!(v.to_string().contains(name), "{v}");

    // nothing was written to the local disk under a path named after the URI
    let cwd_after: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(cwd_before, cwd_after);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_migrators_on_s3_exactly_one_proceeds() {
    let s3 = S3Server::start("memlane-lock");
    let store = s3_store(&s3, "shared").await;
    let side = SideFiles::open(&s3.uri("shared"), &storage(&s3))
        .await
        .unwrap();
    let lease = Duration::from_secs(60);
    let first = memlane_store::lock::acquire(&side, &storage(&s3), "ci job 1", lease)
        .await
        .unwrap();
    // a second migrator (a second handle, as another process would have)
    let other = SideFiles::open(&s3.uri("shared"), &storage(&s3))
        .await
        .unwrap();
    let err = memlane_store::lock::acquire(&other, &storage(&s3), "ci job 2", lease)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LockHeld { .. }), "{err}");
    assert!(err.to_string().contains("ci job 1"), "{err}");
    // a migration through the public API is refused too, and changes nothing
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001_new.toml"), MIG).unwrap();
    let files = memlane_store::read_folder(dir.path()).unwrap();
    let before = store.version();
    let err = Store::open_with(&s3.uri("shared"), storage(&s3))
        .await
        .unwrap()
        .migrator(files)
        .embedder("e", hash(96, 7))
        .apply()
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LockHeld { .. }), "{err}");
    let now = Store::open_with(&s3.uri("shared"), storage(&s3))
        .await
        .unwrap();
    assert_eq!(now.version(), before);
    // the status shows the holder; released on drop
    let st = now.status(None).await.unwrap();
    assert_eq!(
        st.lock.as_ref().map(|l| l.holder.as_str()),
        Some("ci job 1")
    );
    drop(first);
    assert!(memlane_store::lock::read_lock(&other).await.is_none());

    // two takers at the same moment, many times: exactly one wins each round
    for round in 0..10 {
        let takers: Vec<_> = (0..2)
            .map(|i| {
                let (uri, opts) = (s3.uri("shared"), storage(&s3));
                tokio::spawn(async move {
                    let side = SideFiles::open(&uri, &opts).await.unwrap();
                    memlane_store::lock::acquire(&side, &opts, &format!("taker {i}"), lease).await
                })
            })
            .collect();
        let mut won = Vec::new();
        for t in takers {
            match t.await.unwrap() {
                Ok(g) => won.push(g),
                Err(StoreError::LockHeld { .. } | StoreError::Conflict { .. }) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one migrator holds the lock"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_on_s3_is_taken_over_and_unlock_force_removes_a_lock() {
    let s3 = S3Server::start("memlane-lease");
    let _store = s3_store(&s3, "s").await;
    let side = SideFiles::open(&s3.uri("s"), &storage(&s3)).await.unwrap();
    // a holder on another machine that died: its lease ran out
    let past = chrono_like_past();
    s3.put(
        "s/_memlane/lock.json",
        serde_json::to_vec(&json!({
            "holder": "dead runner", "host": "elsewhere", "pid": 7, "token": "t",
            "since": past, "heartbeat": past, "expires": past
        }))
        .unwrap()
        .as_slice(),
    );
    let g = memlane_store::lock::acquire(&side, &storage(&s3), "next", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        memlane_store::lock::read_lock(&side).await.unwrap().holder,
        "next"
    );
    // unlock --force refuses a holder alive on this host unless told, then removes it;
    // the holder notices at its next beat
    let err = memlane_store::lock::force_unlock(&side, false)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LockAlive { .. }), "{err}");
    let removed = memlane_store::lock::force_unlock(&side, true)
        .await
        .unwrap();
    assert_eq!(removed.unwrap().holder, "next");
    assert!(memlane_store::lock::read_lock(&side).await.is_none());
    drop(g);
    assert!(memlane_store::lock::read_lock(&side).await.is_none());
}

fn chrono_like_past() -> String {
    "2020-01-01T00:00:00Z".into()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_ignores_conditional_writes_is_refused_rather_than_run_unlocked() {
    let s3 = S3Server::start("memlane-nocond");
    let _store = s3_store(&s3, "s").await;
    let proxy = s3.ignoring_conditions();
    let opts = storage(&s3).with("aws_endpoint", proxy.endpoint.clone());
    let side = SideFiles::open(&s3.uri("s"), &opts).await.unwrap();
    let err = memlane_store::lock::acquire(&side, &opts, "apply", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LockUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("If-None-Match"), "{err}");
    assert!(memlane_store::lock::read_lock(&side).await.is_none());
    // the store stays readable through the same endpoint; migrating is what is refused
    let st = Store::open_with(&s3.uri("s"), opts).await.unwrap();
    assert_eq!(st.count().await.unwrap(), 392);
}

const INDEX: &str = "[[steps]]\nop = \"create_index\"\nspace = \"old\"\nindex = { kind = \"ivf_pq\", partitions = 4, sub_vectors = 8, nprobes = 4 }\n";

#[tokio::test(flavor = "multi_thread")]
async fn an_index_on_s3_is_built_carried_searched_and_a_deleted_index_object_is_caught() {
    use memlane_store::SearchOptions;
    use memlane_store::memlane_core::IndexKind;

    let s3 = S3Server::start("memlane-ix");
    let mut store = s3_store(&s3, "agent").await;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m");
    std::fs::create_dir(&f).unwrap();
    std::fs::write(f.join("0001_index.toml"), INDEX).unwrap();
    std::fs::write(f.join("0002_new.toml"), MIG).unwrap();
    let files = memlane_store::read_folder(&f).unwrap();
    store
        .migrator(files.clone())
        .embedder("e", hash(96, 7))
        .apply()
        .await
        .unwrap();
    // the re-embed carried the index to the new space before the switch, on S3
    assert_eq!(store.state().active_space.as_deref(), Some("new"));
    let spec = store.space(Some("new")).unwrap().index.clone().unwrap();
    assert_eq!(spec.kind, IndexKind::IvfPq);
    let index_keys: Vec<String> = s3
        .list("agent/_indices/")
        .into_iter()
        .filter(|k| !k.ends_with('/'))
        .collect();
    assert!(!index_keys.is_empty(), "no index objects in the bucket");
    let recs = corpus();
    let q = hash(96, 7)
        .embed(&[recs[40]["content"].as_str().unwrap()])
        .unwrap();
    let via = store
        .search_with(None, &q, 3, None, &SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(via.index, Some(IndexKind::IvfPq));
    assert_eq!(via.hits[0].id, recs[40]["id"].as_str().unwrap());
    let v = store.verify(Some(&files)).await.unwrap();
    assert!(v.ok(), "{v}");

    // the index objects deleted behind memlane's back: search still answers, exactly,
    // naming the fix; verify fails on `indexes`
    for k in &index_keys {
        let (status, _) = s3.request("DELETE", &format!("/memlane-ix/{k}"), b"");
        assert!(status < 300, "DELETE {k}: {status}");
    }
    let store = Store::open_with(&s3.uri("agent"), storage(&s3))
        .await
        .unwrap();
    let via = store
        .search_with(None, &q, 3, None, &SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(via.index, None);
    assert!(
        via.fallback
            .as_deref()
            .is_some_and(|w| w.contains("optimize_index")),
        "{via:?}"
    );
    assert_eq!(via.hits[0].id, recs[40]["id"].as_str().unwrap());
    let v = store.verify(Some(&files)).await.unwrap();
    let bad = v.checks.iter().find(|c| c.name == "indexes").unwrap();
    assert!(!bad.ok && bad.message.contains("vec_new_idx"), "{v}");
}
