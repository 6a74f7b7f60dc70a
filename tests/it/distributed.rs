//! The distributed backfill's rules without a cluster: an in-process executor (worker
//! threads running memlane's own `run_fragment_task`) behind `FragmentExecutor`, on the
//! hostile day: a model that lies on one fragment, staged results edited by hand.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memlane_store::memlane_core::Space;
use memlane_store::{
    CreateOptions, EmbedError, Embedder, FragmentExecutor, FragmentTask, Store, StoreError,
    TaskOutcome,
};

use crate::common::*;

const MIG: &str = "[[steps]]\nop = \"add_space\"\nspace = \"new\"\nmodel = \"hash\"\nrevision = \"7\"\ndimension = 96\nnormalized = true\n\n[[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"e\"\nsample = 50\n";

/// Returns vectors of the wrong dimension for texts containing `lie_on` (a model that
/// lies), the real ones otherwise.
struct Lies {
    lie_on: Option<String>,
}

impl Embedder for Lies {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        if let Some(l) = &self.lie_on
            && texts.iter().any(|t| t.contains(l.as_str()))
        {
            return Ok(vec![0.5; texts.len() * 95]);
        }
        hash(96, 7).embed(texts)
    }
}

/// Two worker threads running `run_fragment_task` with their own model.
struct Threads {
    tx: Sender<FragmentTask>,
    rx: Mutex<Receiver<TaskOutcome>>,
}

impl Threads {
    fn new(model: Arc<dyn Embedder>) -> Self {
        let (tx, tasks) = channel::<FragmentTask>();
        let (done, rx) = channel();
        let tasks = Arc::new(Mutex::new(tasks));
        for w in 0..2 {
            let (tasks, done, model) = (tasks.clone(), done.clone(), model.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                loop {
                    let Ok(task) = tasks.lock().unwrap().recv() else {
                        return;
                    };
                    let worker = format!("thread-{w}");
                    let out = match rt
                        .block_on(memlane_store::run_fragment_task(&task, model.as_ref()))
                    {
                        Ok(mut r) => {
                            r.worker = worker;
                            TaskOutcome::Done(r)
                        }
                        Err(e) => TaskOutcome::Failed {
                            fragment: task.fragment,
                            worker,
                            error: e.to_string(),
                        },
                    };
                    if done.send(out).is_err() {
                        return;
                    }
                }
            });
        }
        Threads {
            tx,
            rx: Mutex::new(rx),
        }
    }
}

impl FragmentExecutor for Threads {
    fn workers(&self) -> usize {
        2
    }
    fn submit(&self, task: &FragmentTask) -> Result<(), EmbedError> {
        self.tx.send(task.clone()).map_err(|e| e.to_string().into())
    }
    fn next(&self, timeout: Duration) -> Result<Option<TaskOutcome>, EmbedError> {
        Ok(self.rx.lock().unwrap().recv_timeout(timeout).ok())
    }
}

async fn store(dir: &tempfile::TempDir) -> Store {
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
    Store::create_from_json(&uri(dir, "d"), opts, &corpus(), &emb)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lying_worker_model_stops_the_step_naming_the_fragment_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(&dir).await;
    let n = store.count().await.unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("0001_new.toml"), MIG).unwrap();
    let files = memlane_store::read_folder(folder.path()).unwrap();
    // the workers' model lies (wrong dimension) on one record's text, every try
    let liar = corpus()[250]["content"].as_str().unwrap().to_owned();
    let ex = Arc::new(Threads::new(Arc::new(Lies { lie_on: Some(liar) })));
    let err = store
        .migrator(files.clone())
        .embedder("e", hash(96, 7))
        .executor("e", ex)
        .apply()
        .await
        .unwrap_err();
    let StoreError::Worker {
        attempts, message, ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(*attempts, 3, "{err}");
    assert!(message.contains("dimension"), "{err}");
    // the store is readable at its last commit, the new space not active
    let mut store = Store::open(&uri(&dir, "d")).await.unwrap();
    assert_eq!(store.state().active_space.as_deref(), Some("old"));
    assert_eq!(store.count().await.unwrap(), n);

    // staged results edited and cut by hand: ignored (and deleted), never committed
    let staged = dir.path().join("d/_memlane/staged");
    let names: Vec<_> = std::fs::read_dir(&staged)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(!names.is_empty(), "the workers staged nothing");
    for (i, p) in names.iter().enumerate() {
        if i % 2 == 0 {
            std::fs::write(p, b"{\"fragment\": 1, \"version\": ").unwrap();
        } else {
            let mut r: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            r["source_files"] = serde_json::json!(["data/not-the-file.lance"]);
            std::fs::write(p, r.to_string()).unwrap();
        }
    }
    // a model that tells the truth: the rerun completes, every row current
    let ex = Arc::new(Threads::new(Arc::new(Lies { lie_on: None })));
    let r = store
        .migrator(files.clone())
        .embedder("e", hash(96, 7))
        .executor("e", ex)
        .apply()
        .await
        .unwrap();
    let step = r.migrations[0]
        .steps
        .iter()
        .find(|s| s.op == "reembed")
        .unwrap();
    let b = step.backfill.clone().unwrap();
    assert_eq!(b.reused, 0, "{b:?}");
    assert!(b.workers.len() == 2 && b.commits >= 1, "{b:?}");
    assert_eq!(store.state().active_space.as_deref(), Some("new"));
    assert_eq!(store.coverage(Some("new")).await.unwrap(), (n, n));
    let v = store.verify(Some(&files)).await.unwrap();
    assert!(v.ok(), "{v}");
    let left: Vec<_> = std::fs::read_dir(&staged)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
