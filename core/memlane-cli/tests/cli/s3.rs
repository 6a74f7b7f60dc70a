//! The CLI on a store in S3 (moto's server on 127.0.0.1): `--storage-option` and
//! `MEMLANE_STORAGE_OPTIONS`, a re-embed SIGKILLed and resumed, two migrators, verify
//! of a flipped byte, restore and `unlock --force`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memlane_tests::S3Server;
use serde_json::Value;

use crate::common::*;

/// The binary with the server's options in the environment (as a CI job would set them).
fn on(s3: &S3Server) -> Command {
    let mut c = bin();
    let opts: Vec<String> = s3
        .options()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    c.env("MEMLANE_STORAGE_OPTIONS", opts.join(","));
    c
}

fn ok_on(s3: &S3Server, args: &[&str]) -> String {
    let o = on(s3).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "memlane {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json_on(s3: &S3Server, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok_on(s3, &a)).unwrap()
}

const REEMBED: &str = "[[steps]]\nop = \"add_space\"\nspace = \"h64\"\nmodel = \"hash\"\nrevision = \"1\"\ndimension = 64\nnormalized = true\n\n\
    [[steps]]\nop = \"reembed\"\nspace = \"h64\"\nembedder = \"h64\"\nbatch_size = 100\nthrottle = 800.0\n";

/// A moto server, a temp dir with `rows` generated records (`big.jsonl`) and a
/// migrations folder holding `migration` as `0001_h64.toml`.
fn setup(
    bucket: &str,
    rows: usize,
    migration: &str,
) -> (S3Server, tempfile::TempDir, PathBuf, PathBuf) {
    let s3 = S3Server::start(bucket);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("big.jsonl");
    write_big_corpus(&data, rows);
    let migs = dir.path().join("migs");
    std::fs::create_dir(&migs).unwrap();
    std::fs::write(migs.join("0001_h64.toml"), migration).unwrap();
    (s3, dir, migs, data)
}

#[test]
fn a_reembed_on_s3_killed_and_resumed_matches_a_clean_run() {
    let (s3, dir, migs, data) = setup("memlane-cli", 2400, REEMBED);
    let (m, d) = (migs.to_str().unwrap(), data.to_str().unwrap());
    let emb = "h64=hash:64:3";

    // the clean run, on local disk
    let reference = dir.path().join("ref");
    let reference = reference.to_str().unwrap();
    ok(&["init", reference, "--from", d, "--rows-per-fragment", "300"]);
    ok(&["apply", reference, m, "--yes", "--embedder", emb]);

    // on S3: options given as flags here, from the environment below
    let s = s3.uri("store");
    let mut init = vec!["init", &s, "--from", d, "--rows-per-fragment", "300"];
    let flags = s3.cli_args();
    init.extend(flags.iter().map(String::as_str));
    let o = bin().args(&init).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let imported: Vec<String> = s3
        .list("store/data/")
        .into_iter()
        .filter(|k| k.ends_with(".lance"))
        .collect();

    // killed once a checkpoint is committed (polled, not timed)
    let mut child = on(&s3)
        .args(["apply", &s, m, "--yes", "--embedder", emb])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let st = json_on(&s3, &["status", &s]);
        if st["in_flight"]["checkpoint"]["embedded"]
            .as_u64()
            .unwrap_or(0)
            > 0
        {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "apply ended before a checkpoint"
        );
        assert!(Instant::now() < deadline, "no checkpoint: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // the store opens at its last commit; a second migrator waits for no one (the dead
    // holder's lock is on this host, so it is taken over) and resumes
    let st = json_on(&s3, &["status", &s]);
    assert_eq!(st["in_flight"]["checkpoint"]["space"], "h64", "{st}");
    ok_on(&s3, &["apply", &s, m, "--yes", "--embedder", emb]);
    let st = json_on(&s3, &["status", &s]);
    assert_eq!(st["active_space"], "h64");
    assert!(st["lock"].is_null(), "{st}");

    // the same rows and vectors as the clean run
    let a = {
        let p = dir.path().join("a.jsonl");
        ok_on(&s3, &["export", &s, "-o", p.to_str().unwrap()]);
        let mut rows: Vec<Value> = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        rows
    };
    let b = sorted_export(reference, dir.path(), "b");
    assert_eq!(a.len(), 2400);
    assert_eq!(a, b);
    let v = json_on(&s3, &["verify", &s, m]);
    assert!(all_checks_ok(&v), "{v}");

    // restore to the import, verified; then a byte flipped in a data object is named
    ok_on(&s3, &["restore", &s, "--to", "1", "--reason", "start over"]);
    let v = json_on(&s3, &["verify", &s]);
    assert!(all_checks_ok(&v), "{v}");
    let key = imported[imported.len() / 2].clone();
    let mut bytes = s3.get(&key);
    let mid = bytes.len() / 3;
    bytes[mid] ^= 1;
    s3.put(&key, &bytes);
    let o = on(&s3).args(["verify", &s]).output().unwrap();
    assert_eq!(code(&o), 3, "{}", String::from_utf8_lossy(&o.stdout));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(key.rsplit('/').next().unwrap()), "{out}");
}

