//! Writes the seed inputs of the fuzz targets into `fuzz/seeds/<target>/` from the
//! repository's example migration folders: each folder as one `migration` input, its
//! state after applying it (real checksums) as `state` inputs, and small samples with
//! the folder's re-embed and truncation as `review` inputs.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (the seeds are committed;
//! run it again after the examples or the state format change).
#![allow(clippy::print_stdout, missing_docs)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use memlane_core::review::{ReviewOptions, Sample, VectorColumn};
use memlane_core::state::{Action, AppliedMigration, InFlight, StoreState};
use memlane_core::{FieldDef, FieldType, HistoryEntry, Migration, Snapshot, Space, chain};
use memlane_core::{StepReport, parse_folder};
use memlane_fuzz::SEPARATOR;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example folders: name and their `.toml` files (name, text), sorted.
fn folders() -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut dirs: Vec<_> = fs::read_dir(root().join("migrations-examples"))
        .expect("migrations-examples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        let mut files: Vec<(String, String)> = fs::read_dir(&d)
            .expect("folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, fs::read_to_string(&p).expect("read"))
            })
            .collect();
        files.sort();
        if !files.is_empty() {
            out.push((d.file_name().unwrap().to_string_lossy().into_owned(), files));
        }
    }
    out
}

fn joined(texts: &[&str]) -> String {
    texts.join(&format!("\n{SEPARATOR}\n"))
}

/// The state after applying `done` migrations of `folder` fully and the next one's first
/// step (when there is a next one).
fn state_after(folder: &[Migration], done: usize) -> StoreState {
    let mut st = StoreState::default();
    let mut prev = String::new();
    for m in folder.iter().take(done) {
        for s in &m.steps {
            st = s.step.evolve_state(&st);
        }
        let checksum = chain::chain_checksum(&prev, &m.file, &m.content_hash);
        prev.clone_from(&checksum);
        st.applied.push(AppliedMigration {
            id: m.id,
            file: m.file.clone(),
            description: m.description.clone(),
            content_hash: m.content_hash.clone(),
            checksum,
            applied_at: "2026-01-01T00:00:00Z".into(),
            repairs: vec![],
        });
    }
    if let Some(m) = folder.get(done) {
        st = m.steps[0].step.evolve_state(&st);
        st.in_flight = Some(InFlight {
            id: m.id,
            file: m.file.clone(),
            description: m.description.clone(),
            content_hash: m.content_hash.clone(),
            checksum: chain::chain_checksum(&prev, &m.file, &m.content_hash),
            steps_done: 1,
            steps_total: m.steps.len(),
            started_at: "2026-01-02T00:00:00Z".into(),
            started_version: 4,
            checkpoint: Some(memlane_core::ReembedCheckpoint {
                phase: "backfill".into(),
                space: "new".into(),
                pass: 1,
                embedded: 120,
                ..Default::default()
            }),
            reports: vec![report(m, 0)],
            compat: None,
        });
    }
    st
}

fn report(m: &Migration, step: usize) -> StepReport {
    StepReport {
        migration: m.id,
        step,
        op: m.steps[step].step.op().into(),
        description: m.steps[step].step.describe(),
        rows_before: 120,
        rows_after: 120,
        rows_deleted: 0,
        rows_written: 120,
        duration_ms: 35,
        invariants: vec![],
        version: Some(5),
        compat: None,
    }
}

