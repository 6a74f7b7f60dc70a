//! The properties the fuzz targets check, one function per target. The same file is
//! compiled into memlane-core's `tests/fuzz_regressions.rs`, so every input kept under
//! `fuzz/regressions/<target>/` is replayed by `cargo test -p memlane-core` without the
//! fuzzer.
//!
//! Inputs made of several texts separate them by a line starting with [`SEPARATOR`]
//! (a TOML comment, so one migration file alone is a valid input too).
//!
//! Beyond "no panic", the targets check what memlane promises about its messages: a
//! migration-file error names a line inside the file and says nothing in Rust's words
//! (no type paths, no source paths), and the state memlane writes can be read back.

use memlane_core::migration::{STORE_INVARIANTS, parse_folder, parse_invariants, parse_migration};
use memlane_core::review::{ReviewOptions, Sample};
use memlane_core::state::StoreState;
use memlane_core::{CoreError, HistoryEntry, Migration, Snapshot, Space, Verdict, chain, plan};

#[path = "shapes.rs"]
mod shapes;

/// Line prefix that separates the texts of one input.
pub const SEPARATOR: &str = "#@@";

/// Inputs longer than this are skipped: the targets look for wrong answers, not for the
/// (linear) cost of long inputs.
const MAX_INPUT: usize = 64 * 1024;

/// Split `text` at lines starting with [`SEPARATOR`].
pub fn segments(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with(SEPARATOR) {
            out.push(&text[start..at]);
            start = at + line.len();
        }
        at += line.len();
    }
    out.push(&text[start..]);
    out
}

/// Words of Rust or of memlane's build that must not reach a user through an error
/// about their file (unless the file itself contains them).
const LEAKS: &[&str] = &[
    "::", ".rs:", "/src/", "registry", "usize", "u64", "u32", "u16", "u8", "i64", "i32", "f64",
    "f32", "struct ", "enum ", "Option<", "Vec<", "String",
];

/// Check what an error about file `text` says: a line inside the file and no Rust.
fn check_file_error(text: &str, e: &CoreError) {
    let shown = e.to_string();
    if let CoreError::MigrationFile { line, .. } = e {
        let lines = text.lines().count().max(1);
        assert!(
            (1..=lines + 1).contains(line),
            "line {line} outside the file's {lines} lines: {shown}"
        );
    }
    check_words(text, &shown);
}

/// Check a message about `text` says nothing in Rust's words.
fn check_words(text: &str, shown: &str) {
    for leak in LEAKS {
        assert!(
            !shown.contains(leak) || text.contains(leak),
            "`{leak}` in an error about a migration file: {shown}"
        );
    }
}

/// A store with two spaces, one applied migration of the folder and a record schema:
/// what lint and plan see after `0001` of the seeds ran.
fn store_snapshot(files: &[Migration]) -> Snapshot {
    let mut snap = Snapshot::fresh();
    snap.version = 7;
    snap.rows = 1_000;
    let old = Space::new("e768", 768).with_normalized(true);
    let small = Space::new("mini", 8);
    for s in [&old, &small] {
        snap.fields.push(memlane_core::FieldDef {
            name: s.column.clone(),
            ty: memlane_core::FieldType::Vector(s.dimension),
            nullable: true,
        });
    }
    snap.state.spaces = vec![old, small];
    snap.state.active_space = Some("e768".into());
    if let Some(m) = files.first() {
        snap.state.applied.push(memlane_core::AppliedMigration {
            id: m.id,
            file: m.file.clone(),
            description: m.description.clone(),
            content_hash: m.content_hash.clone(),
            checksum: chain::chain_checksum("", &m.file, &m.content_hash),
            applied_at: "2026-01-01T00:00:00Z".into(),
            repairs: vec![],
        });
    }
    snap
}

