//! # memlane-wasm
//!
//! memlane's review logic in the browser and in Node.js: the same `memlane-core` the CLI
//! runs (parse and lint migration files, plan against a store snapshot, compatibility
//! metrics with adapter fits and gates, invariants on a sample), exported through
//! wasm-bindgen. Nothing here touches a store: the browser gets a sample exported by
//! `memlane export-sample`.
//!
//! Structured inputs (file lists, snapshots, options) are JSON strings and vectors are
//! `Float32Array`s; every report comes back as a plain JS object. Errors are JS `Error`s
//! whose `name` says the kind (`memlane_core::ErrorKind::js_name`, the table the CLI's
//! exit codes and Python's classes derive from too): `MigrationFileError`, `LintError`,
//! `ChainError`, `VectorError`, `CompatError`, `InvalidInputError`, `IntegrityError`.

use std::collections::BTreeMap;

use memlane_core::compat::{self, CompatOptions, Gate, Matrix, QuerySet};
use memlane_core::migration::{
    InvariantSpec, Migration, STORE_INVARIANTS, parse_folder, parse_invariants,
};
use memlane_core::review::{ReviewOptions, Sample, VectorColumn};
use memlane_core::{CompatError, CoreError, Metric, Snapshot, Space};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** A migration file as the page or a script read it. */
export interface MigrationFile { name: string; text: string }
/** Options of `compat` (all optional). */
export interface CompatOptionsJs { k?: number; metric?: "cosine" | "dot" | "l2"; seed?: number; fitAdapters?: boolean; keepPerRow?: boolean }
/** Options of `review` (all optional). */
export interface ReviewOptionsJs { k?: number; projection?: boolean; invariants?: string }
/** The verdict of a gate, a check or a whole review. */
export type Verdict = "pass" | "review" | "block";
/** A lint finding. */
export interface Finding { level: "error" | "warning"; code: string; file: string; line: number; message: string; hint: string }
/** What `apply` would do (memlane_core::Plan). */
export interface Plan { version: number; rows: number; applied: number; migrations: any[]; findings: Finding[]; embedders: string[]; active_space_before: string | null; active_space_after: string | null; spaces_after: any[]; fields_after: any[] }
/** Every metric of a compatibility analysis (memlane_core::compat::CompatReport). */
export interface CompatReport { n: number; k: number; old_dim: number; new_dim: number; metric: string; overlap: any; recall: any; cka: number; procrustes: any; identical_mean_cosine: number | null; norms_old: any; norms_new: any; retrieval: any | null; adapter: any | null; metrics: Record<string, number>; suggested_mode: string; approximations: Array<{ of: string; method: string; rows: number; k: number; params: { m: number; ef_construction: number; ef_search: number }; checked_rows: number; recall_vs_exact: number }> }
/** The check `apply` makes before a re-embed (memlane_core::CompatCheck). */
export interface CompatCheck { from: string; to: string; sample: number; k: number; metrics: Record<string, number>; mode: string | null; mode_failure: string | null; suggested_mode: string; gates: { metric: string; value: number | null; verdict: Verdict; message: string; thresholds: any }[]; verdict: Verdict; adapter_summary: string }
/** `checkPair`'s result. */
export interface PairCheck { check: CompatCheck; report: CompatReport | null }
/** One invariant's result. */
export interface InvariantResult { name: string; check: string; severity: "fail" | "warn"; passed: boolean; total: number; failed: number; mostly: number; sample_ids: string[]; message: string }
/** The review of one re-embed or truncation. */
export interface StepReview { migration: number; file: string; step: number; op: string; from: string; to: string; check: CompatCheck | null; report: CompatReport | null; note: string | null; projection: { old: number[]; new: number[] } | null }
/** The review of a folder's pending migrations on a sample. */
export interface Review { plan: Plan; sample_rows: number; store_rows: number; steps: StepReview[]; invariants: InvariantResult[]; verdict: Verdict; reasons: string[] }
"#;

/// A JS `Error` named after the kind of problem.
fn js_error(name: &str, message: impl std::fmt::Display) -> JsValue {
    let e = js_sys::Error::new(&message.to_string());
    e.set_name(name);
    e.into()
}

/// The JS name comes from the core's one classification ([`CoreError::kind`]).
fn core_error(e: CoreError) -> JsValue {
    js_error(e.kind().js_name(), e)
}