fn unit_rows(seed: u64, n: usize, d: usize) -> Vec<f32> {
    let mut x = seed;
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n * d {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        #[allow(clippy::cast_precision_loss)]
        out.push(((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0);
    }
    for r in out.chunks_mut(d) {
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
        r.iter_mut()
            .for_each(|v| *v = (*v * 1000.0 / n).round() / 1000.0);
    }
    out
}

/// A sample of `n` rows with space `old` (dimension `d`) and, if `new` is given, the
/// vectors of that space too (a rotation of the old ones plus noise when `related`).
fn sample(n: usize, d: usize, new: Option<(&str, usize, bool)>) -> Sample {
    let old = Space::new("old", d).with_normalized(true);
    let mut snap = Snapshot::fresh();
    snap.version = 3;
    snap.rows = 5_000;
    snap.fields.push(FieldDef {
        name: old.column.clone(),
        ty: FieldType::Vector(d),
        nullable: true,
    });
    snap.state.spaces = vec![old];
    snap.state.active_space = Some("old".into());
    let mut vectors = BTreeMap::new();
    let base = unit_rows(1, n, d);
    vectors.insert(
        "vec_old".to_owned(),
        VectorColumn {
            dim: d,
            data: base.clone(),
            valid: vec![],
        },
    );
    if let Some((name, dn, related)) = new {
        let data = if related {
            (0..n)
                .flat_map(|i| (0..dn).map(move |j| (i, j)))
                .map(|(i, j)| base[i * d + (j + 1) % d.min(dn)])
                .collect()
        } else {
            unit_rows(7, n, dn)
        };
        let mut valid = vec![true; n];
        valid[n - 1] = false;
        vectors.insert(
            format!("vec_{name}"),
            VectorColumn {
                dim: dn,
                data,
                valid,
            },
        );
    }
    let mut fields = BTreeMap::new();
    fields.insert(
        "topic".to_owned(),
        (0..n)
            .map(|i| serde_json::json!(["work", "home", "misc"][i % 3]))
            .collect(),
    );
    fields.insert(
        "importance".to_owned(),
        (0..n).map(|i| serde_json::json!(i % 5)).collect(),
    );
    Sample {
        snapshot: snap,
        ids: (0..n).map(|i| format!("m{i}")).collect(),
        vectors,
        fields,
    }
}

const REEMBED: &str = r#"description = "new model"

[[steps]]
op = "add_space"
space = "new"
dimension = 4
normalized = true

[[steps]]
op = "reembed"
space = "new"
embedder = "e"
mode = "adapter"
k = 3

[[invariants]]
check = "duplicates"
space = "new"
near = 0.999

[gates]
"overlap@3" = { block_below = 0.2, review_below = 0.5 }
"#;

const TRUNCATE: &str = r#"[[steps]]
op = "truncate"
from = "old"
space = "old2"
dimension = 2

[[invariants]]
check = "field"
field = "topic"
values = ["work", "home"]
mostly = 0.5
"#;

fn write(target: &str, name: &str, text: &str) {
    let dir = root().join("fuzz/seeds").join(target);
    fs::create_dir_all(&dir).expect("seed dir");
    fs::write(dir.join(name), text).expect("write seed");
}

fn main() {
    for (name, files) in folders() {
        let texts: Vec<&str> = files.iter().map(|(_, t)| t.as_str()).collect();
        write("migration", &format!("{name}.toml"), &joined(&texts));
        let folder = parse_folder(&files).expect("example folder parses");
        for done in 0..=folder.len() {
            let st = state_after(&folder, done);
            write("state", &format!("{name}-state{done}.json"), &st.to_json());
        }
        let mut snap = Snapshot::fresh();
        snap.state = state_after(&folder, folder.len());
        snap.rows = 42;
        write(
            "state",
            &format!("{name}-snapshot.json"),
            &serde_json::to_string(&snap).expect("snapshot"),
        );
        let mut h = HistoryEntry::new(Action::Step, "2026-01-03T00:00:00Z");
        h.migration = Some(folder[0].id);
        h.file = Some(folder[0].file.clone());
        h.checksum = snap.state.applied.first().map(|a| a.checksum.clone());
        h.report = Some(report(&folder[0], 0));
        h.rows = Some((120, 120));
        write(
            "state",
            &format!("{name}-entry.json"),
            &serde_json::to_string(&h).expect("entry"),
        );
    }
    let opts = |k: usize| {
        serde_json::to_string(&ReviewOptions {
            k,
            projection: true,
            invariants: vec![],
        })
        .expect("options")
    };
    let json = |s: &Sample| serde_json::to_string(s).expect("sample");
    let s = sample(24, 4, Some(("new", 4, true)));
    write(
        "review",
        "reembed-related.txt",
        &joined(&[&json(&s), "", REEMBED]),
    );
    let s = sample(24, 4, Some(("new", 4, false)));
    write(
        "review",
        "reembed-unrelated.txt",
        &joined(&[&json(&s), &opts(3), REEMBED]),
    );
    let s = sample(22, 4, None);
    write(
        "review",
        "truncate.txt",
        &joined(&[&json(&s), &opts(2), TRUNCATE]),
    );
    write(
        "review",
        "no-new-vectors.txt",
        &joined(&[&json(&s), "", REEMBED, TRUNCATE]),
    );
    println!("seeds written under fuzz/seeds/");
}
