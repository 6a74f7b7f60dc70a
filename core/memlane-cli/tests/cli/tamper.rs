//! Hand-tampered stores: edited records, manifests, data files and sidecars are caught
//! by verify and refused by mutations.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

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
