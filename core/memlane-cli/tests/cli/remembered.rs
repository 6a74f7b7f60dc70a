//! Spaces that remember their embedder: after a re-embed the store knows which model
//! filled each space, so `add` and `search` work in a new process without being told;
//! `set-embedder` keeps only a model that reproduces the space's stored vectors and
//! never a command; a name this session does not know is an error that says how to
//! declare it; a second process writing during `set-embedder` loses nothing.

use std::path::Path;

use crate::branches::store_with_old_space;
use crate::common::{code, ex, json, ok, run, sorted_export};

fn write_records(dir: &Path, name: &str, ids: &[&str]) -> String {
    let f = dir.join(format!("{name}.jsonl"));
    let lines: Vec<String> = ids
        .iter()
        .map(|id| {
            format!("{{\"id\": \"{id}\", \"content\": \"note {id} about remembered models\"}}")
        })
        .collect();
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    f.to_str().unwrap().to_owned()
}

/// The vector a hashing embedder gives `text` (the CLI's own export of a fresh store).
fn hash_vector(dir: &Path, spec: &str, id: &str) -> Vec<f64> {
    let name = format!("probe-{id}-{}", spec.replace(':', "-"));
    let s = dir.join(&name);
    let s = s.to_str().unwrap();
    let rec = write_records(dir, &name, &[id]);
    let dim = spec.split(':').nth(1).unwrap();
    ok(&["init", s, "--plain", "--space", &format!("p:{dim}")]);
    ok(&["add", s, &rec, "--embedder", &format!("p={spec}")]);
    let rows = sorted_export(s, dir, &format!("{name}-out"));
    floats(&rows[0]["vec_p"])
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a vector: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn a_reembedded_store_adds_and_searches_text_in_a_new_process_without_flags() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_old_space(dir.path(), 600);
    ok(&["apply", &s, &ex("04-reembed-new-model"), "--yes"]);
    let st = json(&["status", &s]);
    let remembered: Vec<_> = st["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sp| (sp["name"].clone(), sp["embedder"].clone()))
        .collect();
    assert_eq!(
        remembered,
        vec![
            ("old256".into(), "hash256".into()),
            ("new384".into(), "hash384v2".into())
        ]
    );
    assert!(ok(&["status", &s]).contains("embedder hash384v2"));

    // a new process, no --embedder: both spaces embed with what they remember
    let f = write_records(dir.path(), "new", &["r1", "r2"]);
    ok(&["add", &s, &f]);
    let rows = sorted_export(&s, dir.path(), "after");
    let r1 = rows.iter().find(|r| r["id"] == "r1").unwrap();
    assert_eq!(
        floats(&r1["vec_new384"]),
        hash_vector(dir.path(), "hash:384:2", "r1")
    );
    assert_eq!(
        floats(&r1["vec_old256"]),
        hash_vector(dir.path(), "hash:256", "r1")
    );

    // search takes text with the remembered query embedder; the record added is first
    let hits = json(&["search", &s, "note r2 about remembered models", "-k", "3"]);
    assert_eq!(hits["hits"][0]["id"], "r2", "{hits:#}");
    assert_eq!(json(&["verify", &s])["ok"], true);
}

#[test]
fn set_embedder_keeps_only_a_model_that_reproduces_the_space_and_never_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_old_space(dir.path(), 300);
    let before = json(&["status", &s])["version"].clone();

    // another model of the same dimension: refused, naming a record, nothing committed
    let o = run(&["set-embedder", &s, "old256", "hash:256:7"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 1, "{err}");
    // (old256 has a canary fingerprint: the canaries differ before any stored record)
    assert!(
        err.contains("does not reproduce") && err.contains("old256"),
        "{err}"
    );
    // a command: never kept, the error says what to do instead
    let o = run(&["set-embedder", &s, "old256", "cmd:python3 embed.py"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("[embedders.NAME]"));
    // a name nobody declared: refused, saying how to declare it
    let o = run(&["set-embedder", &s, "old256", "minilm"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not known to this session") && err.contains("[embedders.minilm]"),
        "{err}"
    );
    assert_eq!(json(&["status", &s])["version"], before);

    // a named model from a memlane.toml, checked and kept
    let toml = dir.path().join("memlane.toml");
    std::fs::write(
        &toml,
        "[embedders.house]\ntype = \"hash\"\ndimension = 256\n",
    )
    .unwrap();
    let toml = toml.to_str().unwrap();
    let out = ok(&["set-embedder", &s, "old256", "house", "--embedders", toml]);
    assert!(out.contains("remembers embedder house"), "{out}");
    let h = json(&["history", &s]);
    assert!(
        h.to_string()
            .contains("space `old256` remembers embedder `house`"),
        "{h}"
    );

    // a writer without the file gets an error naming the model and the ways to declare it
    let f = write_records(dir.path(), "w", &["n1"]);
    let o = run(&["add", &s, &f]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("record `n1` has no vector")
            && err.contains("remembers embedder `house`")
            && err.contains("MEMLANE_EMBEDDERS"),
        "{err}"
    );
    // with the file in the environment it writes
    let o = crate::common::bin()
        .args(["add", &s, &f])
        .env("MEMLANE_EMBEDDERS", toml)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // the same name now declared as another model: the write is refused, not mixed in
    std::fs::write(
        toml,
        "[embedders.house]\ntype = \"hash\"\ndimension = 256\nseed = 5\n",
    )
    .unwrap();
    let f2 = write_records(dir.path(), "w2", &["n2"]);
    let o = crate::common::bin()
        .args(["add", &s, &f2])
        .env("MEMLANE_EMBEDDERS", toml)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a different model was written into old256"
    );
    // forgotten: a write without a vector is refused again, naming the space
    ok(&["set-embedder", &s, "old256", "--forget"]);
    let o = run(&["add", &s, &f2]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no vector for space `old256`"));
    assert_eq!(json(&["verify", &s])["ok"], true);
}

#[test]
fn a_writer_racing_set_embedder_loses_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_old_space(dir.path(), 300);
    let mut written = Vec::new();
    std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            for _ in 0..3 {
                ok(&["set-embedder", &s, "old256", "hash:256"]);
                ok(&["set-embedder", &s, "old256", "--forget"]);
            }
            ok(&["set-embedder", &s, "old256", "hash256"]);
        });
        while !h.is_finished() || written.len() < 3 {
            let id = format!("w{}", written.len());
            let f = write_records(dir.path(), &id, &[&id]);
            ok(&["add", &s, &f, "--embedder", "old256=hash:256"]);
            written.push(id);
            assert!(written.len() < 500);
        }
        h.join().unwrap();
    });
    let rows = sorted_export(&s, dir.path(), "out");
    assert_eq!(rows.len(), 300 + written.len());
    for id in &written {
        assert!(rows.iter().any(|r| r["id"] == id.as_str()), "{id} lost");
    }
    let st = json(&["status", &s]);
    assert_eq!(st["spaces"][0]["embedder"], "hash256");
    assert_eq!(json(&["verify", &s])["ok"], true);
}

#[test]
fn set_embedder_sigkilled_at_varied_moments_leaves_either_state_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_old_space(dir.path(), 300);
    // the delays only spread where the kill lands; nothing below depends on where
    for (i, ms) in [0u64, 20, 60, 120, 250, 400].into_iter().enumerate() {
        let mut child = crate::common::bin()
            .args(["set-embedder", &s, "old256", "hash256"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
        // the store is at the state before or after the commit, never between
        assert_eq!(json(&["verify", &s])["ok"], true, "kill {i}");
        let kept = json(&["status", &s])["spaces"][0]["embedder"].clone();
        assert!(kept.is_null() || kept == "hash256", "kill {i}: {kept}");
        // the dead holder's lock is no obstacle: a rerun and a write go through
        ok(&["set-embedder", &s, "old256", "hash256"]);
        let f = write_records(dir.path(), &format!("k{i}"), &[&format!("k{i}")]);
        ok(&["add", &s, &f]);
        ok(&["set-embedder", &s, "old256", "--forget"]);
    }
    assert_eq!(sorted_export(&s, dir.path(), "end").len(), 306);
    assert_eq!(json(&["verify", &s])["ok"], true);
}
