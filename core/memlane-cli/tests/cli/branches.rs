//! Branches and rehearsals: a pending re-embed applied for real on a branch, the store's
//! version and every file of it unchanged (bytes and names), while a second process
//! writes to the store; a rehearsal SIGKILLed mid-apply leaves the store as it was and a
//! branch `branch list` shows and `branch delete` removes; a blocked rehearsal exits 3.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{Lcg, bin, code, ex, files, json, ok, run, write_big_corpus};

pub(crate) fn store_with_old_space(dir: &Path, rows: usize) -> String {
    let data = dir.join("data.jsonl");
    write_big_corpus(&data, rows);
    let s = dir.join("store").to_str().unwrap().to_owned();
    ok(&[
        "init",
        &s,
        "--from",
        data.to_str().unwrap(),
        "--rows-per-fragment",
        "500",
    ]);
    ok(&[
        "apply",
        &s,
        &ex("04-reembed-new-model"),
        "--to",
        "1",
        "--yes",
    ]);
    s
}

#[test]
fn a_rehearsal_reembeds_on_a_branch_and_leaves_the_store_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_old_space(dir.path(), 3000);
    let before = files(Path::new(&s));
    let version = json(&["status", &s])["version"].as_u64().unwrap();

    // the whole store: a real re-embed (hash-embed-v2, 384-d) on the branch
    let r = json(&[
        "rehearse",
        &s,
        &ex("04-reembed-new-model"),
        "--keep",
        "--name",
        "full",
    ]);
    assert_eq!(r["outcome"], "pass", "{r:#}");
    assert_eq!(r["store_version"].as_u64(), Some(version));
    assert_eq!(
        (r["rows"].as_u64(), r["rows_rehearsed"].as_u64()),
        (Some(3000), Some(3000))
    );
    let steps = &r["report"]["migrations"][0]["steps"];
    assert_eq!(steps[1]["op"], "reembed");
    assert_eq!(steps[1]["rows_written"].as_u64(), Some(3000));
    assert!(
        r["report"]["context"]["context_kept"].as_f64().is_some(),
        "{r:#}"
    );
    let branch = r["branch"].as_str().unwrap().to_owned();
    assert_eq!(branch, format!("{s}.branches/full"));

    // the branch is a store of its own: verified, the new space active, 3000 vectors
    let v = json(&["verify", &branch]);
    assert_eq!(v["ok"], true, "{v:#}");
    let st = json(&["status", &branch]);
    assert_eq!(st["active_space"], "new384");
    assert_eq!(st["rows"].as_u64(), Some(3000));

    // sampled: 600 of 3000 rows, duration and cost extrapolated, branch deleted
    let r = json(&[
        "rehearse",
        &s,
        &ex("04-reembed-new-model"),
        "--sample",
        "600",
    ]);
    assert_eq!(r["outcome"], "pass", "{r:#}");
    assert_eq!(r["rows_rehearsed"].as_u64(), Some(600));
    assert_eq!(
        r["report"]["migrations"][0]["steps"][1]["rows_written"].as_u64(),
        Some(600)
    );
    let ms = r["duration_ms"].as_u64().unwrap();
    assert_eq!(r["estimated_full_ms"].as_u64(), Some(ms * 5));
    assert!(!Path::new(r["branch"].as_str().unwrap()).exists());

    let list = json(&["branch", "list", &s]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["full"]);
    assert_eq!(list[0]["from_version"].as_u64(), Some(version));

    // nothing of the store changed: its version, and every file's name and bytes
    assert_eq!(json(&["status", &s])["version"].as_u64(), Some(version));
    assert_eq!(files(Path::new(&s)), before);
    ok(&["branch", "delete", &s, "full"]);
    assert!(json(&["branch", "list", &s]).as_array().unwrap().is_empty());
    assert!(!Path::new(&branch).exists());
    let v = json(&["verify", &s]);
    assert_eq!(v["ok"], true, "{v:#}");
}

