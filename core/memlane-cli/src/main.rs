//! `memlane`: version and migrate vector stores and agent memory.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod embedders;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use memlane_store::memlane_core::{self, Space, plan::Level};
use memlane_store::{CreateOptions, Progress, Store, StoreError};
use serde_json::json;

/// Exit codes.
const OK: u8 = 0;
const FAILED: u8 = 1;
const USAGE: u8 = 2;
const BLOCKED: u8 = 3;
const NEEDS_REVIEW: u8 = 4;

/// memlane — versioned, verified migrations for vector stores and agent memory.
///
/// Exit codes: 0 ok, 1 failed, 2 usage error, 3 blocked by lint, chain, gate or invariant,
/// 4 a gate asks for review (`review`).
#[derive(Parser)]
#[command(name = "memlane", version, about, long_about = None)]
struct Cli {
    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds a `cmd:` embedder may take per batch before it is killed and the
    /// command fails (the store stays resumable). Default 300.
    #[arg(long, global = true, env = "MEMLANE_EMBEDDER_TIMEOUT")]
    embedder_timeout: Option<f64>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a store (optionally from a JSONL file of records).
    Init {
        /// Store path.
        store: String,
        /// Plain vector collection: no agent-memory fields.
        #[arg(long)]
        plain: bool,
        /// Embedding space NAME:DIM[:METRIC[:normalized]] (repeatable; first is active).
        #[arg(long = "space")]
        spaces: Vec<String>,
        /// Records to start with (JSONL); extra keys become metadata fields.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Embedder for a space's vectors missing from the records: SPACE=hash:DIM | SPACE=cmd:COMMAND.
        #[arg(long = "embedder")]
        embedders: Vec<String>,
        /// Rows per Lance fragment (a re-embed commits once per fragment).
        #[arg(long)]
        rows_per_fragment: Option<usize>,
    },
    /// Abort the in-flight migration (only while it has only added spaces, fields or vectors).
    Abort {
        /// Store path.
        store: String,
        /// Why (recorded in history).
        #[arg(long)]
        reason: String,
    },
    /// Drop an inactive space's columns (the contract of a re-embed): `--space NAME`, or
    /// `--due` for the replaced spaces whose `contract_after` retention has passed.
    Contract {
        /// Store path.
        store: String,
        /// The space to drop.
        #[arg(long, required_unless_present = "due", conflicts_with = "due")]
        space: Option<String>,
        /// Drop every replaced space whose retention has passed (for a cron job).
        #[arg(long)]
        due: bool,
        /// Why (recorded in history).
        #[arg(long, default_value = "contract after re-embed")]
        reason: String,
    },
    /// Insert or update records by id from a JSONL or Arrow IPC file.
    Upsert {
        /// Store path.
        store: String,
        /// Records (.jsonl, .arrow/.ipc/.feather).
        file: PathBuf,
        /// Embedder for vectors missing from the records: SPACE=hash:DIM | SPACE=cmd:COMMAND.
        #[arg(long = "embedder")]
        embedders: Vec<String>,
    },
    /// Delete the records matching a SQL predicate over the store's fields.
    Delete {
        /// Store path.
        store: String,
        /// SQL predicate, e.g. `agent_id = 'a1' AND kind = 'message'`.
        #[arg(long = "where")]
        predicate: String,
    },
    /// Declare an existing vector column (a dataset written by pylance/lancedb) as a space.
    Adopt {
        /// Store path (an existing Lance dataset).
        store: String,
        /// Space NAME:DIM[:METRIC[:normalized]].
        #[arg(long)]
        space: String,
        /// The vector column (default `vec_<NAME>`).
        #[arg(long)]
        column: Option<String>,
    },
    /// Show version, rows, spaces, migrations and lock.
    Status {
        /// Store path.
        store: String,
        /// Migrations folder (to count pending migrations).
        migrations: Option<PathBuf>,
    },
    /// Show what `apply` would do, with lint findings (exit 3 on lint errors or an edited applied migration).
    Plan {
        /// Store path.
        store: String,
        /// Migrations folder.
        migrations: PathBuf,
    },
    /// Lint a migrations folder (against a store, or a fresh one).
    Lint {
        /// Migrations folder.
        migrations: PathBuf,
        /// Store to lint against.
        #[arg(long)]
        store: Option<String>,
    },
    /// Apply pending migrations.
    Apply {
        /// Store path.
        store: String,
        /// Migrations folder.
        migrations: PathBuf,
        /// Stage and check every step, commit nothing.
        #[arg(long)]
        dry_run: bool,
        /// Stop after this migration id.
        #[arg(long)]
        to: Option<u32>,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        /// Embedder NAME=hash:DIM[:SEED] | NAME=cmd:COMMAND (repeatable).
        #[arg(long = "embedder")]
        embedders: Vec<String>,
        /// Approve compatibility gates that ask for review (recorded with who and when).
        #[arg(long, value_name = "REASON")]
        approve: Option<String>,
    },
    /// Compare two spaces on rows that have vectors in both: neighbourhood overlap and
    /// recall with shuffled baselines, CKA, Procrustes, adapter fit, retrieval on queries.
    Compat {
        /// Store path.
        store: String,
        /// The old space.
        #[arg(long)]
        from: String,
        /// The new space.
        #[arg(long)]
        to: String,
        /// Rows to sample.
        #[arg(long, default_value_t = 10_000)]
        sample: usize,
        /// Neighbours per row.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// JSONL of {"query": TEXT, "relevant": [ids]} (needs --embedder for both spaces)
        /// or {"old": [..], "new": [..], "relevant": [ids]} with query vectors.
        #[arg(long)]
        queries: Option<PathBuf>,
        /// Query embedder SPACE=hash:DIM[:SEED] | SPACE=cmd:COMMAND (repeatable).
        #[arg(long = "embedder")]
        embedders: Vec<String>,
    },
    /// List versions with what memlane recorded for each.
    History {
        /// Store path.
        store: String,
    },
    /// Recompute the hash chain and check the recorded state against the data.
    Verify {
        /// Store path.
        store: String,
        /// Migrations folder to compare with.
        migrations: Option<PathBuf>,
    },
    /// Check the data: every built-in invariant (ids, vectors of every space, references,
    /// lifecycle, ids preserved and content unchanged against the previous version) plus
    /// the folder's `invariants.toml`; exit 3 when a `fail` check fails. The report is
    /// kept under `_memlane/validate/` so `--history` shows each check over versions.
    Validate {
        /// Store path.
        store: String,
        /// Migrations folder whose `invariants.toml` to check.
        migrations: Option<PathBuf>,
        /// Version to compare ids and content with (default: the previous one).
        #[arg(long)]
        against: Option<u64>,
        /// Show every recorded check over versions instead of validating.
        #[arg(long)]
        history: bool,
    },
    /// Tag a version (the current one by default), or list tags.
    Tag {
        /// Store path.
        store: String,
        /// Tag name (omit to list).
        name: Option<String>,
        /// Version to tag.
        #[arg(long)]
        version: Option<u64>,
    },
    /// Commit a new version equal to an old one (forward-only restore).
    Restore {
        /// Store path.
        store: String,
        /// Version number or tag.
        #[arg(long)]
        to: String,
        /// Why (recorded in history).
        #[arg(long)]
        reason: String,
    },
    /// Remove a dead holder's migration lock.
    Unlock {
        /// Store path.
        store: String,
        /// Required: confirms the holder is dead.
        #[arg(long)]
        force: bool,
        /// Remove the lock even though its holder is alive on this host (it keeps
        /// running: a second migrator could then run beside it).
        #[arg(long, requires = "force")]
        even_if_alive: bool,
    },
    /// Record a deliberate edit of an applied migration.
    Repair {
        /// Store path.
        store: String,
        /// Migrations folder.
        migrations: PathBuf,
        /// Migration id whose current file is accepted.
        #[arg(long)]
        accept: u32,
        /// Why the edit is safe.
        #[arg(long)]
        reason: String,
    },
    /// Add records from a JSONL or Arrow IPC file.
    Add {
        /// Store path.
        store: String,
        /// Records (.jsonl, .arrow/.ipc/.feather).
        file: PathBuf,
        /// Embedder for vectors missing from the records: SPACE=hash:DIM | SPACE=cmd:COMMAND.
        #[arg(long = "embedder")]
        embedders: Vec<String>,
    },
    /// Export records to JSONL or Arrow IPC (by extension).
    Export {
        /// Store path.
        store: String,
        /// Output file (.jsonl or .arrow).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Write a sample for review outside the store (the browser preview, `memlane
    /// review`): up to N records spread over the store with metadata and vectors, the new
    /// spaces of the folder's pending re-embeds embedded by --embedder, and the store's
    /// snapshot, as an Arrow IPC file.
    ExportSample {
        /// Store path.
        store: String,
        /// Migrations folder whose pending re-embeds to embed into the sample.
        migrations: Option<PathBuf>,
        /// Records to sample.
        #[arg(long, default_value_t = 2000)]
        rows: usize,
        /// Output file (.arrow).
        #[arg(short, long)]
        output: PathBuf,
        /// Embedder of a pending re-embed: NAME=hash:DIM[:SEED] | NAME=cmd:COMMAND (repeatable).
        #[arg(long = "embedder")]
        embedders: Vec<String>,
    },
    /// Review a folder's pending migrations on an exported sample, as the browser preview
    /// does: plan and lint, each re-embed's compatibility check with its mode and gates,
    /// invariants on the sample. Exit 3 when it would block, 4 when a gate asks for review.
    Review {
        /// Sample file written by `memlane export-sample`.
        sample: PathBuf,
        /// Migrations folder.
        migrations: PathBuf,
        /// Neighbours per row when a step does not say.
        #[arg(long, default_value_t = 10)]
        k: usize,
    },
    /// k nearest records to a text (embedded with --embedder) in a space.
    Search {
        /// Store path.
        store: String,
        /// Query text.
        text: String,
        /// Embedder spec for the query (hash:DIM[:SEED] | cmd:COMMAND).
        #[arg(long)]
        embedder: String,
        /// Space (default: active).
        #[arg(long)]
        space: Option<String>,
        /// The space whose model embeds the query, when it differs from the searched
        /// one: the query goes through the store's adapter (e.g. new-model queries
        /// against the old space while a re-embed runs).
        #[arg(long)]
        query_space: Option<String>,
        /// Number of hits.
        #[arg(short, default_value_t = 5)]
        k: usize,
    },
}

/// Read a queries file for `memlane compat`: each line `{"query": TEXT, "relevant": [ids]}`
/// (embedded with `--embedder SPACE=SPEC` for both spaces) or
/// `{"old": [..], "new": [..], "relevant": [ids]}`.
fn read_queries(
    path: &std::path::Path,
    old: &Space,
    new: &Space,
    specs: &[String],
) -> Result<memlane_store::Queries> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let emb = embedders::parse_all(specs)?;
    let mut q = memlane_store::Queries {
        old: vec![],
        new: vec![],
        relevant: vec![],
    };
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line).with_context(at)?;
        let relevant: Vec<String> = serde_json::from_value(v["relevant"].clone())
            .with_context(|| format!("{}: `relevant` must be a list of record ids", at()))?;
        let vec_of = |space: &Space, key: &str| -> Result<Vec<f32>> {
            if let Some(a) = v.get(key).filter(|a| a.is_array()) {
                return serde_json::from_value(a.clone())
                    .with_context(|| format!("{}: `{key}` must be a list of numbers", at()));
            }
            let t = v["query"]
                .as_str()
                .with_context(|| format!("{}: give `query` (text) or `{key}` (a vector)", at()))?;
            let e = emb.get(&space.name).with_context(|| {
                format!(
                    "{}: query text needs an embedder for space `{}` (--embedder {}=SPEC)",
                    at(),
                    space.name,
                    space.name
                )
            })?;
            e.embed(&[&format!("{}{t}", space.query_prefix)])
                .map_err(|err| anyhow!("{}: query embedder failed: {err}", at()))
        };
        let (o, n) = (vec_of(old, "old")?, vec_of(new, "new")?);
        if o.len() != old.dimension || n.len() != new.dimension {
            bail!(
                "{}: query vectors must be {}-d (old) and {}-d (new), got {} and {}",
                at(),
                old.dimension,
                new.dimension,
                o.len(),
                n.len()
            );
        }
        q.old.extend(o);
        q.new.extend(n);
        q.relevant.push(relevant);
    }
    Ok(q)
}

