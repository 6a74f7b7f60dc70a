//! The `memlane` binary end to end: every command on the example folders, exit codes,
//! JSON output, and SIGKILL during apply.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_memlane"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn ex(name: &str) -> String {
    repo()
        .join("migrations-examples")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "memlane {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(&a)).unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn every_command_on_the_examples() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let s = s.to_str().unwrap();
    let corpus = ex("data/corpus.jsonl");
    let out = ok(&["init", s, "--from", &corpus]);
    assert!(out.contains("392 rows"), "{out}");
    assert_eq!(code(&run(&["init", s])), 1, "a second init is refused");

    let lint = ok(&["lint", &ex("02-metadata-evolution"), "--store", s]);
    assert!(lint.contains("0 error(s)"), "{lint}");
    let plan = json(&["plan", s, &ex("01-agent-memory-bootstrap")]);
    assert_eq!(plan["embedders"], serde_json::json!(["hash384"]));
    // without --yes and without a terminal, apply refuses (usage)
    assert_eq!(
        code(&run(&["apply", s, &ex("01-agent-memory-bootstrap")])),
        2
    );
    let dry = json(&["apply", s, &ex("01-agent-memory-bootstrap"), "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(json(&["status", s])["version"], 1);
    let rep = json(&["apply", s, &ex("01-agent-memory-bootstrap"), "--yes"]);
    assert_eq!(rep["migrations"][0]["outcome"], "applied");
    let st = json(&["status", s, &ex("01-agent-memory-bootstrap")]);
    assert_eq!(
        (st["active_space"].as_str(), st["pending"].as_u64()),
        (Some("hash384"), Some(0))
    );

    let hist = json(&["history", s]);
    // create, add_space, one backfill checkpoint (one fragment), the completing commit
    let actions: Vec<&str> = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["entry"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["create", "step", "checkpoint", "migration"]);
    assert_eq!(hist[3]["tags"][0], "migration-0001-spaces");
    let ver = json(&["verify", s, &ex("01-agent-memory-bootstrap")]);
    assert!(
        ver["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{ver}"
    );

    let hits = json(&[
        "search",
        s,
        "Parse a query given as a string argument.",
        "--embedder",
        "hash:384",
        "-k",
        "3",
    ]);
    assert_eq!(hits["hits"][0]["id"], "urllib.parse.parse_qs");
    assert_eq!(hits["coverage"]["rows_with_vector"], 392);

    // export and add round trip, wrong dimension refused with a clear message
    let out = dir.path().join("all.arrow");
    ok(&["export", s, "-o", out.to_str().unwrap()]);
    let j = dir.path().join("all.jsonl");
    ok(&["export", s, "-o", j.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&j).unwrap().lines().count(), 392);
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\":\"n1\",\"content\":\"x\",\"hash384\":[0.1,0.2]}\n",
    )
    .unwrap();
    let o = run(&["add", s, bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 1);
    assert!(
        err.contains("n1") && err.contains("hash384") && err.contains("384") && err.contains('2'),
        "{err}"
    );
    let good = dir.path().join("good.jsonl");
    std::fs::write(
        &good,
        "{\"id\":\"n1\",\"content\":\"a new memory about json parsing\"}\n",
    )
    .unwrap();
    let r = json(&[
        "add",
        s,
        good.to_str().unwrap(),
        "--embedder",
        "hash384=hash:384",
    ]);
    assert_eq!(r["rows_after"], 393);

    ok(&["tag", s, "reviewed"]);
    assert!(ok(&["tag", s]).contains("reviewed"));
    let v = json(&[
        "restore",
        s,
        "--to",
        "migration-0001-spaces",
        "--reason",
        "drop the extra memory",
    ]);
    assert!(v["version"].as_u64().unwrap() > 4);
    assert_eq!(json(&["status", s])["rows"], 392);
    assert_eq!(
        code(&run(&["restore", s, "--to", "999", "--reason", "x"])),
        1
    );

    // an edited applied migration: plan and apply exit 3 naming the file; repair accepts it
    let migs = dir.path().join("migs");
    std::fs::create_dir(&migs).unwrap();
    let f = migs.join("0001_spaces.toml");
    std::fs::copy(
        Path::new(&ex("01-agent-memory-bootstrap")).join("0001_spaces.toml"),
        &f,
    )
    .unwrap();
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.replace("mostly = 0.99", "mostly = 0.98")).unwrap();
    let m = migs.to_str().unwrap();
    for cmd in [vec!["plan", s, m], vec!["apply", s, m, "--yes"]] {
        let o = run(&cmd);
        assert_eq!(code(&o), 3, "{cmd:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("0001_spaces.toml"));
    }
    assert_eq!(code(&run(&["verify", s, m])), 3);
    let rep = json(&[
        "repair",
        s,
        m,
        "--accept",
        "1",
        "--reason",
        "looser content check, reviewed",
    ]);
    assert_eq!(rep["accepted"], 1, "{rep}");
    ok(&["plan", s, m]);

    // lint error: exit 3, nothing applied
    let lossy = dir.path().join("lossy");
    std::fs::create_dir(&lossy).unwrap();
    std::fs::write(
        lossy.join("0001_x.toml"),
        "[[steps]]\nop = \"cast_field\"\nfield = \"content\"\nto = \"int64\"\n",
    )
    .unwrap();
    let o = run(&["lint", lossy.to_str().unwrap()]);
    assert_eq!(code(&o), 3);
    assert!(String::from_utf8_lossy(&o.stdout).contains("0001_x.toml:1: error[lossy-cast]"));
    // usage errors exit 2
    assert_eq!(code(&run(&["apply"])), 2);
    assert_eq!(code(&run(&["unlock", s])), 2);
    assert!(ok(&["unlock", s, "--force"]).contains("no lock"));
    assert!(json(&["unlock", s, "--force"])["removed"].is_null());
}

#[test]
fn a_second_apply_is_refused_while_one_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let s = s.to_str().unwrap();
    ok(&["init", s, "--from", &ex("data/corpus.jsonl")]);
    let guard = memlane_store::lock::acquire(s, "ci job 41", Duration::from_secs(60)).unwrap();
    let o = run(&["apply", s, &ex("02-metadata-evolution"), "--yes"]);
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("ci job 41") && err.contains("unlock --force"),
        "{err}"
    );
    assert!(ok(&["status", s]).contains("LOCKED"));
    drop(guard);
    ok(&["apply", s, &ex("02-metadata-evolution"), "--yes"]);
}