/// Plan `files` against `snap` and use every part of the answer.
fn plan_and_lint(snap: &Snapshot, files: &[Migration]) {
    match plan(snap, files) {
        Ok(p) => {
            let _ = p.to_string();
            let _ = p.ensure_clean().map_err(|e| e.to_string());
            serde_json::to_string(&p).expect("a plan encodes as JSON");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Target `migration`: migration files (one per segment, named `0001_f0.toml`, ...)
/// through the parser, the store-level invariants parser, the folder parser, then lint
/// and plan against a fresh store and a store that has applied the first file.
pub fn migration(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    // lossy: an invalid byte becomes U+FFFD, three bytes of valid UTF-8, so byte-level
    // mutations put multi-byte characters in every string the core slices
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let files: Vec<(String, String)> = segments(text)
        .into_iter()
        .enumerate()
        .map(|(i, t)| (format!("{:04}_f{i}.toml", i + 1), t.to_owned()))
        .collect();
    for (name, text) in &files {
        match parse_migration(name, text) {
            Ok(m) => {
                for s in &m.steps {
                    let _ = s.step.describe();
                    assert!((1..=text.lines().count().max(1)).contains(&s.line));
                }
                serde_json::to_string(&m).expect("a migration encodes as JSON");
            }
            Err(e) => check_file_error(text, &e),
        }
        // the wasm page reads `[gates]` alone through parse_gates
        if let Ok(doc) = text.parse::<toml::Table>()
            && let Some(g) = doc.get("gates")
            && let Err(e) = memlane_core::compat::parse_gates(g)
        {
            check_words(text, &e.to_string());
        }
        match parse_invariants(STORE_INVARIANTS, text) {
            Ok(inv) => inv.iter().for_each(|i| drop(i.label())),
            Err(e) => check_file_error(text, &e),
        }
    }
    let Ok(folder) = parse_folder(&files) else {
        return;
    };
    plan_and_lint(&Snapshot::fresh(), &folder);
    plan_and_lint(&store_snapshot(&folder), &folder);
}

/// The folder the `state` target reconciles decoded states with.
fn example_folder() -> Vec<Migration> {
    parse_folder(&[
        (
            "0001_old.toml".into(),
            include_str!("../../migrations-examples/04-reembed-new-model/0001_old.toml").into(),
        ),
        (
            "0002_new_model.toml".into(),
            include_str!("../../migrations-examples/04-reembed-new-model/0002_new_model.toml")
                .into(),
        ),
    ])
    .expect("the example folder parses")
}

/// Use a decoded state: chain checks, reconcile and repair against the example
/// folder, and read back what memlane would write of it.
fn use_state(st: &StoreState, folder: &[Migration]) {
    let _ = chain::verify_recorded(st);
    let _ = (st.head_checksum(), st.active(), st.fragment_rows());
    for r in st.in_flight.iter().flat_map(|f| &f.reports) {
        let _ = r.to_string();
    }
    let _ = chain::reconcile(st, folder).map_err(|e| e.to_string());
    for id in [1, 2, 3] {
        let _ = chain::repair(st, folder, id, "fuzz", "2026-01-01T00:00:00Z");
    }
    let json = st.to_json();
    let back = StoreState::from_json(&json)
        .unwrap_or_else(|e| panic!("memlane cannot read the state it wrote ({e}): {json}"));
    assert_eq!(
        back.to_json(),
        json,
        "the state changed on a write-read cycle"
    );
}

/// Target `state`: the JSON of a transaction property decoded as a [`StoreState`], a
/// [`HistoryEntry`] and a [`Snapshot`] (as the CLI, `verify` and the wasm page read
/// them), then used: chain verification, reconcile, repair, plan.
pub fn state(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    // lossy: an invalid byte becomes U+FFFD, three bytes of valid UTF-8, so byte-level
    // mutations put multi-byte characters in every string the core slices
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let folder = example_folder();
    if let Ok(st) = StoreState::from_json(text) {
        use_state(&st, &folder);
    }
    if let Ok(h) = serde_json::from_str::<HistoryEntry>(text) {
        let _ = h.to_string();
        let _ = h.report.as_ref().map(ToString::to_string);
        let json = serde_json::to_string(&h).expect("an entry encodes");
        serde_json::from_str::<HistoryEntry>(&json).expect("an entry reads back");
    }
    if let Ok(snap) = serde_json::from_str::<Snapshot>(text) {
        use_state(&snap.state, &folder);
        plan_and_lint(&snap, &folder);
    }
    // a commit's seal read back against texts: never a panic; a seal that checks out
    // recomputes to its own hash and rejects any other state text
    if let Ok(seal) = memlane_core::Seal::check(text, Some(text), Some(text)) {
        assert_eq!(seal.compute(), seal.hash);
        assert!(memlane_core::Seal::check(text, Some("{}x"), Some(text)).is_err() || text == "{}x");
    }
}

/// Target `review`: what the wasm page hands the core. Segment 0 is a [`Sample`] as
/// JSON (snapshot, ids, vector columns, fields), segment 1 the [`ReviewOptions`] as
/// JSON (empty: defaults), the rest migration files as in [`migration`].
pub fn review(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    // lossy: an invalid byte becomes U+FFFD, three bytes of valid UTF-8, so byte-level
    // mutations put multi-byte characters in every string the core slices
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let segs = segments(text);
    let Some(Ok(sample)) = segs.first().map(|s| serde_json::from_str::<Sample>(s)) else {
        return;
    };
    let opts = match segs.get(1).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => ReviewOptions::default(),
        Some(s) => match serde_json::from_str::<ReviewOptions>(s) {
            Ok(o) => o,
            Err(_) => return,
        },
    };
    let files: Vec<(String, String)> = segs
        .iter()
        .skip(2)
        .enumerate()
        .map(|(i, t)| (format!("{:04}_f{i}.toml", i + 1), (*t).to_owned()))
        .collect();
    let Ok(folder) = parse_folder(&files) else {
        return;
    };
    run_review(&folder, &sample, &opts);
}

/// Review `folder` on `sample` and use every part of the answer.
fn run_review(folder: &[Migration], sample: &Sample, opts: &ReviewOptions) {
    match memlane_core::review(folder, sample, opts) {
        Ok(r) => {
            let _ = r.to_string();
            serde_json::to_string(&r).expect("a review encodes as JSON");
            // the verdict is the worst of everything (memlane_core::Review::verdict)
            let worst = r
                .steps
                .iter()
                .filter_map(|s| s.check.as_ref().map(|c| c.verdict))
                .chain(
                    r.invariants
                        .iter()
                        .filter(|i| i.blocks())
                        .map(|_| Verdict::Block),
                )
                .chain((r.plan.errors().count() > 0).then_some(Verdict::Block))
                .max()
                .unwrap_or(Verdict::Pass);
            assert_eq!(
                r.verdict, worst,
                "review verdict is not the worst of its parts: {r}"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Target `sample`: a sample, options and a one-file folder drawn from the bytes (see
/// `shapes.rs`) through [`memlane_core::review`], as in [`review`].
pub fn sample(data: &[u8]) {
    let (sample, opts, text) = shapes::draw(data);
    match parse_folder(&[("0001_f0.toml".to_owned(), text.clone())]) {
        Ok(folder) => run_review(&folder, &sample, &opts),
        Err(e) => check_file_error(&text, &e),
    }
}