/// Spaces for JSON output: a fingerprint is summarised (its vectors are noise here).
fn spaces_json(spaces: &[Space]) -> Vec<serde_json::Value> {
    spaces
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            if let (Some(o), Some(fp)) = (v.as_object_mut(), &s.fingerprint) {
                o.insert(
                    "fingerprint".into(),
                    json!({"canaries": fp.texts.len(), "tolerance": memlane_core::compat::DEFAULT_TOLERANCE}),
                );
            }
            v
        })
        .collect()
}

fn parse_space(s: &str) -> Result<Space> {
    Space::parse_spec(s).with_context(|| format!("--space `{s}`"))
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn progress_bar() -> Option<memlane_store::ProgressFn> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:40} [{bar:30}] {pos}/{len} rows ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    Some(Arc::new(move |p: &Progress| {
        bar.set_length(p.total);
        bar.set_message(format!(
            "{:04} step {}/{} {}",
            p.migration,
            p.step + 1,
            p.steps,
            p.op
        ));
        bar.set_position(p.done);
        if p.done >= p.total {
            bar.println(format!(
                "  {:04} step {}/{} {} done ({} rows)",
                p.migration,
                p.step + 1,
                p.steps,
                p.op,
                p.total
            ));
        }
    }))
}

fn resolve_embedders(
    given: &[String],
    files: &[memlane_core::Migration],
) -> Result<HashMap<String, Arc<dyn memlane_store::Embedder>>> {
    let mut e = embedders::parse_all(given)?;
    // every embedder the folder names (applied migrations too: apply catches up a
    // completed re-embed of the active space)
    let names = files
        .iter()
        .flat_map(|m| &m.steps)
        .filter_map(|s| match &s.step {
            memlane_core::Step::Reembed { embedder, .. } => Some(embedder),
            _ => None,
        });
    for name in names {
        if !e.contains_key(name)
            && let Some(h) = memlane_store::HashEmbedder::from_name(name)
        {
            e.insert(name.clone(), h.arc());
        }
    }
    Ok(e)
}

