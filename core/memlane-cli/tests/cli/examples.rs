//! Every command on the example folders: outputs, JSON shapes and exit codes, the lock,
//! compatibility gates, validate, verify of a flipped byte, review samples, a hung
//! model, bad predicates.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

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
    assert!(all_checks_ok(&ver), "{ver}");

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
    let rt = tokio::runtime::Runtime::new().unwrap();
    let local = memlane_store::StorageOptions::new();
    let guard = rt
        .block_on(async {
            let side = memlane_store::SideFiles::open(s, &local).await?;
            memlane_store::lock::acquire(&side, &local, "ci job 41", Duration::from_secs(60)).await
        })
        .unwrap();
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
    assert!(hits["index"].is_null(), "no index yet: an exact scan");

    // an index on the active space: search goes through it and says so
    std::fs::write(
        migs.join("0002_index.toml"),
        "[[steps]]\nop = \"create_index\"\nspace = \"new\"\nindex = { kind = \"ivf_pq\", partitions = 4, sub_vectors = 12 }\n",
    )
    .unwrap();
    let rep = json(&["apply", &s, &m, "--yes"]);
    let inv = &rep["migrations"][0]["steps"][0]["invariants"];
    assert!(
        inv.as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "index_recall@10[new]" && i["passed"] == true),
        "{inv}"
    );
    let q = "Information about how to convert command line strings to Python objects.";
    let hits = json(&["search", &s, q, "--embedder", "hash:96:7"]);
    assert_eq!(hits["index"], "ivf_pq", "{hits}");
    assert_eq!(hits["hits"][0]["id"], "argparse.Action", "{hits}");
    let text = ok(&["search", &s, q, "--embedder", "hash:96:7"]);
    assert!(text.contains("searched with its ivf_pq index"), "{text}");
    let exact = json(&["search", &s, q, "--embedder", "hash:96:7", "--exact"]);
    assert!(exact["index"].is_null(), "{exact}");
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
    assert!(all_checks_ok(&v), "{v}");
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
