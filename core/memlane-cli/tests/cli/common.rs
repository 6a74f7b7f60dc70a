//! Helpers of the CLI suite: running the binary, the example folders, generated corpora.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_memlane"))
}

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub(crate) fn ex(name: &str) -> String {
    repo()
        .join("migrations-examples")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

pub(crate) fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "memlane {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
}

pub(crate) fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(&a)).unwrap()
}

/// Whether every check of a `verify --json` report passed.
pub(crate) fn all_checks_ok(v: &Value) -> bool {
    v["checks"]
        .as_array()
        .is_some_and(|c| c.iter().all(|c| c["ok"] == true))
}

pub(crate) fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A tiny deterministic generator (no timing in assertions: only where kills land).
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

pub(crate) fn write_big_corpus(path: &Path, n: usize) {
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

pub(crate) fn sorted_export(store: &str, dir: &Path, name: &str) -> Vec<Value> {
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

/// A `cmd:` embedder (Python, deterministic: a hashed bag of character trigrams, unit
/// length) that appends every text it embeds to `log`, one JSON string per line.
pub(crate) fn counting_embedder(dir: &Path, log: &Path, dim: usize) -> String {
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

/// Every file under a directory: relative path -> blake3 of its bytes.
pub(crate) fn files(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(
                    rel,
                    blake3::hash(&std::fs::read(&p).unwrap())
                        .to_hex()
                        .to_string(),
                );
            }
        }
    }
    out
}
