//! `branch promote`: a rehearsed re-embed (with a vector index) becomes the store's
//! without calling the model again, with the history, tags and files a direct apply
//! would give; refused on a moved store, a sampled branch and a changed branch file
//! (store unchanged); SIGKILLed at varied moments and finished by running it again;
//! raced by a second process writing through the public API, losing none of its rows.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::branches::store_with_old_space;
use crate::common::{bin, code, ex, files, json, ok, run, sorted_export};

/// A folder: the example's old space, then a re-embed into new384 and an index on it.
fn folder_with_index(dir: &Path) -> String {
    let migs = dir.join("migs");
    std::fs::create_dir_all(&migs).unwrap();
    let src = Path::new(&ex("04-reembed-new-model")).to_path_buf();
    for f in ["0001_old.toml", "0002_new_model.toml"] {
        std::fs::copy(src.join(f), migs.join(f)).unwrap();
    }
    std::fs::write(
        migs.join("0003_index.toml"),
        "[[steps]]\nop = \"create_index\"\nspace = \"new384\"\nindex = { kind = \"ivf_pq\", partitions = 4, sub_vectors = 8 }\n",
    )
    .unwrap();
    migs.to_str().unwrap().to_owned()
}

fn history_actions(store: &str) -> Vec<String> {
    json(&["history", store])
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["entry"]["action"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_rehearsed_reembed_is_promoted_with_its_index_and_no_model_call() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_old_space(dir.path(), 3000);
    let migs = folder_with_index(dir.path());
    let r = json(&["rehearse", &s, &migs, "--keep", "--name", "r1"]);
    assert_eq!(r["outcome"], "pass", "{r:#}");
    let branch = format!("{s}.branches/r1");
    let on_branch = sorted_export(&branch, dir.path(), "branch");

    let p = json(&["branch", "promote", &s, "r1", "--keep"]);
    assert_eq!(
        p["migrations"],
        serde_json::json!(["0002_new_model.toml", "0003_index.toml"]),
        "{p:#}"
    );
    assert!(p["commits"].as_u64().unwrap() >= 3, "{p:#}");
    assert!(p["files_copied"].as_u64().unwrap() > 0, "{p:#}");
    assert_eq!(p["branch_deleted"], false);

    // the store is what the branch was: rows, vectors, the active space, the index
    let st = json(&["status", &s]);
    assert_eq!(st["active_space"], "new384", "{st:#}");
    assert_eq!(st["applied"].as_array().unwrap().len(), 3);
    assert_eq!(sorted_export(&s, dir.path(), "store"), on_branch);
    let v = json(&["verify", &s]);
    assert_eq!(v["ok"], true, "{v:#}");
    let idx = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "indexes")
        .unwrap();
    assert!(
        idx["message"].as_str().unwrap().contains("new384"),
        "{idx:#}"
    );
    let d = run(&["--json", "diff", &s, &branch]);
    assert_eq!(code(&d), 0, "{}", String::from_utf8_lossy(&d.stdout));
    // searched through the promoted index, from the store's own files
    let hits = json(&[
        "search",
        &s,
        "a reentrant lock",
        "-k",
        "3",
        "--embedder",
        "hash:384",
    ]);
    assert_eq!(hits["hits"].as_array().map(Vec::len), Some(3), "{hits:#}");

    // the history a direct apply writes, each commit naming the branch commit it was
    let acts = history_actions(&s);
    assert_eq!(acts.last().map(String::as_str), Some("promote"));
    assert_eq!(acts.iter().filter(|a| *a == "migration").count(), 3);
    let tags = json(&["tag", &s]).to_string();
    assert!(tags.contains("migration-0002-new-model"), "{tags}");
    assert!(tags.contains("migration-0003-index"), "{tags}");

    // nothing left to embed: the folder plans no pending migration
    let plan = json(&["plan", &s, &migs]);
    assert_eq!(
        plan["migrations"].as_array().map(Vec::len),
        Some(0),
        "{plan:#}"
    );

    // a second promote is a no-op that deletes the branch
    let again = json(&["branch", "promote", &s, "r1"]);
    assert_eq!(
        (again["commits"].as_u64(), again["branch_deleted"].as_bool()),
        (Some(0), Some(true))
    );
    assert!(!Path::new(&branch).exists());
    assert_eq!(json(&["verify", &s])["ok"], true);
}

#[test]
fn promote_refuses_a_moved_store_a_sampled_branch_and_a_changed_file() {
    let dir = tempfile::tempdir().unwrap();
    let migs = ex("04-reembed-new-model");

    // the store moved: a record added after the branch point
    let a = dir.path().join("a");
    std::fs::create_dir(&a).unwrap();
    let s = store_with_old_space(&a, 1000);
    ok(&["rehearse", &s, &migs, "--keep", "--name", "r1"]);
    let f = dir.path().join("one.jsonl");
    std::fs::write(
        &f,
        "{\"id\": \"late\", \"content\": \"written after the branch\"}\n",
    )
    .unwrap();
    ok(&[
        "add",
        &s,
        f.to_str().unwrap(),
        "--embedder",
        "old256=hash:256",
    ]);
    let before = files(Path::new(&s));
    let o = run(&["branch", "promote", &s, "r1"]);
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("moved since") && err.contains("memlane apply"),
        "{err}"
    );
    assert_eq!(files(Path::new(&s)), before);

    // a sampled rehearsal's branch holds a fifth of the rows
    let b = dir.path().join("b");
    std::fs::create_dir(&b).unwrap();
    let s = store_with_old_space(&b, 1000);
    ok(&[
        "rehearse", &s, &migs, "--keep", "--name", "smp", "--sample", "200",
    ]);
    let before = files(Path::new(&s));
    let o = run(&["branch", "promote", &s, "smp"]);
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("sample") && err.contains("without --sample"),
        "{err}"
    );
    assert_eq!(files(Path::new(&s)), before);

    // one byte of a file the branch wrote, flipped by hand
    let c = dir.path().join("c");
    std::fs::create_dir(&c).unwrap();
    let s = store_with_old_space(&c, 1000);
    ok(&["rehearse", &s, &migs, "--keep", "--name", "r1"]);
    let before = files(Path::new(&s));
    let branch_data = Path::new(&format!("{s}.branches/r1")).join("data");
    let own = std::fs::read_dir(&branch_data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&own).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&own, bytes).unwrap();
    let o = run(&["branch", "promote", &s, "r1"]);
    assert_eq!(code(&o), 3, "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    let name = own.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name) && err.contains("sealed"), "{err}");
    assert_eq!(files(Path::new(&s)), before, "the copies are removed");
    assert_eq!(json(&["verify", &s])["ok"], true);
}

