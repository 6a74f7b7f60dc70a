//! `memlane diff`: dev and prod built from the same data and migrations; a planted
//! model swap under the same space name (same identity, another model), an edited
//! record, a migration applied with other contents, and the exit codes.

use std::path::Path;

use serde_json::Value;

use crate::common::{code, ex, ok, run, write_big_corpus};

fn diff(a: &str, b: &str) -> (i32, Value) {
    let o = run(&["--json", "diff", a, b]);
    (
        code(&o),
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null),
    )
}

fn store(dir: &Path, name: &str, data: &Path, migs: &str, embedder: &str) -> String {
    let s = dir.join(name).to_str().unwrap().to_owned();
    ok(&["init", &s, "--from", data.to_str().unwrap()]);
    ok(&[
        "apply",
        &s,
        migs,
        "--to",
        "1",
        "--yes",
        "--embedder",
        embedder,
    ]);
    s
}

#[test]
fn diff_finds_a_model_swapped_under_the_same_space_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.jsonl");
    write_big_corpus(&data, 1500);
    let migs = ex("04-reembed-new-model");
    let dev = store(dir.path(), "dev", &data, &migs, "hash256=hash:256");
    let prod = store(dir.path(), "prod", &data, &migs, "hash256=hash:256");
    // the same model: the same state
    let (c, d) = diff(&dev, &prod);
    assert_eq!((c, d["verdict"].as_str()), (0, Some("same")), "{d:#}");
    assert_eq!(d["spaces"][0]["paired"].as_u64(), Some(500));

    // staging: same data, same migration file, same space identity, another model
    let staging = store(dir.path(), "staging", &data, &migs, "hash256=hash:256:9");
    let (c, d) = diff(&dev, &staging);
    assert_eq!(c, 3, "{d:#}");
    assert_eq!(d["verdict"], "incompatible");
    let sp = &d["spaces"][0];
    assert_eq!(sp["name"], "old256");
    assert_eq!(sp["a"], sp["b"], "same identity on both sides");
    assert!(sp["paired_cosine"].as_f64().unwrap() < 0.5, "{sp:#}");
    assert!(sp["fingerprint_cosine"].as_f64().unwrap() < 0.9, "{sp:#}");
    assert!(
        d["reasons"][0].as_str().unwrap().contains("another model"),
        "{d:#}"
    );
    assert_eq!(sp["moved"], true, "{sp:#}");

    // an edited record and a new one on prod: differ, named
    let f = dir.path().join("edit.jsonl");
    let line = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let mut rec: Value = serde_json::from_str(&line).unwrap();
    let id = rec["id"].as_str().unwrap().to_owned();
    rec["content"] = "edited on prod".into();
    let mut new = rec.clone();
    new["id"] = "only-on-prod".into();
    std::fs::write(&f, format!("{rec}\n{new}\n")).unwrap();
    ok(&[
        "upsert",
        &prod,
        f.to_str().unwrap(),
        "--embedder",
        "old256=hash:256",
    ]);
    let (c, d) = diff(&dev, &prod);
    assert_eq!((c, d["verdict"].as_str()), (4, Some("differ")), "{d:#}");
    let r = &d["records"];
    assert_eq!(
        (
            r["only_a"].as_u64(),
            r["only_b"].as_u64(),
            r["changed"].as_u64()
        ),
        (Some(0), Some(1), Some(1))
    );
    assert_eq!(r["sample_only_b"][0], "only-on-prod");
    assert_eq!(r["sample_changed"][0].as_str(), Some(id.as_str()));

    // a migration applied with other contents on one side: incompatible
    let edited = dir.path().join("edited");
    std::fs::create_dir(&edited).unwrap();
    let text = std::fs::read_to_string(Path::new(&migs).join("0001_old.toml")).unwrap();
    std::fs::write(
        edited.join("0001_old.toml"),
        text.replace("min = 1", "min = 2"),
    )
    .unwrap();
    let other = dir.path().join("other").to_str().unwrap().to_owned();
    ok(&["init", &other, "--from", data.to_str().unwrap()]);
    ok(&["apply", &other, edited.to_str().unwrap(), "--yes"]);
    let (c, d) = diff(&dev, &other);
    assert_eq!(c, 3, "{d:#}");
    assert_eq!(d["migrations"]["checksum_differs"][0], "0001_old.toml");
    // text output names the verdict
    let o = run(&["diff", &dev, &other]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("verdict: INCOMPATIBLE"));
}