#[test]
fn two_cli_migrators_on_s3_one_proceeds_the_other_names_the_holder() {
    let (s3, _dir, migs, data) = setup("memlane-cli-lock", 2400, REEMBED);
    let (m, d) = (migs.to_str().unwrap(), data.to_str().unwrap());
    let s = s3.uri("store");
    ok_on(&s3, &["init", &s, "--from", d]);
    let emb = "h64=hash:64:3";
    let mut first = on(&s3)
        .args(["apply", &s, m, "--yes", "--embedder", emb])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // wait until the first holds the lock
    let deadline = Instant::now() + Duration::from_secs(120);
    while json_on(&s3, &["status", &s])["lock"].is_null() {
        assert!(
            first.try_wait().unwrap().is_none(),
            "first apply ended early"
        );
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = on(&s3)
        .args(["apply", &s, m, "--yes", "--embedder", emb])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(code(&o), 0);
    assert!(err.contains("locked by memlane apply"), "{err}");
    assert!(first.wait().unwrap().success());
    let st = json_on(&s3, &["status", &s]);
    assert_eq!(st["applied"].as_array().unwrap().len(), 1);
    assert!(st["lock"].is_null());

    // unlock --force on S3 removes a lock left by a holder elsewhere
    let lock = serde_json::json!({
        "holder": "memlane apply", "host": "runner-7", "pid": 42, "token": "t",
        "since": "2026-01-01T00:00:00Z", "heartbeat": "2026-01-01T00:00:00Z",
        "expires": "2999-01-01T00:00:00Z"
    });
    s3.put("store/_memlane/lock.json", lock.to_string().as_bytes());
    let o = on(&s3)
        .args(["apply", &s, m, "--yes", "--embedder", emb])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("runner-7"));
    let out = ok_on(&s3, &["unlock", &s, "--force"]);
    assert!(out.contains("runner-7"), "{out}");
    assert!(json_on(&s3, &["status", &s])["lock"].is_null());
}

/// One write through the CLI (a process of its own) on the S3 store: `add`/`upsert` of
/// one record embedded into `h64`, or `delete` by id. Returns the change it made to the
/// expected state (`Some(content)` written, `None` deleted) when the write succeeded.
fn write_once(
    s3: &S3Server,
    store: &str,
    dir: &std::path::Path,
    k: usize,
    ids: &[String],
) -> Result<(String, Option<String>), String> {
    let f = dir.join(format!("w{k}.jsonl"));
    let (verb, id, content) = match k % 3 {
        0 => (
            "add",
            format!("w-{k}"),
            Some(format!("note {k} from the agent")),
        ),
        1 => (
            "upsert",
            ids[(k * 37) % ids.len()].clone(),
            Some(format!("memory rewritten by the agent in round {k}")),
        ),
        _ => ("delete", format!("w-{}", k - 2), None),
    };
    let mut args: Vec<String> = vec![verb.into(), store.into()];
    match &content {
        Some(c) => {
            let rec = serde_json::json!({"id": id, "content": c, "kind": "episodic"});
            std::fs::write(&f, format!("{rec}\n")).unwrap();
            args.extend([
                f.to_str().unwrap().into(),
                "--embedder".into(),
                "h64=hash:64:3".into(),
            ]);
        }
        None => args.extend(["--where".into(), format!("id = '{id}'")]),
    }
    let o = on(s3).args(&args).output().unwrap();
    if o.status.success() {
        Ok((id, content))
    } else {
        Err(format!("{args:?}: {}", String::from_utf8_lossy(&o.stderr)))
    }
}