fn compat_error(e: CompatError) -> JsValue {
    js_error("CompatError", e)
}

fn input<T: for<'de> Deserialize<'de>>(what: &str, json: &str) -> Result<T, JsValue> {
    serde_json::from_str(json).map_err(|e| {
        js_error(
            "InvalidInputError",
            format!("{what} is not valid: {e}; pass the JSON memlane writes (see the README of bindings/wasm)"),
        )
    })
}

/// A report as a plain JS object.
fn output<T: serde::Serialize>(v: &T) -> Result<JsValue, JsValue> {
    let text = serde_json::to_string(v)
        .map_err(|e| js_error("InvalidInputError", format!("report: {e}")))?;
    js_sys::JSON::parse(&text)
}

#[derive(Deserialize)]
struct FileJs {
    name: String,
    text: String,
}

/// Parse `[{name, text}]` as a migrations folder (`invariants.toml` and non-`.toml`
/// files are set aside). Returns the migrations and the store-level invariants.
fn parse_files(files_json: &str) -> Result<(Vec<Migration>, Vec<InvariantSpec>), JsValue> {
    let files: Vec<FileJs> = input("the migration file list", files_json)?;
    let mut migs = Vec::new();
    let mut inv = Vec::new();
    for f in files {
        let base = f.name.rsplit('/').next().unwrap_or(&f.name).to_owned();
        if base == STORE_INVARIANTS {
            inv.extend(parse_invariants(&base, &f.text).map_err(core_error)?);
        }
        // parse_folder itself skips invariants.toml and files that are not .toml
        migs.push((base, f.text));
    }
    Ok((parse_folder(&migs).map_err(core_error)?, inv))
}

fn snapshot(json: Option<String>) -> Result<Snapshot, JsValue> {
    match json.filter(|s| !s.trim().is_empty()) {
        Some(s) => input("the store snapshot", &s),
        None => Ok(Snapshot::fresh()),
    }
}

/// The memlane version this module was built from.
#[wasm_bindgen]
pub fn version() -> String {
    memlane_core::VERSION.to_owned()
}

/// Parse migration files (`[{name, text}]` as JSON): the parsed migrations, in id order.
/// Fails with `MigrationFileError` naming the file and line of the first problem.
#[wasm_bindgen(js_name = parseMigrations, unchecked_return_type = "any[]")]
pub fn parse_migrations(files_json: &str) -> Result<JsValue, JsValue> {
    let (m, _) = parse_files(files_json)?;
    output(&m)
}

/// Plan the migrations against a store snapshot (JSON as `memlane export-sample` writes
/// it; omitted: a fresh store), lint findings included. Like `memlane plan`.
#[wasm_bindgen(unchecked_return_type = "Plan")]
pub fn plan(files_json: &str, snapshot_json: Option<String>) -> Result<JsValue, JsValue> {
    let (m, _) = parse_files(files_json)?;
    let p = memlane_core::plan(&snapshot(snapshot_json)?, &m).map_err(core_error)?;
    output(&p)
}

