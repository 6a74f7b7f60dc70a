//! Vector indexes on the hostile day: an index build SIGKILLed at random moments while a
//! second process writes through the public API, then its files deleted or truncated by
//! hand. The build lands exactly once, no write fails, search answers throughout (from
//! the index, or exactly with a warning naming the fix), and verify names a damaged
//! index until an `optimize_index` step rebuilds it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const INDEX: &str = "[[steps]]\nop = \"create_index\"\nspace = \"old\"\nindex = { kind = \"ivf_pq\", partitions = 8, sub_vectors = 8, nprobes = 8, refine_factor = 4 }\n";
const OPTIMIZE: &str = "[[steps]]\nop = \"optimize_index\"\nspace = \"old\"\n";

/// A writer thread adding, upserting and deleting through the CLI until `stop`; returns
/// (successful writes, failures with their stderr).
fn writer(
    store: String,
    dir: std::path::PathBuf,
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicUsize>,
    failed: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut k = 0usize;
        while !stop.load(Ordering::SeqCst) {
            k += 1;
            let f = dir.join(format!("w{k}.jsonl"));
            let rec = |id: String, text: String| {
                serde_json::json!({"id": id, "content": text, "kind": "episodic"}).to_string()
            };
            let args: Vec<String> = match k % 3 {
                0 => vec![
                    "delete".into(),
                    store.clone(),
                    "--where".into(),
                    format!("id = 'w-{}'", k - 2),
                ],
                verb => {
                    let (verb, id) = if verb == 1 {
                        ("add", k)
                    } else {
                        ("upsert", k - 1)
                    };
                    std::fs::write(
                        &f,
                        rec(format!("w-{id}"), format!("note {k} from the agent")) + "\n",
                    )
                    .unwrap();
                    vec![
                        verb.into(),
                        store.clone(),
                        f.to_str().unwrap().into(),
                        "--embedder".into(),
                        "old=hash:32".into(),
                    ]
                }
            };
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = run(&a);
            if o.status.success() {
                writes.fetch_add(1, Ordering::SeqCst);
            } else {
                failed
                    .lock()
                    .unwrap()
                    .push(format!("{a:?}: {}", String::from_utf8_lossy(&o.stderr)));
            }
        }
    })
}

fn index_files(store: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(store.join("_indices")) else {
        return out;
    };
    for d in dirs.flatten() {
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            out.push(f.path());
        }
    }
    out
}

fn search(store: &str) -> Value {
    json(&[
        "search",
        store,
        "reset my password",
        "--embedder",
        "hash:32",
        "-k",
        "5",
    ])
}

#[test]
#[allow(clippy::print_stderr)] // kills and writes, for the closing note
fn index_build_survives_kills_and_writers_and_a_damaged_index_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("corpus.jsonl");
    write_big_corpus(&data, 4000);
    let sp = dir.path().join("store");
    let s = sp.to_str().unwrap().to_owned();
    ok(&[
        "init",
        &s,
        "--from",
        data.to_str().unwrap(),
        "--space",
        "old:32:cosine:normalized",
        "--embedder",
        "old=hash:32",
        "--rows-per-fragment",
        "500",
    ]);
    let migs = dir.path().join("migs");
    std::fs::create_dir(&migs).unwrap();
    std::fs::write(migs.join("0001_index.toml"), INDEX).unwrap();
    let m = migs.to_str().unwrap().to_owned();

    let (stop, writes) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let failed = Arc::new(Mutex::new(Vec::new()));
    let wdir = dir.path().join("writer");
    std::fs::create_dir(&wdir).unwrap();
    let w = writer(
        s.clone(),
        wdir,
        stop.clone(),
        writes.clone(),
        failed.clone(),
    );

    // kill the build at random moments, then let one run finish
    let mut rng = Lcg(0x1dec5);
    let mut kills = 0;
    for _ in 0..6 {
        let mut child = bin()
            .args(["apply", &s, &m, "--yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + rng.next() % 3000));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        // the store stays readable at every step, and search always answers
        assert!(search(&s)["hits"].as_array().is_some_and(|h| !h.is_empty()));
    }
    ok(&["apply", &s, &m, "--yes"]);
    // the writer goes on a little after the build landed
    for _ in 0..3 {
        let before = writes.load(Ordering::SeqCst);
        while writes.load(Ordering::SeqCst) == before && failed.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    stop.store(true, Ordering::SeqCst);
    w.join().unwrap();
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "writes failed during the index build: {failed:#?}"
    );
    let st = json(&["status", &s]);
    assert_eq!(
        st["applied"].as_array().map(Vec::len),
        Some(1),
        "after {kills} kills: {st}"
    );
    assert!(st["in_flight"].is_null(), "{st}");
    eprintln!(
        "index build: {kills} kills, {} writes",
        writes.load(Ordering::SeqCst)
    );
    assert!(ok(&["status", &s]).contains("index ivf_pq"));

    // the index answers searches; verify holds; validate sees the writer's rows uncovered
    let found = search(&s);
    assert_eq!(found["index"], "ivf_pq", "{found}");
    assert!(found["fallback"].is_null());
    ok(&["verify", &s]);
    let v = json(&["validate", &s]);
    let cov = v.to_string();
    assert!(cov.contains("index_coverage[old]"), "{cov}");

    // an optimize step folds the new rows in
    std::fs::write(migs.join("0002_optimize.toml"), OPTIMIZE).unwrap();
    ok(&["apply", &s, &m, "--yes"]);
    let v = json(&["validate", &s]).to_string();
    assert!(v.contains("covers all"), "{v}");

    // the index's files deleted by hand: search falls back to exact and says so, verify
    // names the index and the fix
    let files = index_files(&sp);
    assert!(!files.is_empty(), "no index files under _indices");
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = files
        .iter()
        .map(|f| (f.clone(), std::fs::read(f).unwrap()))
        .collect();
    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    let found = search(&s);
    assert!(found["index"].is_null(), "{found}");
    let why = found["fallback"].as_str().unwrap_or_default().to_owned();
    assert!(why.contains("old_idx") || why.contains("`old`"), "{why}");
    assert!(why.contains("optimize_index"), "{why}");
    assert!(
        !why.contains(".rs:"),
        "a dependency's source path leaked: {why}"
    );
    assert_eq!(found["hits"].as_array().map(Vec::len), Some(5));
    let text = ok(&[
        "search",
        &s,
        "reset my password",
        "--embedder",
        "hash:32",
        "-k",
        "5",
    ]);
    assert!(
        text.contains("warning") && text.contains("optimize_index"),
        "{text}"
    );
    let o = run(&["verify", &s]);
    assert_ne!(code(&o), 0, "verify passed with the index files deleted");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("indexes") && out.contains("optimize_index"),
        "{out}"
    );

    // truncated instead of deleted: caught the same way
    for (f, bytes) in &saved {
        std::fs::write(f, &bytes[..bytes.len() / 3]).unwrap();
    }
    assert!(search(&s)["fallback"].is_string());
    assert_ne!(code(&run(&["verify", &s])), 0);

    // the fix the messages name works
    std::fs::write(migs.join("0003_rebuild.toml"), OPTIMIZE).unwrap();
    ok(&["apply", &s, &m, "--yes"]);
    let found = search(&s);
    assert_eq!(found["index"], "ivf_pq", "{found}");
    assert!(ok(&["verify", &s]).contains("indexes readable: old (ivf_pq)"));
}
