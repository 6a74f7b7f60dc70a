//! Bundles: a store with its whole history in one file, restored byte for byte; a
//! flipped byte, a cut file, a missing or wrong key are refused, naming the part, and
//! nothing is written.

use std::path::Path;

use crate::common::{code, ex, files, json, ok, run, write_big_corpus};

fn refused(args: &[&str], needle: &str, dest: &str) {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(code(&o), 0, "{args:?} was accepted");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
    assert!(!Path::new(dest).exists(), "something was written to {dest}");
}

#[test]
fn a_bundle_round_trips_byte_for_byte_and_refuses_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.jsonl");
    write_big_corpus(&data, 2000);
    let s = dir.path().join("store").to_str().unwrap().to_owned();
    ok(&[
        "init",
        &s,
        "--from",
        data.to_str().unwrap(),
        "--rows-per-fragment",
        "500",
    ]);
    ok(&["apply", &s, &ex("04-reembed-new-model"), "--yes"]);
    ok(&["tag", &s, "before-bundle"]);
    let b = dir.path().join("store.mlb");
    let bs = b.to_str().unwrap();
    let r = json(&["bundle", &s, "-o", bs]);
    assert_eq!(r["encrypted"], false);

    let back = dir.path().join("back").to_str().unwrap().to_owned();
    ok(&["unbundle", bs, &back]);
    // every file of the store, byte for byte (the lock is not a lasting file)
    let mut want = files(Path::new(&s));
    want.remove("_memlane/lock.json");
    assert_eq!(files(Path::new(&back)), want);
    let v = json(&["verify", &back, &ex("04-reembed-new-model")]);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(
        json(&["history", &back]).as_array().map(Vec::len),
        json(&["history", &s]).as_array().map(Vec::len)
    );

    // a restore killed before its last version manifests: a store at an earlier version
    // that verify flags as cut short; unbundling again finishes it, byte for byte
    let killed = dir.path().join("killed").to_str().unwrap().to_owned();
    ok(&["unbundle", bs, &killed]);
    let mut manifests: Vec<_> = std::fs::read_dir(Path::new(&killed).join("_versions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    manifests.sort(); // newest first in Lance's naming
    for m in &manifests[..2] {
        std::fs::remove_file(m).unwrap();
    }
    let st = json(&["status", &killed]);
    assert!(st["version"].as_u64().unwrap() < json(&["status", &s])["version"].as_u64().unwrap());
    // not silently older: verify names the missing newer manifest
    let o = run(&["--json", "verify", &killed]);
    assert_eq!(code(&o), 3);
    assert!(String::from_utf8_lossy(&o.stdout).contains("manifest (_versions/) is gone"));
    ok(&["unbundle", bs, &killed]);
    let v = json(&["verify", &killed]);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(files(Path::new(&killed)), want);

    // a flipped byte in a data file's part, a cut bundle, an existing destination
    let bytes = std::fs::read(&b).unwrap();
    let flipped = dir.path().join("flipped.mlb");
    let mut f = bytes.clone();
    let at = f.len() * 2 / 3;
    f[at] ^= 0x01;
    std::fs::write(&flipped, &f).unwrap();
    let d1 = dir.path().join("d1").to_str().unwrap().to_owned();
    refused(
        &["unbundle", flipped.to_str().unwrap(), &d1],
        "does not match its blake3 in the manifest",
        &d1,
    );
    let cut = dir.path().join("cut.mlb");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    refused(
        &["unbundle", cut.to_str().unwrap(), &d1],
        "it is cut short",
        &d1,
    );
    let o = run(&["unbundle", bs, &back]);
    assert_eq!(code(&o), 1);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // encrypted: needs its key, refuses another key and a flipped byte
    let key = dir.path().join("key.hex");
    std::fs::write(&key, ok(&["bundle-key"])).unwrap();
    let e = dir.path().join("enc.mlb");
    let es = e.to_str().unwrap();
    let k = key.to_str().unwrap();
    assert_eq!(
        json(&["bundle", &s, "-o", es, "--key-file", k])["encrypted"],
        true
    );
    let enc = std::fs::read(&e).unwrap();
    assert!(
        !enc.windows(12).any(|w| w == b"argparse.Act"),
        "plaintext visible in an encrypted bundle"
    );
    refused(&["unbundle", es, &d1], "is encrypted: give its key", &d1);
    let other = dir.path().join("other.hex");
    std::fs::write(&other, ok(&["bundle-key"])).unwrap();
    refused(
        &["unbundle", es, &d1, "--key-file", other.to_str().unwrap()],
        "does not authenticate",
        &d1,
    );
    let mut t = enc.clone();
    let at = t.len() / 2;
    t[at] ^= 0x80;
    let te = dir.path().join("tampered.mlb");
    std::fs::write(&te, &t).unwrap();
    refused(
        &["unbundle", te.to_str().unwrap(), &d1, "--key-file", k],
        "does not authenticate",
        &d1,
    );
    let back2 = dir.path().join("back2").to_str().unwrap().to_owned();
    ok(&["unbundle", es, &back2, "--key-file", k]);
    assert_eq!(files(Path::new(&back2)), want);
    let bad = dir.path().join("bad.hex");
    std::fs::write(&bad, "not a key").unwrap();
    refused(
        &[
            "bundle",
            &s,
            "-o",
            dir.path().join("z.mlb").to_str().unwrap(),
            "--key-file",
            bad.to_str().unwrap(),
        ],
        "64 hex characters",
        &d1,
    );
}