/// Only the lint findings of [`plan`].
#[wasm_bindgen(unchecked_return_type = "Finding[]")]
pub fn lint(files_json: &str, snapshot_json: Option<String>) -> Result<JsValue, JsValue> {
    let (m, _) = parse_files(files_json)?;
    let p = memlane_core::plan(&snapshot(snapshot_json)?, &m).map_err(core_error)?;
    output(&p.findings)
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct CompatOptionsJs {
    k: Option<usize>,
    metric: Option<String>,
    seed: Option<u64>,
    fit_adapters: Option<bool>,
    keep_per_row: Option<bool>,
}

fn compat_options<'a>(json: Option<String>) -> Result<CompatOptions<'a>, JsValue> {
    let o: CompatOptionsJs = match json.filter(|s| !s.trim().is_empty()) {
        Some(s) => input("the compat options", &s)?,
        None => CompatOptionsJs::default(),
    };
    let mut opts = CompatOptions::default();
    if let Some(k) = o.k {
        opts.k = k;
    }
    if let Some(m) = o.metric {
        opts.metric = Metric::parse(&m).map_err(core_error)?;
    }
    if let Some(s) = o.seed {
        opts.seed = s;
    }
    if let Some(f) = o.fit_adapters {
        opts.fit_adapters = f;
    }
    if let Some(p) = o.keep_per_row {
        opts.keep_per_row = p;
    }
    Ok(opts)
}

/// The compatibility metrics of two embeddings of the same records (row `i` of `old` and
/// of `new` is one record; flat row-major `Float32Array`s): neighbourhood overlap and
/// recall with shuffled baselines, CKA, Procrustes, norms, adapter fits, and, with
/// `queries` (old and new query vectors plus `relevant`, a JSON array of row-index
/// arrays), retrieval recall. The same numbers as `memlane compat`.
#[wasm_bindgen(unchecked_return_type = "CompatReport")]
#[allow(clippy::too_many_arguments)]
pub fn compat(
    old_vectors: &[f32],
    old_dim: usize,
    new_vectors: &[f32],
    new_dim: usize,
    options_json: Option<String>,
    query_old: Option<Vec<f32>>,
    query_new: Option<Vec<f32>>,
    relevant_json: Option<String>,
) -> Result<JsValue, JsValue> {
    let o = Matrix::new(old_vectors, old_dim).map_err(compat_error)?;
    let n = Matrix::new(new_vectors, new_dim).map_err(compat_error)?;
    let mut opts = compat_options(options_json)?;
    let relevant: Vec<Vec<u32>> = match &relevant_json {
        Some(r) => input("the relevant rows", r)?,
        None => vec![],
    };
    let (qo, qn) = (query_old.unwrap_or_default(), query_new.unwrap_or_default());
    if !relevant.is_empty() {
        opts.queries = Some(QuerySet {
            old: Matrix::new(&qo, old_dim).map_err(compat_error)?,
            new: Matrix::new(&qn, new_dim).map_err(compat_error)?,
            relevant: &relevant,
        });
    }
    let report = compat::compat(&o, &n, &opts).map_err(compat_error)?;
    output(&report)
}

/// The check `memlane apply` makes before a re-embed, on paired vectors: metrics, the
/// declared `mode` (`"identical"`, `"rotation"`, ... or none) verified, the `gates` (the
/// `[gates]` table of a migration file as TOML text) judged, and the verdict.
/// `from_json` / `to_json` are the two spaces as memlane records them.
#[wasm_bindgen(js_name = checkPair, unchecked_return_type = "PairCheck")]
#[allow(clippy::too_many_arguments)]
pub fn check_pair(
    from_json: &str,
    to_json: &str,
    old_vectors: &[f32],
    new_vectors: &[f32],
    k: usize,
    mode: Option<String>,
    gates_toml: Option<String>,
) -> Result<JsValue, JsValue> {
    let from: Space = input("the old space", from_json)?;
    let to: Space = input("the new space", to_json)?;
    let mode = match mode.filter(|m| !m.is_empty()) {
        Some(m) => Some(
            serde_json::from_value::<compat::CompatMode>(serde_json::Value::String(m.clone()))
                .map_err(|e| js_error("InvalidInputError", format!("mode `{m}`: {e}")))?,
        ),
        None => None,
    };
    let gates = match gates_toml.filter(|g| !g.trim().is_empty()) {
        Some(text) => gates(&text)?,
        None => vec![],
    };
    let thresholds = compat::ModeThresholds::default();
    let (check, report) = memlane_core::check_pair(
        &from,
        &to,
        old_vectors,
        new_vectors,
        k,
        (mode, &thresholds),
        &gates,
        None,
    )
    .map_err(compat_error)?;
    output(&serde_json::json!({ "check": check, "report": report }))
}

/// Gates from TOML text: a migration file (its `[gates]` table) or the table's body.
fn gates(text: &str) -> Result<Vec<Gate>, JsValue> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e| js_error("MigrationFileError", format!("gates: {e}")))?;
    let table = match doc.get("gates") {
        Some(g) => g.clone(),
        None => toml::Value::Table(doc),
    };
    compat::parse_gates(&table).map_err(compat_error)
}

/// A sample being handed to the module column by column (typed arrays stay typed).
#[wasm_bindgen]
pub struct SampleBuilder {
    inner: Sample,
}

