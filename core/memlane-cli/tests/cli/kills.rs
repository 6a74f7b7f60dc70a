//! The hostile day: SIGKILL during apply, concurrent writers through the public API,
//! and both at once while a re-embed runs.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

#[test]
fn sigkill_during_apply_leaves_a_consistent_resumable_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("big.jsonl");
    write_big_corpus(&data, 6000);
    let migs = dir.path().join("migs");
    std::fs::create_dir(&migs).unwrap();
    std::fs::write(
        migs.join("0001_space.toml"),
        "[[steps]]\nop = \"add_space\"\nspace = \"h256\"\nmodel = \"hash\"\nrevision = \"1\"\ndimension = 256\nnormalized = true\n\n\
         [[steps]]\nop = \"reembed\"\nspace = \"h256\"\nembedder = \"hash256\"\nbatch_size = 64\n\n\
         [[steps]]\nop = \"truncate\"\nfrom = \"h256\"\nspace = \"h64\"\ndimension = 64\n",
    )
    .unwrap();
    std::fs::write(
        migs.join("0002_meta.toml"),
        "[[steps]]\nop = \"add_field\"\nfield = \"importance\"\ntype = \"int32\"\ndefault = 1\n\n\
         [[steps]]\nop = \"cast_field\"\nfield = \"importance\"\nto = \"int64\"\n\n\
         [[steps]]\nop = \"delete_where\"\npredicate = \"kind = 'message'\"\n\n\
         [[steps]]\nop = \"rename_field\"\nfrom = \"source\"\nto = \"module\"\n",
    )
    .unwrap();
    let m = migs.to_str().unwrap();

    // reference: the same migrations without interruption
    let reference = dir.path().join("ref");
    let reference = reference.to_str().unwrap();
    ok(&["init", reference, "--from", data.to_str().unwrap()]);
    let t0 = Instant::now();
    ok(&["apply", reference, m, "--yes"]);
    let clean = t0.elapsed();

    let s = dir.path().join("store");
    let s = s.to_str().unwrap();
    ok(&["init", s, "--from", data.to_str().unwrap()]);
    let mut rng = Lcg(0x5eed);
    let (mut kills, mut restarts) = (0, 0);
    for round in 0..60 {
        if kills >= 12 {
            break;
        }
        if json(&["status", s])["applied"].as_array().unwrap().len() == 2 {
            // done before the kill landed: start over from the imported data (a forward restore)
            ok(&[
                "restore",
                s,
                "--to",
                "1",
                "--reason",
                "chaos test: start over",
            ]);
            restarts += 1;
        }
        let mut child = bin()
            .args(["apply", s, m, "--yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // kill points spread over the first 70% of a clean run
        let at = clean.mul_f64((rng.next() % 700) as f64 / 1000.0);
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        // the store opens; status and history agree with the data
        let st = json(&["status", s]);
        let hist = json(&["history", s]);
        let last = hist.as_array().unwrap().last().unwrap().clone();
        assert_eq!(st["version"], last["version"], "round {round}");
        let entry = &last["entry"];
        assert!(
            entry.is_object(),
            "round {round}: the last commit is memlane's"
        );
        let recorded_rows = entry["report"]["rows_after"]
            .as_u64()
            .or(entry["rows"][1].as_u64());
        if entry["action"] != "checkpoint" {
            assert_eq!(recorded_rows, st["rows"].as_u64(), "round {round}");
        }
        let in_flight = &st["in_flight"];
        if entry["action"] == "step" {
            assert_eq!(
                in_flight["steps_done"].as_u64(),
                Some(entry["report"]["step"].as_u64().unwrap() + 1)
            );
        } else if entry["action"] == "checkpoint" {
            // a re-embed in progress: its checkpoint is in the state
            assert_eq!(in_flight["checkpoint"]["space"], "h256", "round {round}");
        } else {
            assert!(in_flight.is_null(), "round {round}: {in_flight}");
        }
        let v = json(&["verify", s, m]);
        assert!(all_checks_ok(&v), "round {round}: {v}");
    }
    assert!(
        kills >= 10,
        "only {kills} kills landed ({restarts} restarts)"
    );
    ok(&["apply", s, m, "--yes"]);
    let st = json(&["status", s]);
    assert_eq!(st["applied"].as_array().unwrap().len(), 2);
    // the resumed store holds exactly what the uninterrupted run produced
    let (a, b) = (
        sorted_export(s, dir.path(), "a"),
        sorted_export(reference, dir.path(), "b"),
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    let v = json(&["verify", s, m]);
    assert!(all_checks_ok(&v), "{v}");
}

/// Issue 3's chaos test: a gradual re-embed of 50k rows in a child process, SIGKILLed
/// at random points and resumed, while another process keeps adding and updating rows.
#[test]
fn chaos_gradual_reembed_under_concurrent_writes() {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("big.jsonl");
    write_big_corpus(&data, 50_000);
    let s = dir.path().join("store");
    let s = s.to_str().unwrap().to_owned();
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
        "4096",
    ]);
    let migs = dir.path().join("migs");
    std::fs::create_dir(&migs).unwrap();
    // throttled so the run outlasts the kills on any machine; checkpoints every 0.2 s
    std::fs::write(
        migs.join("0001_new_model.toml"),
        "[[steps]]\nop = \"add_space\"\nspace = \"new\"\nmodel = \"hash\"\nrevision = \"3\"\ndimension = 64\nnormalized = true\n\n\
         [[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"hash64v3\"\nbatch_size = 256\nthrottle = 2000\ncheckpoint_seconds = 0.2\n",
    )
    .unwrap();
    let m = migs.to_str().unwrap().to_owned();

    // expected content per id: the corpus, then whatever the writer writes
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for l in std::fs::read_to_string(&data).unwrap().lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        expected.insert(
            v["id"].as_str().unwrap().to_owned(),
            v["content"].as_str().unwrap().to_owned(),
        );
    }
    let ids: Vec<String> = expected.keys().cloned().collect();
    let expected = Arc::new(Mutex::new(expected));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (expected, stop, s, dir) = (
            expected.clone(),
            stop.clone(),
            s.clone(),
            dir.path().to_owned(),
        );
        std::thread::spawn(move || {
            let mut rng = Lcg(7);
            let mut k = 0usize;
            let mut writes = 0;
            while !stop.load(Ordering::SeqCst) {
                k += 1;
                // 10 new memories
                let mut add = String::new();
                let mut added = Vec::new();
                for j in 0..10 {
                    let id = format!("w{k}-{j}");
                    let content = format!(
                        "memory {j} written by the agent in round {k} about json and paths"
                    );
                    add.push_str(
                        &serde_json::json!({"id": id, "content": content, "kind": "episodic"})
                            .to_string(),
                    );
                    add.push('\n');
                    added.push((id, content));
                }
                let f = dir.join(format!("add{k}.jsonl"));
                std::fs::write(&f, add).unwrap();
                if run(&["add", &s, f.to_str().unwrap(), "--embedder", "old=hash:32"])
                    .status
                    .success()
                {
                    expected.lock().unwrap().extend(added);
                    writes += 1;
                }
                // 10 rewritten memories
                let mut up = String::new();
                let mut changed = Vec::new();
                for _ in 0..10 {
                    let id = &ids[(rng.next() as usize) % ids.len()];
                    let content = format!("rewritten in round {k}: {id}");
                    up.push_str(
                        &serde_json::json!({"id": id, "content": content, "kind": "semantic"})
                            .to_string(),
                    );
                    up.push('\n');
                    changed.push((id.clone(), content));
                }
                let f = dir.join(format!("up{k}.jsonl"));
                std::fs::write(&f, up).unwrap();
                if run(&[
                    "upsert",
                    &s,
                    f.to_str().unwrap(),
                    "--embedder",
                    "old=hash:32",
                ])
                .status
                .success()
                {
                    expected.lock().unwrap().extend(changed);
                    writes += 1;
                }
            }
            writes
        })
    };

    let mut rng = Lcg(0xc4a05);
    let mut kills = 0;
    for round in 0..40 {
        if kills >= 12 {
            break;
        }
        let mut child = bin()
            .args(["apply", &s, &m, "--yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + rng.next() % 1500));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        let st = json(&["status", &s]);
        assert!(st["version"].as_u64().unwrap() > 1, "round {round}");
        let v: Value = serde_json::from_slice(&run(&["verify", &s, &m, "--json"]).stdout).unwrap();
        assert!(all_checks_ok(&v), "round {round}: {v}");
    }
    assert!(kills >= 10, "only {kills} kills landed");
    // let the writer go on a little while the migration finishes, then stop it
    let mut finisher = bin().args(["apply", &s, &m, "--yes"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(finisher.wait().unwrap().success());
    assert!(writes > 0, "the writer wrote nothing");
    // rows written after the completing commit are caught up by a final apply run
    ok(&["apply", &s, &m, "--yes"]);

    let st = json(&["status", &s]);
    assert_eq!(st["active_space"], "new");
    assert!(st["in_flight"].is_null());
    let expected = expected.lock().unwrap().clone();
    let rows = sorted_export(&s, dir.path(), "final");
    let got: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let want: Vec<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(got, want, "the id set is exactly the expected one");
    let new = memlane_store::HashEmbedder::new(64, 3);
    let old = memlane_store::HashEmbedder::new(32, 0);
    use memlane_store::Embedder;
    for r in &rows {
        let id = r["id"].as_str().unwrap();
        let content = r["content"].as_str().unwrap();
        assert_eq!(content, expected[id], "{id}");
        let as_vec = |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect::<Vec<f32>>()
        };
        let (vn, vo) = (as_vec(&r["vec_new"]), as_vec(&r["vec_old"]));
        let (en, eo) = (
            new.embed(&[content]).unwrap(),
            old.embed(&[content]).unwrap(),
        );
        assert!(
            vn.iter().zip(&en).all(|(a, b)| (a - b).abs() < 1e-6),
            "{id}: new vector is not the embedding of its content"
        );
        assert!(
            vo.iter().zip(&eo).all(|(a, b)| (a - b).abs() < 1e-6),
            "{id}: old vector changed"
        );
    }
    let v = json(&["verify", &s, &m]);
    assert!(all_checks_ok(&v), "{v}");
}

/// Issue 14: a re-embed SIGKILLed every few seconds while a second process keeps
/// adding, upserting and deleting through the CLI. No write may fail, the re-embed must
/// complete, no text may be embedded again beyond the batch in flight at each kill (and
/// the compatibility sample, repeated while its commit has not landed), and `verify`
/// must pass on the store memlane produced.
#[test]
#[allow(clippy::print_stderr)] // the figures of the closing note
fn writers_never_fail_and_the_reembed_converges_under_kills() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("corpus.jsonl");
    write_big_corpus(&data, 3000);
    let s = dir.path().join("store");
    let s = s.to_str().unwrap().to_owned();
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
        "256",
    ]);
    let log = dir.path().join("embedded.log");
    let embedder = counting_embedder(dir.path(), &log, 48);
    let (batch, sample) = (32usize, 40usize);
    let migs = dir.path().join("migs");
    std::fs::create_dir(&migs).unwrap();
    std::fs::write(
        migs.join("0001_new_model.toml"),
        format!(
            "[[steps]]\nop = \"add_space\"\nspace = \"new\"\nmodel = \"trigram\"\nrevision = \"1\"\ndimension = 48\nnormalized = true\n\n\
             [[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"tri\"\nbatch_size = {batch}\nsample = {sample}\ncheckpoint_seconds = 5\n"
        ),
    )
    .unwrap();
    let m = migs.to_str().unwrap().to_owned();
    let emb = format!("tri={embedder}");
    // the writer embeds into both spaces (the new one becomes active on completion),
    // with the same model logging elsewhere
    let wdir = dir.path().join("writer");
    std::fs::create_dir(&wdir).unwrap();
    let wemb = format!(
        "new={}",
        counting_embedder(&wdir, &wdir.join("embedded.log"), 48)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let writes = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, failed, writes, s, dir, wemb) = (
            stop.clone(),
            failed.clone(),
            writes.clone(),
            s.clone(),
            dir.path().to_owned(),
            wemb.clone(),
        );
        std::thread::spawn(move || {
            // write once the new space exists (the first apply adds it): from then on
            // every write supplies both spaces' vectors, as an agent's writer would
            while !json(&["status", &s])["spaces"]
                .to_string()
                .contains("\"new\"")
            {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let mut k = 0usize;
            while !stop.load(Ordering::SeqCst) {
                k += 1;
                let f = dir.join(format!("w{k}.jsonl"));
                let cmd: Vec<String> = match k % 3 {
                    0 => {
                        std::fs::write(
                            &f,
                            format!(
                                "{}\n",
                                serde_json::json!({"id": format!("add-{k}"), "content": format!("note {k} from the agent"), "kind": "episodic"})
                            ),
                        )
                        .unwrap();
                        vec!["add".into(), s.clone(), f.to_str().unwrap().into()]
                    }
                    1 => {
                        std::fs::write(
                            &f,
                            format!(
                                "{}\n",
                                serde_json::json!({"id": format!("add-{}", k - 1), "content": format!("note rewritten in round {k}"), "kind": "semantic"})
                            ),
                        )
                        .unwrap();
                        vec!["upsert".into(), s.clone(), f.to_str().unwrap().into()]
                    }
                    _ => vec![
                        "delete".into(),
                        s.clone(),
                        "--where".into(),
                        format!("id = 'add-{}'", k - 2),
                    ],
                };
                let mut args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                if args[0] != "delete" {
                    args.extend(["--embedder", "old=hash:32", "--embedder", &wemb]);
                }
                let o = run(&args);
                if o.status.success() {
                    writes.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed
                        .lock()
                        .unwrap()
                        .push(format!("{args:?}: {}", String::from_utf8_lossy(&o.stderr)));
                }
            }
        })
    };

    let mut rng = Lcg(0x5eed);
    let mut kills = 0;
    let mut remaining = Vec::new();
    for _ in 0..60 {
        let mut child = bin()
            .args(["apply", &s, &m, "--yes", "--embedder", &emb])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(2000 + rng.next() % 3000));
        let done = child.try_wait().unwrap().is_some();
        if !done {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        let st = json(&["status", &s]);
        if st["in_flight"].is_null() && st["active_space"] == "new" {
            break;
        }
        let cp = &st["in_flight"]["checkpoint"];
        if let Some(r) = cp["remaining"].as_u64() {
            remaining.push(r);
        }
    }
    let st = json(&["status", &s]);
    assert!(
        st["in_flight"].is_null() && st["active_space"] == "new",
        "the re-embed did not complete after {kills} kills (remaining per run: {remaining:?})"
    );
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let failed = failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "writes failed: {failed:#?}");
    assert!(writes.load(Ordering::SeqCst) > 5, "the writer hardly wrote");
    // rows the writer changed after completion: caught up by a last apply
    ok(&["apply", &s, &m, "--yes", "--embedder", &emb]);

    // every text embedded at most once beyond what the kills interrupted
    let canaries: std::collections::HashSet<&str> =
        memlane_store::CANARIES.iter().copied().collect();
    let mut per_text: HashMap<String, usize> = HashMap::new();
    for l in std::fs::read_to_string(&log).unwrap().lines() {
        let t: String = serde_json::from_str(l).unwrap();
        if !canaries.contains(t.as_str()) {
            *per_text.entry(t).or_default() += 1;
        }
    }
    let total: usize = per_text.values().sum();
    let distinct = per_text.len();
    let allowance = (kills + 1) * (batch + sample);
    eprintln!(
        "kills {kills}, writes {} (0 failed), embedded {total} texts for {distinct} distinct (allowance {allowance})",
        writes.load(Ordering::SeqCst)
    );
    assert!(
        total <= distinct + allowance,
        "{total} texts embedded for {distinct} distinct ones after {kills} kills"
    );
    let v = json(&["verify", &s, &m]);
    assert!(all_checks_ok(&v), "{v}");
}