#[test]
fn a_killed_rehearsal_beside_a_writer_leaves_the_store_as_its_writer_left_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_old_space(dir.path(), 6000);
    // a throttled re-embed, so the kill lands inside the branch's backfill
    let migs = dir.path().join("migs");
    std::fs::create_dir(&migs).unwrap();
    std::fs::copy(
        Path::new(&ex("04-reembed-new-model")).join("0001_old.toml"),
        migs.join("0001_old.toml"),
    )
    .unwrap();
    std::fs::write(
        migs.join("0002_new.toml"),
        "[[steps]]\nop = \"add_space\"\nspace = \"new384\"\nmodel = \"hash-embed-v2\"\nrevision = \"2\"\ndimension = 384\nnormalized = true\n\n\
         [[steps]]\nop = \"reembed\"\nspace = \"new384\"\nembedder = \"hash384v2\"\nthrottle = 1000\n",
    )
    .unwrap();

    let mut child = Command::new(bin().get_program())
        .args(["rehearse", &s, migs.to_str().unwrap(), "--name", "killed"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // a second process writes to the store meanwhile, through the public API
    let mut rng = Lcg(7);
    let mut writes = 0;
    let branch = format!("{s}.branches/killed");
    while writes < 6 || !Path::new(&branch).join("_versions").exists() {
        let f = dir.path().join(format!("w{writes}.jsonl"));
        std::fs::write(
            &f,
            format!(
                "{{\"id\": \"w{writes}\", \"content\": \"written during the rehearsal {}\"}}\n",
                rng.next()
            ),
        )
        .unwrap();
        ok(&[
            "add",
            &s,
            f.to_str().unwrap(),
            "--embedder",
            "old256=hash:256",
        ]);
        writes += 1;
        assert!(writes < 400, "the branch never appeared");
    }
    let _ = child.kill();
    let _ = child.wait();
    let after_kill = files(Path::new(&s));
    let st = json(&["status", &s]);
    // the store holds its rows plus the writer's, untouched by the rehearsal
    assert_eq!(st["rows"].as_u64(), Some(6000 + writes as u64));
    assert_eq!(st["applied"].as_array().unwrap().len(), 1);
    let v = json(&["verify", &s]);
    assert_eq!(v["ok"], true, "{v:#}");
    // the killed rehearsal's branch is left, listed, and removable
    let list = json(&["branch", "list", &s]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");
    ok(&["branch", "delete", &s, "killed"]);
    assert!(!Path::new(&branch).exists());
    assert_eq!(files(Path::new(&s)), after_kill);
}

#[test]
fn a_blocked_rehearsal_exits_3_and_names_the_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_old_space(dir.path(), 1000);
    let migs = dir.path().join("migs");
    std::fs::create_dir(&migs).unwrap();
    std::fs::copy(
        Path::new(&ex("04-reembed-new-model")).join("0001_old.toml"),
        migs.join("0001_old.toml"),
    )
    .unwrap();
    std::fs::write(
        migs.join("0002_purge.toml"),
        "description = \"drop the episodic memories\"\n\n[[steps]]\nop = \"delete_where\"\npredicate = \"kind = 'episodic'\"\n\n\
         [[invariants]]\ncheck = \"row_count\"\nmin = 999\n",
    )
    .unwrap();
    let o = run(&["--json", "rehearse", &s, migs.to_str().unwrap()]);
    assert_eq!(code(&o), 3, "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["outcome"], "blocked");
    let text = r.to_string();
    assert!(text.contains("row_count"), "{r:#}");
    assert_eq!(
        json(&["status", &s])["applied"].as_array().unwrap().len(),
        1
    );
    assert!(json(&["branch", "list", &s]).as_array().unwrap().is_empty());
    // what a killed `branch create` leaves (files, no memlane record): listed, removable
    let half = Path::new(&format!("{s}.branches/half")).join("data");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("x.lance"), b"partial").unwrap();
    let list = json(&["branch", "list", &s]);
    assert_eq!(
        (list[0]["name"].as_str(), list[0]["complete"].as_bool()),
        (Some("half"), Some(false))
    );
    ok(&["branch", "delete", &s, "half"]);
    assert!(json(&["branch", "list", &s]).as_array().unwrap().is_empty());
}