/// A tiny deterministic generator (no timing in assertions: only where kills land).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn write_big_corpus(path: &Path, n: usize) {
    let base: Vec<Value> = std::fs::read_to_string(ex("data/corpus.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut out = String::new();
    for i in 0..n {
        let mut r = base[i % base.len()].clone();
        r["id"] = format!("{}#{i}", r["id"].as_str().unwrap()).into();
        r["content"] = format!("{} (copy {i})", r["content"].as_str().unwrap()).into();
        out.push_str(&r.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

fn sorted_export(store: &str, dir: &Path, name: &str) -> Vec<Value> {
    let p = dir.join(format!("{name}.jsonl"));
    ok(&["export", store, "-o", p.to_str().unwrap()]);
    let mut rows: Vec<Value> = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    rows
}

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
        assert!(
            v["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["ok"] == true),
            "round {round}: {v}"
        );
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
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{v}"
    );
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
        assert!(
            v["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["ok"] == true),
            "round {round}: {v}"
        );
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
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{v}"
    );
}

#[test]
fn compat_gates_fingerprints_and_adapter_search() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let s = s.to_str().unwrap().to_owned();
    ok(&[
        "init",
        &s,
        "--from",
        &ex("data/corpus.jsonl"),
        "--space",
        "old:32:cosine:normalized",
        "--embedder",
        "old=hash:32",
    ]);
    // another model of the same dimension behind `old`: refused, nothing written
    let rec = dir.path().join("one.jsonl");
    std::fs::write(&rec, "{\"id\": \"x1\", \"content\": \"a late memory\"}\n").unwrap();
    let o = run(&[
        "add",
        &s,
        rec.to_str().unwrap(),
        "--embedder",
        "old=hash:32:9",
    ]);
    assert_ne!(code(&o), 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("model drift"), "{err}");
    ok(&[
        "add",
        &s,
        rec.to_str().unwrap(),
        "--embedder",
        "old=hash:32",
    ]);

    let migs = dir.path().join("migs");
    std::fs::create_dir(&migs).unwrap();
    std::fs::write(
        migs.join("0001_new_model.toml"),
        "[[steps]]\nop = \"add_space\"\nspace = \"new\"\nmodel = \"hash\"\nrevision = \"7\"\ndimension = 96\nnormalized = true\n\n\
         [[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"e\"\n\n\
         [gates]\n\"recall@10\" = { block_below = 0.05, review_below = 1.5 }\n",
    )
    .unwrap();
    let m = migs.to_str().unwrap().to_owned();
    // review without approval: exit 3, the JSON carries the metrics and verdicts
    let o = run(&[
        "apply",
        &s,
        &m,
        "--yes",
        "--embedder",
        "e=hash:96:7",
        "--json",
    ]);
    assert_eq!(code(&o), 3);
    let check: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(check["verdict"], "review");
    assert_eq!(check["gates"][0]["metric"], "recall@10");
    assert!(check["metrics"]["recall@10"].as_f64().unwrap() > 0.05);
    // approved: applied, recorded
    let rep = json(&[
        "apply",
        &s,
        &m,
        "--yes",
        "--embedder",
        "e=hash:96:7",
        "--approve",
        "stand-in models, reviewed",
    ]);
    // add_space committed in the refused run; this run resumes at the re-embed
    let step = &rep["migrations"][0]["steps"][0];
    assert_eq!(step["op"], "reembed");
    assert_eq!(step["compat"]["verdict"], "review");
    assert_eq!(
        step["compat"]["approval"]["reason"],
        "stand-in models, reviewed"
    );
    let hist = ok(&["history", &s]);
    assert!(hist.contains("review approved by"), "{hist}");

    // compat on the rows with both vectors, with shuffled baselines
    let c = json(&["compat", &s, "--from", "old", "--to", "new"]);
    let mm = &c["metrics"];
    assert_eq!(c["n"], 393);
    assert!(
        mm["overlap@10"].as_f64().unwrap() > 5.0 * mm["overlap@10.baseline"].as_f64().unwrap(),
        "{mm}"
    );
    // these two hash models are not related by a linear map: no adapter was kept, and a
    // new-model query against the old space says so (the Rust tests cover an adapter)
    assert!(c["adapter"]["chosen"].is_null(), "{c}");
    let o = run(&[
        "search",
        &s,
        "convert command line strings to Python objects",
        "--embedder",
        "hash:96:7",
        "--space",
        "old",
        "--query-space",
        "new",
    ]);
    assert_ne!(code(&o), 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no adapter maps `new` queries"), "{err}");
    let hits = json(&[
        "search",
        &s,
        "Information about how to convert command line strings to Python objects.",
        "--embedder",
        "hash:96:7",
    ]);
    assert_eq!(hits["hits"][0]["id"], "argparse.Action", "{hits}");
}

#[test]
fn validate_exit_codes_report_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let s = s.to_str().unwrap();
    ok(&["init", s, "--from", &ex("data/corpus.jsonl")]);
    ok(&["apply", s, &ex("01-agent-memory-bootstrap"), "--yes"]);
    let v = json(&["validate", s]);
    assert_eq!(v["ok"], true, "{v}");
    let checks = dir.path().join("checks");
    std::fs::create_dir_all(&checks).unwrap();
    std::fs::write(
        checks.join("invariants.toml"),
        "[[invariants]]\ncheck = \"field\"\nfield = \"source\"\nvalues = [\"argparse\"]\n",
    )
    .unwrap();
    let o = run(&["validate", s, checks.to_str().unwrap()]);
    assert_eq!(code(&o), 3, "a failing fail check exits 3");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("FAILED") && text.contains("field[source]"),
        "{text}"
    );
    let h = json(&["validate", s, "--history"]);
    let rows = h.as_array().unwrap();
    assert!(rows.iter().any(|r| r["source"] == "validate"
        && r["check"] == "field[source]"
        && r["passed"] == false));
    assert!(rows.iter().any(|r| r["source"] == "apply"));
}

#[test]
fn verify_detects_a_flipped_byte_in_a_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let s = s.to_str().unwrap();
    ok(&["init", s, "--from", &ex("data/corpus.jsonl")]);
    ok(&["apply", s, &ex("01-agent-memory-bootstrap"), "--yes"]);
    let v = json(&["verify", s]);
    let digests = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "digests")
        .unwrap()
        .clone();
    assert_eq!(digests["ok"], true, "{v}");
    // flip one byte in the middle of the largest data file
    let data = dir.path().join("store").join("data");
    let mut files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    let target = &files[0];
    let mut bytes = std::fs::read(target).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(target, bytes).unwrap();
    let o = run(&["verify", s, "--json"]);
    assert_eq!(code(&o), 3, "verify fails on corruption");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "digests")
        .unwrap();
    let msg = d["message"].as_str().unwrap();
    let name = target.file_name().unwrap().to_str().unwrap();
    assert!(
        d["ok"] == false && msg.contains("fragment") && msg.contains(name),
        "{msg}"
    );
}