#[test]
fn a_killed_promote_is_finished_by_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_old_space(dir.path(), 6000);
    let migs = folder_with_index(dir.path());
    ok(&["rehearse", &s, &migs, "--keep", "--name", "r1"]);
    let want = sorted_export(&format!("{s}.branches/r1"), dir.path(), "branch");

    let count = |d: &str| std::fs::read_dir(Path::new(&s).join(d)).map_or(0, Iterator::count);
    // kill points: while copying files, then after 1, 2, 3 and 4 more commits
    let mut kills = 0;
    for stage in 0..5 {
        let (versions, data) = (count("_versions"), count("data"));
        let mut child = Command::new(bin().get_program())
            .args(["branch", "promote", &s, "r1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() {
            let reached = if stage == 0 {
                count("data") > data
            } else {
                count("_versions") >= versions + stage
            };
            if reached {
                let _ = child.kill(); // SIGKILL
                kills += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.wait().unwrap().success() {
            break;
        }
        // after each kill the store is readable and intact at some version
        let v = json(&["verify", &s]);
        assert_eq!(v["ok"], true, "after kill {kills}: {v:#}");
        assert_eq!(json(&["status", &s])["rows"].as_u64(), Some(6000));
    }
    assert!(kills >= 2, "the kills landed inside the promote ({kills})");
    // the run that finishes it (or a no-op when the last one did)
    let o = run(&["branch", "promote", &s, "r1"]);
    assert!(
        code(&o) == 0 || String::from_utf8_lossy(&o.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!Path::new(&format!("{s}.branches/r1")).exists());
    let st = json(&["status", &s]);
    assert_eq!(st["applied"].as_array().unwrap().len(), 3, "{st:#}");
    assert_eq!(sorted_export(&s, dir.path(), "store"), want);
    let v = json(&["verify", &s]);
    assert_eq!(v["ok"], true, "{v:#}");
    let acts = history_actions(&s);
    assert_eq!(
        acts.iter().filter(|a| *a == "promote").count(),
        1,
        "{acts:?}"
    );
}

#[test]
fn a_writer_racing_a_promote_loses_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_old_space(dir.path(), 6000);
    let migs = ex("04-reembed-new-model");
    ok(&["rehearse", &s, &migs, "--keep", "--name", "r1"]);

    let child = Command::new(bin().get_program())
        .args(["branch", "promote", &s, "r1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut written = Vec::new();
    let out = std::thread::scope(|sc| {
        let h = sc.spawn(|| child.wait_with_output().unwrap());
        while !h.is_finished() || written.len() < 3 {
            let id = format!("w{}", written.len());
            let f = dir.path().join(format!("{id}.jsonl"));
            std::fs::write(
                &f,
                format!("{{\"id\": \"{id}\", \"content\": \"raced {id}\"}}\n"),
            )
            .unwrap();
            let f = f.to_str().unwrap();
            let old = ["add", &s, f, "--embedder", "old256=hash:256"];
            let o = run(&old);
            if !o.status.success() {
                // once the promote has landed, `new384` is complete and every write
                // must bring its vector: the error says so, and the writer follows it
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(err.contains("no vector for space `new384`"), "{err}");
                ok(&[&old[..], &["--embedder", "new384=hash:384:2"]].concat());
            }
            written.push(id);
            assert!(written.len() < 500);
        }
        h.join().unwrap()
    });
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // it completed, stopped on the writer's commit, or found the store moved first
    assert!(
        out.status.success()
            || err.contains("another writer committed")
            || err.contains("moved since"),
        "{err}"
    );
    // A write prepared before the switch to new384 and committed after it lands
    // without a new384 vector (writes never fail during a migration); until `apply`
    // catches it up (as after any re-embed a writer raced), verify names exactly
    // such rows and nothing else.
    let o = run(&["verify", &s, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for c in v["checks"].as_array().unwrap() {
        let m = c["message"].as_str().unwrap_or_default();
        assert!(
            c["ok"] == true || (c["name"] == "vectors" && m.contains("record `w")),
            "{err}\n{v:#}"
        );
    }
    // the migration is finished on the store whichever way it went
    ok(&["apply", &s, &migs, "--yes"]);
    let rows = sorted_export(&s, dir.path(), "after");
    assert_eq!(rows.len(), 6000 + written.len());
    for id in &written {
        assert!(rows.iter().any(|r| r["id"] == id.as_str()), "{id} lost");
    }
    let st = json(&["status", &s]);
    assert_eq!(
        (
            st["active_space"].as_str(),
            st["applied"].as_array().map(Vec::len)
        ),
        (Some("new384"), Some(2))
    );
    assert_eq!(json(&["verify", &s])["ok"], true);
}