#[wasm_bindgen]
impl SampleBuilder {
    /// A sample of the store described by `snapshot_json`, with these record ids (a JSON
    /// array of strings, row order).
    #[wasm_bindgen(constructor)]
    pub fn new(snapshot_json: &str, ids_json: &str) -> Result<SampleBuilder, JsValue> {
        Ok(SampleBuilder {
            inner: Sample {
                snapshot: input("the store snapshot", snapshot_json)?,
                ids: input("the record ids", ids_json)?,
                vectors: BTreeMap::new(),
                fields: BTreeMap::new(),
            },
        })
    }

    /// Rows in the sample.
    #[wasm_bindgen(getter)]
    pub fn rows(&self) -> usize {
        self.inner.ids.len()
    }

    /// Add a vector column: `rows * dim` values row-major, and optionally one byte per
    /// row, 0 where the row has no vector (its values are then ignored).
    #[wasm_bindgen(js_name = addVectors)]
    pub fn add_vectors(
        &mut self,
        column: &str,
        dim: usize,
        data: Vec<f32>,
        valid: Option<Vec<u8>>,
    ) -> Result<(), JsValue> {
        let rows = self.inner.ids.len();
        if dim == 0 || data.len() != rows * dim {
            return Err(js_error(
                "InvalidInputError",
                format!(
                    "column `{column}`: {} values are not {rows} rows of dimension {dim}",
                    data.len()
                ),
            ));
        }
        let valid = valid.map(|v| v.into_iter().map(|b| b != 0).collect::<Vec<_>>());
        if let Some(v) = &valid
            && v.len() != rows
        {
            return Err(js_error(
                "InvalidInputError",
                format!(
                    "column `{column}`: {} validity flags for {rows} rows",
                    v.len()
                ),
            ));
        }
        self.inner.vectors.insert(
            column.to_owned(),
            VectorColumn {
                dim,
                data,
                valid: valid.unwrap_or_default(),
            },
        );
        Ok(())
    }

    /// Add a metadata column: a JSON array with one value per row.
    #[wasm_bindgen(js_name = addField)]
    pub fn add_field(&mut self, name: &str, values_json: &str) -> Result<(), JsValue> {
        let v: Vec<serde_json::Value> = input(&format!("field `{name}`"), values_json)?;
        if v.len() != self.inner.ids.len() {
            return Err(js_error(
                "InvalidInputError",
                format!(
                    "field `{name}`: {} values for {} rows",
                    v.len(),
                    self.inner.ids.len()
                ),
            ));
        }
        self.inner.fields.insert(name.to_owned(), v);
        Ok(())
    }

    /// Review the pending migrations of `files_json` on this sample: plan and lint, the
    /// compatibility check of each re-embed and truncation with its mode and gates,
    /// invariants, 2-D projections, and an overall verdict. The same answer as
    /// `memlane review SAMPLE FOLDER --json`.
    #[wasm_bindgen(unchecked_return_type = "Review")]
    pub fn review(
        &self,
        files_json: &str,
        options_json: Option<String>,
    ) -> Result<JsValue, JsValue> {
        let (migs, inv) = parse_files(files_json)?;
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Opts {
            k: Option<usize>,
            projection: Option<bool>,
            invariants: Option<String>,
        }
        let o: Opts = match options_json.filter(|s| !s.trim().is_empty()) {
            Some(s) => input("the review options", &s)?,
            None => Opts::default(),
        };
        let mut opts = ReviewOptions {
            invariants: inv,
            ..ReviewOptions::default()
        };
        if let Some(k) = o.k {
            opts.k = k;
        }
        if let Some(p) = o.projection {
            opts.projection = p;
        }
        if let Some(text) = o.invariants {
            opts.invariants
                .extend(parse_invariants(STORE_INVARIANTS, &text).map_err(core_error)?);
        }
        let r = memlane_core::review(&migs, &self.inner, &opts).map_err(core_error)?;
        output(&r)
    }
}

/// Each row projected on the two principal axes of the sample (`[x0, y0, x1, y1, ...]`),
/// rows unit-normalised first under cosine: the picture of a space the page draws.
#[wasm_bindgen(js_name = project2d)]
pub fn project_2d(data: &[f32], dim: usize, metric: Option<String>) -> Result<Vec<f32>, JsValue> {
    let m = Matrix::new(data, dim).map_err(compat_error)?;
    let metric = match metric {
        Some(s) => Metric::parse(&s).map_err(core_error)?,
        None => Metric::Cosine,
    };
    compat::project_2d(&m, metric).map_err(compat_error)
}