#[test]
fn export_sample_and_review_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let s = s.to_str().unwrap();
    ok(&["init", s, "--from", &ex("data/corpus.jsonl")]);
    ok(&[
        "apply",
        s,
        &ex("04-reembed-new-model"),
        "--to",
        "1",
        "--yes",
        "--embedder",
        "hash256=hash:256",
    ]);
    let v_before = json(&["status", s])["version"].clone();
    let sample = dir.path().join("sample.arrow");
    let sample = sample.to_str().unwrap();
    // without the new model: a sample of the old space, and a note on how to add the new one
    let info = json(&[
        "export-sample",
        s,
        &ex("04-reembed-new-model"),
        "--rows",
        "100",
        "-o",
        sample,
    ]);
    assert_eq!(info["sample"]["rows"], 100, "{info}");
    assert!(
        info["sample"]["notes"][0]
            .as_str()
            .unwrap()
            .contains("--embedder hash384v2="),
        "{info}"
    );
    let r = run(&["review", sample, &ex("04-reembed-new-model")]);
    assert_eq!(code(&r), 0, "nothing to judge yet: pass");
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(
        text.contains("no vectors of the new space `new384`"),
        "{text}"
    );
    // with the new model embedded into the sample
    ok(&[
        "export-sample",
        s,
        &ex("04-reembed-new-model"),
        "--rows",
        "100",
        "-o",
        sample,
        "--embedder",
        "hash384v2=hash:384:2",
    ]);
    assert_eq!(
        json(&["status", s])["version"],
        v_before,
        "export-sample only reads"
    );
    let v = json(&["review", sample, &ex("04-reembed-new-model")]);
    assert_eq!(v["steps"][0]["from"], "old256", "{v}");
    assert_eq!(v["steps"][0]["to"], "new384");
    assert!(
        v["steps"][0]["check"]["metrics"]["overlap@10"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // gates in a copy of the folder: review (exit 4), then block (exit 3)
    let migs = dir.path().join("migs");
    std::fs::create_dir_all(&migs).unwrap();
    for f in ["0001_old.toml", "0002_new_model.toml"] {
        std::fs::copy(Path::new(&ex("04-reembed-new-model")).join(f), migs.join(f)).unwrap();
    }
    let gated = |gate: &str| {
        let text = std::fs::read_to_string(
            Path::new(&ex("04-reembed-new-model")).join("0002_new_model.toml"),
        )
        .unwrap();
        std::fs::write(
            migs.join("0002_new_model.toml"),
            format!("{text}\n[gates]\n{gate}\n"),
        )
        .unwrap();
    };
    // the applied 0001 is unchanged; 0002 is pending, so editing it is allowed
    gated("\"cka\" = { review_below = 1.01 }");
    let r = run(&["review", sample, migs.to_str().unwrap()]);
    assert_eq!(code(&r), 4, "{}", String::from_utf8_lossy(&r.stdout));
    gated("\"overlap@10\" = { block_below = 1.01 }");
    let r = run(&["review", sample, migs.to_str().unwrap()]);
    assert_eq!(code(&r), 3, "{}", String::from_utf8_lossy(&r.stdout));
    assert!(String::from_utf8_lossy(&r.stdout).contains("BLOCK"));
    // a file that is not a sample: a clear error
    let bad = dir.path().join("bad.arrow");
    std::fs::write(&bad, b"not arrow").unwrap();
    let r = run(&["review", bad.to_str().unwrap(), &ex("04-reembed-new-model")]);
    assert_eq!(code(&r), 1);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("memlane export-sample"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

/// A `cmd:` embedder (Python, deterministic: a hashed bag of character trigrams, unit
/// length) that appends every text it embeds to `log`, one JSON string per line.
fn counting_embedder(dir: &Path, log: &Path, dim: usize) -> String {
    let script = dir.join("embed.py");
    std::fs::write(
        &script,
        format!(
            r#"import json, sys, hashlib, math
texts = json.load(sys.stdin)
with open({log:?}, "a") as f:
    for t in texts:
        f.write(json.dumps(t) + "\n")
out = []
for t in texts:
    v = [0.0] * {dim}
    for i in range(max(1, len(t) - 2)):
        h = int.from_bytes(hashlib.blake2b(t[i:i + 3].encode(), digest_size=8).digest(), "little")
        v[h % {dim}] += 1.0 if (h >> 40) & 1 else -1.0
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    out.append([x / n for x in v] if any(v) else [1.0] + [0.0] * ({dim} - 1))
json.dump(out, sys.stdout)
"#
        ),
    )
    .unwrap();
    format!("cmd:python3 {}", script.display())
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
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{v}"
    );
}

/// A store with an applied migration, copied fresh for each tamper case.
fn tamper_fixture(dir: &Path) -> PathBuf {
    let s = dir.join("pristine");
    let st = s.to_str().unwrap();
    ok(&["init", st, "--from", &ex("data/corpus.jsonl")]);
    ok(&["apply", st, &ex("01-agent-memory-bootstrap"), "--yes"]);
    s
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The newest manifest of a local store (V2 names sort newest first).
fn newest_manifest(store: &Path) -> PathBuf {
    let mut m: Vec<PathBuf> = std::fs::read_dir(store.join("_versions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "manifest"))
        .collect();
    m.sort();
    m.remove(0)
}

/// Replace `from` by `to` (same length) in every file under `store` that holds the
/// newest commit's transaction (its manifest, where Lance inlines it, and its `.txn`).
/// Returns how many places changed.
fn edit_newest_record(store: &Path, from: &str, to: &str) -> usize {
    assert_eq!(from.len(), to.len());
    let mut files = vec![newest_manifest(store)];
    if let Ok(rd) = std::fs::read_dir(store.join("_transactions")) {
        files.extend(rd.map(|e| e.unwrap().path()));
    }
    let mut n = 0;
    for f in files {
        let mut bytes = std::fs::read(&f).unwrap();
        let mut changed = false;
        let mut i = 0;
        while let Some(p) = bytes[i..]
            .windows(from.len())
            .position(|w| w == from.as_bytes())
        {
            bytes[i + p..i + p + from.len()].copy_from_slice(to.as_bytes());
            i += p + from.len();
            changed = true;
            n += 1;
            if f.extension().is_some_and(|x| x == "manifest") {
                break;
            }
        }
        if changed {
            std::fs::write(&f, bytes).unwrap();
        }
    }
    n
}

fn failed_check(v: &Value, name: &str) -> String {
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name && c["ok"] == false)
        .unwrap_or_else(|| panic!("no failed `{name}` check in {v}"));
    c["message"].as_str().unwrap().to_owned()
}

fn verify_fails(store: &str) -> Value {
    let o = run(&["verify", store, "--json"]);
    assert_eq!(
        code(&o),
        3,
        "verify must fail with exit 3: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Issue 14: every hand edit of memlane's record fails `verify` (exit 3) naming what,
/// and `plan`/`apply` refuse the store until a restore repairs it.
#[test]
fn verify_catches_tampered_state_manifests_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = tamper_fixture(dir.path());
    let fresh = |name: &str| {
        let p = dir.path().join(name);
        copy_dir(&pristine, &p);
        p
    };
    let mig = ex("01-agent-memory-bootstrap");
    let head = json(&["status", pristine.to_str().unwrap()])["version"]
        .as_u64()
        .unwrap();

    // one byte of the state: the JSON still parses, but not as what was sealed
    let s = fresh("state-byte");
    let st = s.to_str().unwrap();
    assert!(edit_newest_record(&s, "\"applied\"", "\"applieX\"") > 0);
    let v = verify_fails(st);
    let m = failed_check(&v, "record");
    assert!(
        m.contains(&format!("version {head}")) && m.contains("edited"),
        "{m}"
    );
    for args in [vec!["plan", st, &mig], vec!["apply", st, &mig, "--yes"]] {
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), 3, "{args:?}: {err}");
        assert!(
            err.contains("memlane restore") && err.contains(&format!("version {head}")),
            "{err}"
        );
    }
    // the repair named: restore the last intact version, then verify passes
    let good = head - 1;
    ok(&[
        "restore",
        st,
        "--to",
        &good.to_string(),
        "--reason",
        "undo a hand edit",
    ]);
    ok(&["plan", st, &mig]);

    // the state made unparsable
    let s = fresh("state-json");
    assert!(edit_newest_record(&s, "{\"format\":", "[\"format\":") > 0);
    let m = failed_check(&verify_fails(s.to_str().unwrap()), "record");
    assert!(m.contains(&format!("version {head}")), "{m}");

    // one hex digit of a recorded checksum: full checksums shown, plan refuses
    let s = fresh("checksum");
    let st = s.to_str().unwrap();
    let sum = json(&["status", pristine.to_str().unwrap()])["applied"][0]["checksum"]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = format!(
        "{}{}",
        &sum[..20],
        if &sum[20..21] == "0" { "1" } else { "0" }
    ) + &sum[21..];
    assert!(edit_newest_record(&s, &sum[..21], &flipped[..21]) > 0);
    let v = verify_fails(st);
    let m = failed_check(&v, "record");
    assert!(m.contains("edited"), "{m}");
    assert_eq!(code(&run(&["plan", st, &mig])), 3);

    // an older commit's record edited (the create, version 1): the newest state still
    // reads, but verify walks every version and names the edited one
    let s = fresh("old-record");
    let v1 = s
        .join("_versions")
        .join(format!("{:020}.manifest", u64::MAX - 1));
    let mut bytes = std::fs::read(&v1).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == b"\"create\"")
        .expect("version 1 records its create");
    bytes[at + 1..at + 7].copy_from_slice(b"crXate");
    std::fs::write(&v1, bytes).unwrap();
    let m = failed_check(&verify_fails(s.to_str().unwrap()), "record");
    assert!(m.contains("version 1:") && m.contains("edited"), "{m}");

    // the newest manifest deleted: the store would silently open one version back
    let s = fresh("manifest");
    std::fs::remove_file(newest_manifest(&s)).unwrap();
    let v = verify_fails(s.to_str().unwrap());
    let m = failed_check(&v, "record");
    assert!(
        m.contains(&format!("version {head}")) && m.contains("manifest"),
        "{m}"
    );
    assert_eq!(code(&run(&["plan", s.to_str().unwrap(), &mig])), 3);

    // a byte flipped near the end of a data file (its metadata), and a data file
    // deleted: report lines naming the file, never a raw error
    let s = fresh("tail");
    let data = s.join("data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0xff;
    std::fs::write(&files[0], bytes).unwrap();
    let v = verify_fails(s.to_str().unwrap());
    let name = files[0].file_name().unwrap().to_str().unwrap();
    assert!(failed_check(&v, "digests").contains(name), "{v}");

    let s = fresh("deleted");
    let victim = std::fs::read_dir(s.join("data"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&victim).unwrap();
    let v = verify_fails(s.to_str().unwrap());
    let name = victim.file_name().unwrap().to_str().unwrap();
    assert!(failed_check(&v, "digests").contains(name), "{v}");
    assert!(!v.to_string().contains(".cargo/registry"), "{v}");

    // not a store
    let f = dir.path().join("file.txt");
    std::fs::write(&f, "hello").unwrap();
    let o = run(&["status", f.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a memlane store"), "{err}");
}

/// Issue 14: a `cmd:` model that hangs is killed after the timeout; the command fails
/// with a message naming the setting and the store stays readable and resumable.
#[test]
fn a_hung_command_embedder_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let s = s.to_str().unwrap();
    ok(&["init", s, "--from", &ex("data/corpus.jsonl")]);
    let migs = dir.path().join("migs");
    std::fs::create_dir(&migs).unwrap();
    std::fs::write(
        migs.join("0001_new.toml"),
        "[[steps]]\nop = \"add_space\"\nspace = \"new\"\nmodel = \"m\"\ndimension = 8\n\n\
         [[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"slow\"\n",
    )
    .unwrap();
    let m = migs.to_str().unwrap();
    let t0 = Instant::now();
    let o = run(&[
        "apply",
        s,
        m,
        "--yes",
        "--embedder",
        "slow=cmd:sleep 60",
        "--embedder-timeout",
        "1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains("did not answer within 1 s") && err.contains("--embedder-timeout"),
        "{err}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "the timeout did not fire"
    );
    // the store is readable and verifies; the migration resumes with a working model
    let v = json(&["verify", s]);
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{v}"
    );
    let rep = json(&["apply", s, m, "--yes", "--embedder", "slow=hash:8"]);
    assert_eq!(rep["migrations"][0]["outcome"], "applied", "{rep}");

    // a model whose shell leaves a process behind holding its output still answers: the
    // leftover is stopped when the shell exits, not waited for until the timeout
    let s2 = dir.path().join("leftover");
    let s2 = s2.to_str().unwrap();
    let t0 = Instant::now();
    let leftover = "s8=cmd:sleep 60 & python3 -c 'import json,sys; t=json.load(sys.stdin); print(json.dumps([[1.0+len(x)%7]+[0.5]*7 for x in t]))'";
    let out = ok(&[
        "init",
        s2,
        "--from",
        &ex("data/corpus.jsonl"),
        "--space",
        "s8:8",
        "--embedder",
        leftover,
        "--embedder-timeout",
        "30",
    ]);
    assert!(out.contains("392 rows"), "{out}");
    assert!(
        t0.elapsed() < Duration::from_secs(25),
        "the leftover process held the call"
    );
}

/// Issue 14: SQL predicates are checked at plan/lint time with Lance's own planner:
/// an unknown column or a syntax error names the file, the line and the problem.
#[test]
fn bad_predicates_fail_at_plan_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let s = s.to_str().unwrap();
    ok(&["init", s, "--from", &ex("data/corpus.jsonl")]);
    for (pred, needle) in [
        ("nosuchcol = 'x'", "nosuchcol"),
        ("kind = = 'x'", "kind = = 'x'"),
    ] {
        let migs = dir.path().join(format!("m{}", pred.len()));
        std::fs::create_dir(&migs).unwrap();
        std::fs::write(
            migs.join("0001_prune.toml"),
            format!("# prune\n\n[[steps]]\nop = \"delete_where\"\npredicate = \"{pred}\"\n"),
        )
        .unwrap();
        let m = migs.to_str().unwrap();
        for cmd in ["plan", "lint"] {
            let args: Vec<&str> = if cmd == "plan" {
                vec!["plan", s, m]
            } else {
                vec!["lint", m, "--store", s]
            };
            let o = run(&args);
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(code(&o), 3, "{cmd} {pred}: {all}");
            assert!(
                all.contains("0001_prune.toml") && all.contains(":3") && all.contains(needle),
                "{cmd} {pred}: {all}"
            );
            assert!(!all.contains(".cargo/registry"), "{all}");
        }
        // nothing was deleted
        assert_eq!(code(&run(&["apply", s, m, "--yes"])), 3);
        assert_eq!(json(&["status", s])["rows"], 392);
    }
    // an `expression` invariant naming a field that exists nowhere
    let migs = dir.path().join("inv");
    std::fs::create_dir(&migs).unwrap();
    std::fs::write(
        migs.join("0001_check.toml"),
        "[[steps]]\nop = \"add_field\"\nfield = \"topic\"\ntype = \"string\"\n\n\
         [[invariants]]\ncheck = \"expression\"\nname = \"topics set\"\nexpr = \"topci IS NOT NULL\"\n",
    )
    .unwrap();
    let o = run(&["plan", s, migs.to_str().unwrap()]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(code(&o), 3, "{all}");
    assert!(all.contains("topics set") && all.contains("topci"), "{all}");
}