async fn run(cli: Cli) -> Result<u8> {
    let json = cli.json;
    embedders::set_timeout(cli.embedder_timeout)?;
    match cli.cmd {
        Cmd::Init {
            store,
            plain,
            spaces,
            from,
            embedders,
            rows_per_fragment,
        } => {
            let spaces = spaces
                .iter()
                .map(|s| parse_space(s))
                .collect::<Result<Vec<_>>>()?;
            let opts = CreateOptions {
                plain,
                spaces,
                fields: vec![],
                rows_per_fragment,
            };
            let emb = embedders::parse_all(&embedders)?;
            let mut st = match &from {
                Some(f) => {
                    Store::create_from_json(&store, opts, &memlane_store::read_jsonl(f)?, &emb)
                        .await?
                }
                None => Store::create(&store, opts, None, &emb).await?,
            };
            st.refresh().await?;
            let rows = st.count().await?;
            if json {
                print_json(
                    &json!({"store": store, "version": st.version(), "rows": rows, "spaces": spaces_json(&st.state().spaces)}),
                )?;
            } else {
                println!(
                    "created store {store} at version {} with {rows} rows",
                    st.version()
                );
            }
        }
        Cmd::Adopt {
            store,
            space,
            column,
        } => {
            let mut sp = parse_space(&space)?;
            if let Some(c) = column {
                sp.column = c;
            }
            let mut st = Store::open(&store).await?;
            let v = st.adopt(sp.clone()).await?;
            if json {
                print_json(&json!({"version": v, "space": sp}))?;
            } else {
                println!(
                    "adopted column `{}` as space {} at version {v}",
                    sp.column,
                    sp.identity()
                );
            }
        }
        Cmd::Status { store, migrations } => {
            let st = Store::open(&store).await?;
            let snap = st.snapshot().await?;
            let lock = memlane_store::lock::read_lock(&store);
            // a folder that disagrees with history is reported, not fatal, here
            let pending: Option<Result<usize, String>> = match &migrations {
                Some(dir) => Some(match memlane_store::read_folder(dir) {
                    Ok(files) => st
                        .plan(&files)
                        .await
                        .map(|p| p.migrations.len())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }),
                None => None,
            };
            if json {
                print_json(&json!({
                    "store": store, "version": snap.version, "rows": snap.rows,
                    "spaces": spaces_json(&snap.state.spaces), "active_space": snap.state.active_space,
                    "applied": snap.state.applied, "in_flight": snap.state.in_flight,
                    "pending_contracts": snap.state.pending_contracts,
                    "pending": pending.as_ref().and_then(|p| p.as_ref().ok()),
                    "pending_error": pending.as_ref().and_then(|p| p.as_ref().err()),
                    "lock": lock, "fields": snap.fields,
                }))?;
            } else {
                println!("store    {store}");
                println!("version  {}   rows {}", snap.version, snap.rows);
                for s in &snap.state.spaces {
                    let mark = if snap.state.active_space.as_deref() == Some(s.name.as_str()) {
                        "*"
                    } else {
                        " "
                    };
                    println!("space  {mark} {}", s.identity());
                }
                if snap.state.spaces.is_empty() {
                    println!("spaces   none");
                }
                match snap.state.applied.last() {
                    Some(a) => println!(
                        "applied  {} migration(s), last {} at {}",
                        snap.state.applied.len(),
                        a.file,
                        a.applied_at
                    ),
                    None => println!("applied  none"),
                }
                if let Some(cp) = snap
                    .state
                    .in_flight
                    .as_ref()
                    .and_then(|f| f.checkpoint.clone())
                    .and_then(|c| serde_json::from_value::<memlane_store::Checkpoint>(c).ok())
                {
                    let eta = cp.eta_secs().map_or("?".to_owned(), |s| format!("{s:.0}s"));
                    println!(
                        "RE-EMBED {} of `{}`: {:.1}% ({} of {} rows current), {} embedded, {:.0} rows/s, ETA {eta}, lag {} rows",
                        cp.phase,
                        cp.space,
                        cp.percent(),
                        cp.total - cp.remaining.min(cp.total),
                        cp.total,
                        cp.embedded,
                        cp.rows_per_sec,
                        cp.remaining
                    );
                }
                if let Some(f) = &snap.state.in_flight {
                    println!(
                        "IN FLIGHT {} — {}/{} steps committed; `memlane apply` resumes it",
                        f.file, f.steps_done, f.steps_total
                    );
                }
                match pending {
                    Some(Ok(p)) => println!("pending  {p} migration(s)"),
                    Some(Err(e)) => println!("pending  REFUSED: {e}"),
                    None => {}
                }
                for p in &snap.state.pending_contracts {
                    println!(
                        "contract `{}` after {} (retention {} of migration {:04})",
                        p.space, p.due, p.retention, p.migration
                    );
                }
                if let Some(l) = lock {
                    println!(
                        "LOCKED   by {} (pid {} on {}), lease until {}",
                        l.holder,
                        l.pid,
                        l.host,
                        l.expires.to_rfc3339()
                    );
                }
            }
        }
        Cmd::Plan { store, migrations } => {
            let st = Store::open(&store).await?;
            let plan = st.plan(&memlane_store::read_folder(&migrations)?).await?;
            if json {
                print_json(&plan)?;
            } else {
                println!("{plan}");
            }
            if plan.errors().next().is_some() {
                return Ok(BLOCKED);
            }
        }
        Cmd::Lint { migrations, store } => {
            let files = memlane_store::read_folder(&migrations)?;
            let plan = match &store {
                Some(s) => Store::open(s).await?.plan(&files).await?,
                None => Store::lint_fresh(&files)?,
            };
            if json {
                print_json(&plan.findings)?;
            } else {
                for f in &plan.findings {
                    println!("{f}");
                }
                let e = plan
                    .findings
                    .iter()
                    .filter(|f| f.level == Level::Error)
                    .count();
                println!(
                    "{} file(s): {e} error(s), {} warning(s)",
                    files.len(),
                    plan.findings.len() - e
                );
            }
            if plan.errors().next().is_some() {
                return Ok(BLOCKED);
            }
        }
        Cmd::Apply {
            store,
            migrations,
            dry_run,
            to,
            yes,
            embedders,
            approve,
        } => {
            let mut st = Store::open(&store).await?;
            let files = memlane_store::read_folder(&migrations)?;
            let plan = st.plan(&files).await?;
            if !json {
                println!("{plan}");
            }
            if plan.errors().next().is_some() {
                if json {
                    print_json(&plan)?;
                }
                return Ok(BLOCKED);
            }
            if plan.is_empty()
                && !files.iter().any(|m| {
                    m.steps
                        .iter()
                        .any(|s| matches!(s.step, memlane_core::Step::Reembed { .. }))
                })
            {
                if json {
                    print_json(&memlane_core::ApplyReport {
                        version_before: st.version(),
                        version_after: st.version(),
                        ..Default::default()
                    })?;
                }
                return Ok(OK);
            }
            if !dry_run && !yes && !plan.is_empty() {
                if !std::io::stdin().is_terminal() {
                    eprintln!("apply needs confirmation: pass --yes (or --dry-run to only check)");
                    return Ok(USAGE);
                }
                eprint!(
                    "apply {} migration(s) to {store}? [y/N] ",
                    plan.migrations.len()
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    eprintln!("nothing applied");
                    return Ok(FAILED);
                }
            }
            let emb = resolve_embedders(&embedders, &files)?;
            let mut m = st
                .migrator(files)
                .invariants(memlane_store::read_invariants(&migrations)?)
                .dry_run(dry_run)
                .to(to)
                .approve(approve)
                .holder(format!(
                    "memlane apply ({})",
                    std::env::var("USER").unwrap_or_default()
                ));
            for (name, e) in emb {
                m = m.embedder(name, e);
            }
            if let Some(p) = progress_bar() {
                m = m.progress(p);
            }
            match m.apply().await {
                Ok(report) => {
                    if json {
                        print_json(&report)?;
                    } else {
                        println!("{report}");
                    }
                }
                Err(StoreError::InvariantViolation { report, .. }) if json => {
                    print_json(&report)?;
                    return Ok(BLOCKED);
                }
                Err(
                    StoreError::GateBlocked { check, .. }
                    | StoreError::ReviewRequired { check, .. },
                ) if json => {
                    print_json(&check)?;
                    return Ok(BLOCKED);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Cmd::Compat {
            store,
            from,
            to,
            sample,
            k,
            queries,
            embedders,
        } => {
            let st = Store::open(&store).await?;
            let (old, new) = (st.space(Some(&from))?.clone(), st.space(Some(&to))?.clone());
            let paired = st.paired_sample(&from, &to, sample).await?;
            let needed = memlane_core::compat::min_sample_rows(k);
            if paired.ids.len() < needed {
                bail!(
                    "only {} rows have vectors in both `{from}` and `{to}`; compat needs at least {needed} (run or resume the re-embed first, or lower --k)",
                    paired.ids.len()
                );
            }
            let q = match &queries {
                None => None,
                Some(path) => Some(read_queries(path, &old, &new, &embedders)?),
            };
            let report = memlane_store::compat_report(&paired, &old, &new, k, q.as_ref())?;
            if json {
                print_json(&report)?;
            } else {
                println!("{report}");
            }
        }
        Cmd::History { store } => {
            let st = Store::open(&store).await?;
            let h = st.history().await?;
            if json {
                print_json(&h)?;
            } else {
                for item in &h {
                    let what = match &item.entry {
                        None => format!("{} (not by memlane)", item.operation),
                        Some(e) => e.to_string(),
                    };
                    let tags = if item.tags.is_empty() {
                        String::new()
                    } else {
                        format!("  [{}]", item.tags.join(", "))
                    };
                    println!("v{:<4} {}  {what}{tags}", item.version, item.timestamp);
                }
            }
        }
        Cmd::Verify { store, migrations } => {
            let st = Store::open(&store).await?;
            let files = migrations
                .as_ref()
                .map(memlane_store::read_folder)
                .transpose()?;
            let r = st.verify(files.as_deref()).await?;
            if json {
                print_json(&r)?;
            } else {
                println!("{r}");
            }
            if !r.ok() {
                return Ok(BLOCKED);
            }
        }
        Cmd::Validate {
            store,
            migrations,
            against,
            history,
        } => {
            let st = Store::open(&store).await?;
            if history {
                let rows = st.validate_history().await?;
                if json {
                    print_json(&rows)?;
                } else {
                    println!(
                        "{:>8}  {:<10}  {:<34} {:>9} {:>9}  result",
                        "version", "source", "check", "failed", "rows"
                    );
                    for r in &rows {
                        println!(
                            "{:>8}  {:<10}  {:<34} {:>9} {:>9}  {}",
                            r.version,
                            r.source,
                            r.check,
                            r.failed,
                            r.total,
                            if r.passed {
                                "pass"
                            } else {
                                r.severity.as_str()
                            }
                        );
                    }
                }
                return Ok(OK);
            }
            let specs = match &migrations {
                Some(d) => memlane_store::read_invariants(d)?,
                None => vec![],
            };
            let r = st.validate(&specs, against).await?;
            st.record_validation(&r)?;
            if json {
                print_json(&json!({"ok": r.ok(), "report": r}))?;
            } else {
                print!("{r}");
            }
            if !r.ok() {
                return Ok(BLOCKED);
            }
        }
        Cmd::Tag {
            store,
            name,
            version,
        } => {
            let st = Store::open(&store).await?;
            match name {
                Some(n) => {
                    let v = st.tag(&n, version).await?;
                    if json {
                        print_json(&json!({"tag": n, "version": v}))?;
                    } else {
                        println!("tagged version {v} as {n}");
                    }
                }
                None => {
                    let tags = st.tags().await?;
                    if json {
                        print_json(&tags)?;
                    } else {
                        for (n, v) in tags {
                            println!("{v:>6}  {n}");
                        }
                    }
                }
            }
        }
        Cmd::Restore { store, to, reason } => {
            let mut st = Store::open(&store).await?;
            let v = st.restore(&to, &reason).await?;
            if json {
                print_json(&json!({"version": v, "restored_from": to}))?;
            } else {
                println!(
                    "restored {to} as new version {v} ({} rows)",
                    st.count().await?
                );
            }
        }
        Cmd::Unlock {
            store,
            force,
            even_if_alive,
        } => {
            if !force {
                eprintln!(
                    "unlock removes another process's lock; make sure it is dead, then pass --force"
                );
                return Ok(USAGE);
            }
            let removed = memlane_store::lock::force_unlock(&store, even_if_alive)?;
            if json {
                print_json(&json!({ "removed": removed }))?;
            } else {
                match removed {
                    Some(l) => {
                        println!("removed lock of {} (pid {} on {})", l.holder, l.pid, l.host);
                    }
                    None => println!("no lock held"),
                }
            }
        }
        Cmd::Repair {
            store,
            migrations,
            accept,
            reason,
        } => {
            let mut st = Store::open(&store).await?;
            let v = st
                .repair(&memlane_store::read_folder(&migrations)?, accept, &reason)
                .await?;
            if json {
                print_json(&json!({"version": v, "accepted": accept}))?;
            } else {
                println!("accepted the current file of migration {accept:04} at version {v}");
            }
        }
        Cmd::Abort { store, reason } => {
            let mut st = Store::open(&store).await?;
            let v = st.abort(&reason).await?;
            if json {
                print_json(&json!({"version": v}))?;
            } else {
                println!(
                    "aborted the in-flight migration at version {v}; the store is as before it"
                );
            }
        }
        Cmd::Contract {
            store,
            space,
            due,
            reason,
        } => {
            let mut st = Store::open(&store).await?;
            let dropped: Vec<(String, u64)> = match space {
                Some(space) if !due => {
                    let v = st.contract(&space, &reason).await?;
                    vec![(space, v)]
                }
                _ => st.contract_due().await?,
            };
            if json {
                print_json(&json!({
                    "dropped": dropped.iter().map(|(s, v)| json!({"space": s, "version": v})).collect::<Vec<_>>(),
                    "pending": st.state().pending_contracts,
                }))?;
            } else {
                for (space, v) in &dropped {
                    println!("dropped space {space} at version {v}");
                }
                if dropped.is_empty() {
                    println!("no space is due for contraction");
                }
                for p in &st.state().pending_contracts {
                    println!(
                        "pending: `{}` is kept until {} ({})",
                        p.space, p.due, p.retention
                    );
                }
            }
        }
        Cmd::Upsert {
            store,
            file,
            embedders,
        } => {
            let mut st = Store::open(&store).await?;
            let emb = embedders::parse_all(&embedders)?;
            let r = st.upsert(st.load_records(&file)?, &emb).await?;
            if json {
                print_json(&r)?;
            } else {
                println!(
                    "{} inserted, {} updated at version {}",
                    r.inserted, r.updated, r.version
                );
            }
        }
        Cmd::Delete { store, predicate } => {
            let mut st = Store::open(&store).await?;
            let (n, v) = st.delete(&predicate).await?;
            if json {
                print_json(&json!({"deleted": n, "version": v}))?;
            } else {
                println!("deleted {n} records at version {v}");
            }
        }
        Cmd::Add {
            store,
            file,
            embedders,
        } => {
            let mut st = Store::open(&store).await?;
            let emb = embedders::parse_all(&embedders)?;
            let r = st.add(st.load_records(&file)?, &emb).await?;
            if json {
                print_json(&r)?;
            } else {
                println!(
                    "added {} records ({} -> {} rows) at version {}",
                    r.added, r.rows_before, r.rows_after, r.version
                );
            }
        }
        Cmd::Export { store, output } => {
            let st = Store::open(&store).await?;
            let ext = output.extension().and_then(|e| e.to_str()).unwrap_or("");
            let n = if ext == "jsonl" || ext == "json" {
                memlane_store::export_jsonl(&st, &output).await?
            } else {
                memlane_store::export_ipc(&st, &output).await?
            };
            if json {
                print_json(&json!({"rows": n, "output": output}))?;
            } else {
                println!("exported {n} records to {}", output.display());
            }
        }
        Cmd::ExportSample {
            store,
            migrations,
            rows,
            output,
            embedders,
        } => {
            let st = Store::open(&store).await?;
            let files = match &migrations {
                Some(d) => Some(memlane_store::read_folder(d)?),
                None => None,
            };
            let emb = embedders::parse_all(&embedders)?;
            let info = st
                .export_sample(&output, rows, files.as_deref(), &emb)
                .await?;
            if json {
                print_json(&json!({"output": output, "sample": info}))?;
            } else {
                println!("{info}\nwrote {}", output.display());
            }
        }
        Cmd::Review {
            sample,
            migrations,
            k,
        } => {
            let r = memlane_store::review_sample(&sample, &migrations, k)?;
            if json {
                print_json(&r)?;
            } else {
                print!("{r}");
            }
            return Ok(match r.verdict {
                memlane_core::Verdict::Block => BLOCKED,
                memlane_core::Verdict::Review => NEEDS_REVIEW,
                memlane_core::Verdict::Pass => OK,
            });
        }
        Cmd::Search {
            store,
            text,
            embedder,
            space,
            query_space,
            k,
        } => {
            let st = Store::open(&store).await?;
            let e = embedders::parse_spec(&embedder)?;
            let sp = st.space(space.as_deref())?.clone();
            let qsp = st
                .space(Some(query_space.as_deref().unwrap_or(&sp.name)))?
                .clone();
            let q = e
                .embed(&[&format!("{}{text}", qsp.query_prefix)])
                .map_err(|err| anyhow!("query embedder failed: {err}"))?;
            let hits = st
                .search_adapted(Some(&sp.name), &qsp.name, &q, k, None)
                .await?;
            let (with, total) = st.coverage(Some(&sp.name)).await?;
            if json {
                print_json(
                    &json!({"space": sp.name, "coverage": {"rows_with_vector": with, "rows": total}, "hits": hits}),
                )?;
            } else {
                if with < total {
                    println!(
                        "space {}: covers {with} of {total} rows (a re-embed is filling it)",
                        sp.name
                    );
                }
                for h in hits {
                    let c = h.content.unwrap_or_default();
                    let c: String = c.chars().take(90).collect();
                    println!("{:.4}  {:<40} {c}", h.distance, h.id);
                }
            }
        }
    }
    Ok(OK)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE } else { OK });
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(FAILED);
        }
    };
    let json = cli.json;
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // the exit code comes from the library's one classification of errors
            let kind = e
                .downcast_ref::<StoreError>()
                .map(StoreError::kind)
                .or_else(|| {
                    e.downcast_ref::<memlane_core::CoreError>()
                        .map(memlane_core::CoreError::kind)
                });
            let blocked = kind.is_some_and(|k| k.exit_code() == BLOCKED);
            // print the cause chain, skipping causes already quoted by their wrapper
            let mut msg = String::new();
            for cause in e.chain() {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&c);
                }
            }
            let code = if blocked { BLOCKED } else { FAILED };
            if json {
                println!("{}", json!({"error": msg, "exit_code": code}));
            }
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}