/// The hostile day on object storage: a second process writes through the public API
/// (add, upsert of rows the backfill has or has not reached, delete) while a re-embed
/// runs on S3, is SIGKILLed once a checkpoint is committed, and is resumed. No write
/// fails; at the end the id set is exactly what the writes left, every live row's new
/// vector is the embedding of its current content, and verify passes.
#[test]
#[allow(clippy::print_stderr)] // what the run did, for the log
fn writers_on_s3_never_fail_while_a_reembed_is_killed_and_resumed() {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    // slower than the other tests' run, so the writer and the kill land inside it
    let slower = REEMBED.replace("throttle = 800.0", "throttle = 300.0");
    let (s3, dir, migs, data) = setup("memlane-cli-writer", 1800, &slower);
    let (m, d) = (migs.to_str().unwrap(), data.to_str().unwrap());
    let s = s3.uri("store");
    ok_on(
        &s3,
        &["init", &s, "--from", d, "--rows-per-fragment", "300"],
    );
    let mut expected: BTreeMap<String, String> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let ids: Vec<String> = expected.keys().cloned().collect();
    let emb = "h64=hash:64:3";

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(
        Vec::<Result<(String, Option<String>), String>>::new(),
    ));
    let s3 = Arc::new(s3);
    let writer = {
        let (stop, log, s3, s, wdir, ids) = (
            stop.clone(),
            log.clone(),
            s3.clone(),
            s.clone(),
            dir.path().to_owned(),
            ids.clone(),
        );
        std::thread::spawn(move || {
            // from the moment the new space exists, every write embeds into it too
            while !json_on(&s3, &["status", &s])["spaces"]
                .to_string()
                .contains("\"h64\"")
            {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let mut k = 0;
            while !stop.load(Ordering::SeqCst) {
                k += 1;
                let r = write_once(&s3, &s, &wdir, k, &ids);
                log.lock().unwrap().push(r);
            }
        })
    };

    // the first apply is SIGKILLed once a checkpoint is committed (polled, not timed)
    let mut child = on(&s3)
        .args(["apply", &s, m, "--yes", "--embedder", emb])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut killed = false;
    loop {
        let st = json_on(&s3, &["status", &s]);
        if st["in_flight"]["checkpoint"]["embedded"]
            .as_u64()
            .unwrap_or(0)
            > 0
        {
            killed = child.try_wait().unwrap().is_none();
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
    if killed {
        child.kill().unwrap(); // SIGKILL
    }
    child.wait().unwrap();
    eprintln!("first apply SIGKILLed mid-backfill: {killed}");
    // the writer keeps writing through the resumed run, then stops; a last apply catches
    // up what it changed after the switch
    ok_on(&s3, &["apply", &s, m, "--yes", "--embedder", emb]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while log.lock().unwrap().len() < 12 {
        assert!(Instant::now() < deadline, "the writer hardly wrote");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    ok_on(&s3, &["apply", &s, m, "--yes", "--embedder", emb]);

    let results = log.lock().unwrap().clone();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "writes failed: {failed:#?}");
    eprintln!(
        "{} writes by the second process, none failed",
        results.len()
    );
    for (id, content) in results.into_iter().map(Result::unwrap) {
        match content {
            Some(c) => expected.insert(id, c),
            None => expected.remove(&id),
        };
    }
    let st = json_on(&s3, &["status", &s]);
    assert_eq!(st["active_space"], "h64", "{st}");
    assert!(st["in_flight"].is_null() && st["lock"].is_null(), "{st}");

    // the id set is exact; every vector is the embedding of the row's current content
    let p = dir.path().join("out.jsonl");
    ok_on(&s3, &["export", &s, "-o", p.to_str().unwrap()]);
    let model = memlane_store::HashEmbedder::new(64, 3);
    let mut seen = BTreeMap::new();
    for l in std::fs::read_to_string(&p).unwrap().lines() {
        let r: Value = serde_json::from_str(l).unwrap();
        let id = r["id"].as_str().unwrap().to_owned();
        let content = r["content"].as_str().unwrap().to_owned();
        let col = r
            .as_object()
            .unwrap()
            .keys()
            .find(|k| k.starts_with("vec_") && k.contains("h64"))
            .unwrap_or_else(|| panic!("no h64 vector column in {r}"));
        let got: Vec<f64> = r[col]
            .as_array()
            .unwrap_or_else(|| panic!("{id} has no h64 vector"))
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let want = memlane_store::Embedder::embed(&model, &[content.as_str()]).unwrap();
        assert_eq!(got.len(), want.len(), "{id}");
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| (a - f64::from(*b)).abs() < 1e-5),
            "{id}: its vector is not the embedding of its content {content:?}"
        );
        seen.insert(id, content);
    }
    assert_eq!(seen, expected);
    let v = json_on(&s3, &["verify", &s, m]);
    assert!(all_checks_ok(&v), "{v}");
}

#[test]
fn a_bundle_made_from_s3_restores_to_disk_and_back_to_s3() {
    let (s3, dir, migs, data) = setup("bundles", 1500, REEMBED);
    let uri = s3.uri("agent");
    ok_on(&s3, &["init", &uri, "--from", data.to_str().unwrap()]);
    ok_on(
        &s3,
        &[
            "apply",
            &uri,
            migs.to_str().unwrap(),
            "--yes",
            "--embedder",
            "h64=hash:64",
        ],
    );
    let key = dir.path().join("key.hex");
    std::fs::write(&key, ok_on(&s3, &["bundle-key"])).unwrap();
    let b = dir.path().join("agent.mlb");
    let k = key.to_str().unwrap();
    ok_on(
        &s3,
        &["bundle", &uri, "-o", b.to_str().unwrap(), "--key-file", k],
    );
    // S3 -> disk: a verified store with the same rows and history
    let local = dir.path().join("local");
    let l = local.to_str().unwrap();
    ok_on(&s3, &["unbundle", b.to_str().unwrap(), l, "--key-file", k]);
    let v = json_on(&s3, &["verify", l]);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(json_on(&s3, &["status", l])["rows"].as_u64(), Some(1500));
    // disk -> S3 again: byte for byte the objects the first store had
    let b2 = dir.path().join("local.mlb");
    ok_on(&s3, &["bundle", l, "-o", b2.to_str().unwrap()]);
    let again = s3.uri("again");
    ok_on(&s3, &["unbundle", b2.to_str().unwrap(), &again]);
    let v = json_on(&s3, &["verify", &again]);
    assert_eq!(v["ok"], true, "{v:#}");
    let objects = |prefix: &str| -> Vec<(String, Vec<u8>)> {
        s3.list(prefix)
            .into_iter()
            .filter(|k| !k.contains("_memlane/lock.json"))
            .map(|k| (k[prefix.len()..].to_owned(), s3.get(&k)))
            .collect()
    };
    assert_eq!(objects("agent/"), objects("again/"));
    // a bundle must not land on an existing store
    let o = on(&s3)
        .args(["unbundle", b2.to_str().unwrap(), &again])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_rehearsal_on_s3_leaves_every_object_of_the_store_unchanged_and_promotes() {
    let (s3, _dir, migs, data) = setup("branches", 1200, REEMBED);
    let uri = s3.uri("agent");
    ok_on(&s3, &["init", &uri, "--from", data.to_str().unwrap()]);
    let objects = |prefix: &str| -> Vec<(String, Vec<u8>)> {
        s3.list(prefix)
            .into_iter()
            .filter(|k| !k.contains("_memlane/lock.json"))
            .map(|k| {
                let v = s3.get(&k);
                (k, v)
            })
            .collect()
    };
    let before = objects("agent/");
    let r = json_on(
        &s3,
        &[
            "rehearse",
            &uri,
            migs.to_str().unwrap(),
            "--keep",
            "--name",
            "r1",
            "--embedder",
            "h64=hash:64",
        ],
    );
    assert_eq!(r["outcome"], "pass", "{r:#}");
    assert_eq!(
        r["report"]["migrations"][0]["steps"][1]["rows_written"].as_u64(),
        Some(1200)
    );
    // the branch's objects live beside the store's, under agent.branches/r1/
    assert!(!s3.list("agent.branches/r1/").is_empty());
    assert_eq!(
        objects("agent/"),
        before,
        "a rehearsal changed the store's objects"
    );
    let b = json_on(&s3, &["branch", "list", &uri]);
    assert_eq!(b[0]["name"], "r1", "{b:#}");
    let v = json_on(&s3, &["verify", b[0]["uri"].as_str().unwrap()]);
    assert_eq!(v["ok"], true, "{v:#}");
    ok_on(&s3, &["branch", "delete", &uri, "r1"]);
    assert!(s3.list("agent.branches/r1/").is_empty());
    assert_eq!(objects("agent/"), before);

    // rehearsed again and promoted: the branch's objects copied into the store's prefix
    ok_on(
        &s3,
        &[
            "rehearse",
            &uri,
            migs.to_str().unwrap(),
            "--keep",
            "--name",
            "r2",
            "--embedder",
            "h64=hash:64",
        ],
    );
    let p = json_on(&s3, &["branch", "promote", &uri, "r2"]);
    assert!(p["files_copied"].as_u64().unwrap() > 0, "{p:#}");
    assert!(s3.list("agent.branches/r2/").is_empty());
    let v = json_on(&s3, &["verify", &uri]);
    assert_eq!(v["ok"], true, "{v:#}");
    let st = json_on(&s3, &["status", &uri]);
    assert_eq!(st["applied"].as_array().map(Vec::len), Some(1), "{st:#}");
}
