//! The command line as clap types: [`Cli`], its [`Cmd`]s and one argument struct per
//! command, with the arguments several commands share ([`StoreArgs`], [`EmbedderArgs`],
//! [`OutputArgs`], [`EmbedderTimeoutArgs`]) flattened in.
//!
//! A shared argument keeps one name, one type and one parser; where a command words its
//! help differently, the command's struct rewords it with `mut_arg` (the text as clap
//! shows it: without the doc comment's trailing period).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use memlane_store::memlane_core::Space;

/// memlane — versioned, verified migrations for vector stores and agent memory.
///
/// Exit codes: 0 ok, 1 failed, 2 usage error, 3 blocked by lint, chain, gate or invariant,
/// 4 a gate asks for review (`review`).
#[derive(Parser)]
#[command(name = "memlane", version, about, long_about = None)]
pub(crate) struct Cli {
    /// `--json` (global).
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// `--embedder-timeout` (global).
    #[command(flatten)]
    pub(crate) timeout: EmbedderTimeoutArgs,
    /// The command to run.
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

/// How a command shows its result: text, or JSON with `--json` (accepted before or
/// after the command).
#[derive(Args)]
pub(crate) struct OutputArgs {
    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// How long a `cmd:` embedder may take (accepted before or after the command, or from
/// the environment).
#[derive(Args)]
pub(crate) struct EmbedderTimeoutArgs {
    /// Seconds a command, model-process or HTTP embedder may take per batch (or
    /// request) when its own configuration sets none; a `cmd:` or `proc:` model is
    /// killed, an HTTP request retried. Default 300 (HTTP: 60).
    #[arg(long, global = true, env = "MEMLANE_EMBEDDER_TIMEOUT")]
    pub(crate) embedder_timeout: Option<f64>,
}

/// The store a command works on: its path or URI, the first positional argument, and
/// how to reach its object store.
#[derive(Args)]
pub(crate) struct StoreArgs {
    /// Store path or URI (a local path, file://, s3://, gs://, az://).
    pub(crate) store: String,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
}

/// `--storage-option KEY=VALUE`: how to reach an object store, with the keys pylance
/// and lancedb take (`aws_endpoint`, `aws_region`, `allow_http`, `aws_access_key_id`,
/// …); the usual `AWS_*`/`GOOGLE_*`/`AZURE_*` environment is read too.
#[derive(Args)]
pub(crate) struct StorageArgs {
    /// Object-store option KEY=VALUE (repeatable; also MEMLANE_STORAGE_OPTIONS,
    /// comma-separated), e.g. aws_endpoint=http://127.0.0.1:9000.
    #[arg(
        long = "storage-option",
        value_name = "KEY=VALUE",
        env = "MEMLANE_STORAGE_OPTIONS",
        value_delimiter = ','
    )]
    pub(crate) options: Vec<String>,
}

impl StorageArgs {
    /// The options, parsed (a malformed one names itself and the fix).
    pub(crate) fn parse(&self) -> Result<memlane_store::StorageOptions> {
        let mut out = memlane_store::StorageOptions::new();
        for o in &self.options {
            let (k, v) = memlane_store::StorageOptions::parse_pair(o)?;
            out = out.with(k, v);
        }
        Ok(out)
    }
}

impl StoreArgs {
    /// Open the store.
    pub(crate) async fn open(&self) -> Result<memlane_store::Store> {
        Ok(memlane_store::Store::open_with(&self.store, self.storage.parse()?).await?)
    }
}

/// Embedders a command may call: `--embedder NAME=SPEC` (repeatable) and `--embedders
/// FILE`, gathered by `embedders::load`.
#[derive(Args)]
pub(crate) struct EmbedderArgs {
    /// Embedder NAME=SPEC (repeatable): hash:DIM[:SEED] | cmd:COMMAND (one process a
    /// batch) | proc:COMMAND (one model process, JSON lines) | http:URL,model=NAME[,batch=N,concurrency=N,timeout=S,retries=N,rpm=N,tpm=N,key_env=VAR,dimensions=N]
    /// (OpenAI embeddings API).
    #[arg(long = "embedder")]
    pub(crate) embedders: Vec<String>,
    /// A memlane.toml with [embedders.NAME] tables (the migrations folder's own
    /// memlane.toml is read too; flags override both).
    #[arg(long = "embedders", env = "MEMLANE_EMBEDDERS", value_name = "FILE")]
    pub(crate) embedders_file: Option<PathBuf>,
}

/// Parse a `--space NAME:DIM[:METRIC[:normalized]]` argument (a bad one fails the
/// command, exit 1, rather than being a usage error).
pub(crate) fn parse_space(s: &str) -> Result<Space> {
    Space::parse_spec(s).with_context(|| format!("--space `{s}`"))
}

/// The commands, each with its argument struct (its module in `commands` runs it).
#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Create a store (optionally from a JSONL file of records).
    Init(InitArgs),
    /// Abort the in-flight migration (only while it has only added spaces, fields or vectors).
    Abort(AbortArgs),
    /// Drop an inactive space's columns (the contract of a re-embed): `--space NAME`, or
    /// `--due` for the replaced spaces whose `contract_after` retention has passed.
    Contract(ContractArgs),
    /// Insert or update records by id from a JSONL or Arrow IPC file.
    Upsert(UpsertArgs),
    /// Delete the records matching a SQL predicate over the store's fields.
    Delete(DeleteArgs),
    /// Declare an existing vector column (a dataset written by pylance/lancedb) as a space.
    Adopt(AdoptArgs),
    /// Show version, rows, spaces, migrations and lock.
    Status(StatusArgs),
    /// Show what `apply` would do, with lint findings (exit 3 on lint errors or an edited applied migration).
    Plan(PlanArgs),
    /// Lint a migrations folder (against a store, or a fresh one).
    Lint(LintArgs),
    /// Apply pending migrations.
    Apply(ApplyArgs),
    /// Compare two spaces on rows that have vectors in both: neighbourhood overlap and
    /// recall with shuffled baselines, CKA, Procrustes, adapter fit, retrieval on queries.
    Compat(CompatArgs),
    /// List versions with what memlane recorded for each.
    History(HistoryArgs),
    /// Recompute the hash chain and check the recorded state against the data.
    Verify(VerifyArgs),
    /// Check the data: every built-in invariant (ids, vectors of every space, references,
    /// lifecycle, ids preserved and content unchanged against the previous version) plus
    /// the folder's `invariants.toml`; exit 3 when a `fail` check fails. The report is
    /// kept under `_memlane/validate/` so `--history` shows each check over versions.
    Validate(ValidateArgs),
    /// Tag a version (the current one by default), or list tags.
    Tag(TagArgs),
    /// Branches of a store for rehearsals: zero-copy clones beside it
    /// (`<store>.branches/<name>`) that never write inside the store.
    #[command(subcommand)]
    Branch(BranchCmd),
    /// Apply a folder's pending migrations for real on a branch (optionally cut to a
    /// sample), report gates, invariants, context loss, duration and embedder cost, then
    /// delete the branch. The store is not touched. Exit 0 pass, 3 blocked, 4 review.
    Rehearse(RehearseArgs),
    /// Compare two stores (dev vs prod, or a store and a branch): applied migrations,
    /// schema, spaces (identity, fingerprints, the same records' vectors, drift), rows
    /// per kind and scope, records only on one side or changed. Exit 0 same, 4 differ,
    /// 3 incompatible (an applied migration edited, or another model under a space's name).
    Diff(DiffArgs),
    /// The pre-deploy check of a CI job: plan + lint + verify + the review of pending
    /// re-embeds on a sample, one verdict. Writes a Markdown summary to
    /// $GITHUB_STEP_SUMMARY (or --summary FILE) and, under GitHub Actions, error and
    /// warning annotations naming file and line. Exit 0 pass, 3 block, 4 review.
    Ci(CiArgs),
    /// Write a store (every version, its history, tags, indexes, adapters) to one file
    /// with a manifest of blake3 digests; encrypted with a key when given.
    Bundle(BundleArgs),
    /// Restore a bundle into a new store (local or object storage), after checking
    /// every digest; a changed or cut bundle is refused and nothing is written.
    Unbundle(UnbundleArgs),
    /// Print a new random bundle key (64 hex characters) for --key-file / MEMLANE_BUNDLE_KEY.
    BundleKey,
    /// Commit a new version equal to an old one (forward-only restore).
    Restore(RestoreArgs),
    /// Remove a dead holder's migration lock.
    Unlock(UnlockArgs),
    /// Record a deliberate edit of an applied migration.
    Repair(RepairArgs),
    /// Add records from a JSONL or Arrow IPC file.
    Add(AddArgs),
    /// Export records to JSONL or Arrow IPC (by extension).
    Export(ExportArgs),
    /// Write a sample for review outside the store (the browser preview, `memlane
    /// review`): up to N records spread over the store with metadata and vectors, the new
    /// spaces of the folder's pending re-embeds embedded by --embedder, and the store's
    /// snapshot, as an Arrow IPC file.
    ExportSample(ExportSampleArgs),
    /// Review a folder's pending migrations on an exported sample, as the browser preview
    /// does: plan and lint, each re-embed's compatibility check with its mode and gates,
    /// invariants on the sample. Exit 3 when it would block, 4 when a gate asks for review.
    Review(ReviewArgs),
    /// k nearest records to a text (embedded with --embedder, else the space's
    /// remembered embedder) in a space.
    Search(SearchArgs),
    /// Remember the embedder of a space (a name or a hash:/http: spec), so that add,
    /// upsert and search embed with it without being told; checked first against the
    /// space's stored vectors. `--forget` forgets it.
    SetEmbedder(SetEmbedderArgs),
}

/// `memlane init`.
#[derive(Args)]
#[command(mut_arg("embedders", |a| a.help(
    "Embedder for a space's vectors missing from the records: SPACE=hash:DIM | SPACE=cmd:COMMAND"
)))]
pub(crate) struct InitArgs {
    /// The store to create.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Plain vector collection: no agent-memory fields.
    #[arg(long)]
    pub(crate) plain: bool,
    /// Embedding space NAME:DIM[:METRIC[:normalized]] (repeatable; first is active).
    #[arg(long = "space")]
    pub(crate) spaces: Vec<String>,
    /// Records to start with (JSONL); extra keys become metadata fields.
    #[arg(long)]
    pub(crate) from: Option<PathBuf>,
    /// Embedders for vectors missing from `--from`'s records.
    #[command(flatten)]
    pub(crate) embedders: EmbedderArgs,
    /// Rows per Lance fragment (a re-embed commits once per fragment).
    #[arg(long)]
    pub(crate) rows_per_fragment: Option<usize>,
}

/// `memlane abort`.
#[derive(Args)]
pub(crate) struct AbortArgs {
    /// The store whose migration to abort.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Why (recorded in history).
    #[arg(long)]
    pub(crate) reason: String,
}

/// `memlane contract`.
#[derive(Args)]
pub(crate) struct ContractArgs {
    /// The store to contract.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The space to drop.
    #[arg(long, required_unless_present = "due", conflicts_with = "due")]
    pub(crate) space: Option<String>,
    /// Drop every replaced space whose retention has passed (for a cron job).
    #[arg(long)]
    pub(crate) due: bool,
    /// Why (recorded in history).
    #[arg(long, default_value = "contract after re-embed")]
    pub(crate) reason: String,
}

/// `memlane upsert`.
#[derive(Args)]
#[command(mut_arg("embedders", |a| a.help(
    "Embedder for vectors missing from the records: SPACE=hash:DIM | SPACE=cmd:COMMAND"
)))]
pub(crate) struct UpsertArgs {
    /// The store to write to.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Records (.jsonl, .arrow/.ipc/.feather).
    pub(crate) file: PathBuf,
    /// Embedders for vectors missing from the records.
    #[command(flatten)]
    pub(crate) embedders: EmbedderArgs,
}

/// `memlane delete`.
#[derive(Args)]
pub(crate) struct DeleteArgs {
    /// The store to delete from.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// SQL predicate, e.g. `agent_id = 'a1' AND kind = 'message'`.
    #[arg(long = "where")]
    pub(crate) predicate: String,
}

/// `memlane adopt`.
#[derive(Args)]
#[command(mut_arg("store", |a| a.help("Store path (an existing Lance dataset)")))]
pub(crate) struct AdoptArgs {
    /// The dataset to adopt a column of.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Space NAME:DIM[:METRIC[:normalized]].
    #[arg(long)]
    pub(crate) space: String,
    /// The vector column (default `vec_<NAME>`).
    #[arg(long)]
    pub(crate) column: Option<String>,
}

/// `memlane status`.
#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The store to show.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Migrations folder (to count pending migrations).
    pub(crate) migrations: Option<PathBuf>,
}

/// `memlane plan`.
#[derive(Args)]
pub(crate) struct PlanArgs {
    /// The store to plan against.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Migrations folder.
    pub(crate) migrations: PathBuf,
}

/// `memlane lint`.
#[derive(Args)]
pub(crate) struct LintArgs {
    /// Migrations folder.
    pub(crate) migrations: PathBuf,
    /// Store to lint against.
    #[arg(long)]
    pub(crate) store: Option<String>,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
}

/// `memlane apply`.
#[derive(Args)]
pub(crate) struct ApplyArgs {
    /// The store to migrate.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Migrations folder.
    pub(crate) migrations: PathBuf,
    /// Stage and check every step, commit nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Stop after this migration id.
    #[arg(long)]
    pub(crate) to: Option<u32>,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub(crate) yes: bool,
    /// Embedders the migrations' re-embeds name.
    #[command(flatten)]
    pub(crate) embedders: EmbedderArgs,
    /// Approve compatibility gates that ask for review (recorded with who and when).
    #[arg(long, value_name = "REASON")]
    pub(crate) approve: Option<String>,
    /// Serve Prometheus metrics of the running apply at http://ADDR/metrics (rows
    /// embedded, rows/s, lag, phase, commits, conflicts, retries, gate verdicts,
    /// invariant failures); port 0 picks a free port (the address is printed on stderr).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) metrics_addr: Option<String>,
    /// Keep serving the metrics this many seconds after the apply ends, so a scraper
    /// sees the final values.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 0.0,
        requires = "metrics_addr"
    )]
    pub(crate) metrics_linger: f64,
}

/// `memlane compat`.
#[derive(Args)]
#[command(mut_arg("embedders", |a| a.help(
    "Query embedder SPACE=hash:DIM[:SEED] | SPACE=cmd:COMMAND (repeatable)"
)))]
pub(crate) struct CompatArgs {
    /// The store whose spaces to compare.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The old space.
    #[arg(long)]
    pub(crate) from: String,
    /// The new space.
    #[arg(long)]
    pub(crate) to: String,
    /// Rows to sample.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) sample: usize,
    /// Neighbours per row.
    #[arg(long, default_value_t = 10)]
    pub(crate) k: usize,
    /// JSONL of {"query": TEXT, "relevant": [ids]} (needs --embedder for both spaces)
    /// or {"old": [..], "new": [..], "relevant": [ids]} with query vectors.
    #[arg(long)]
    pub(crate) queries: Option<PathBuf>,
    /// Embedders for the text queries of `--queries`.
    #[command(flatten)]
    pub(crate) embedders: EmbedderArgs,
}

/// `memlane history`.
#[derive(Args)]
pub(crate) struct HistoryArgs {
    /// The store whose history to list.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// `memlane verify`.
#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The store to verify.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Migrations folder to compare with.
    pub(crate) migrations: Option<PathBuf>,
}

/// `memlane validate`.
#[derive(Args)]
pub(crate) struct ValidateArgs {
    /// The store to validate.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Migrations folder whose `invariants.toml` to check.
    pub(crate) migrations: Option<PathBuf>,
    /// Version to compare ids and content with (default: the previous one).
    #[arg(long)]
    pub(crate) against: Option<u64>,
    /// Show every recorded check over versions instead of validating.
    #[arg(long)]
    pub(crate) history: bool,
}

/// `memlane tag`.
#[derive(Args)]
pub(crate) struct TagArgs {
    /// The store to tag.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Tag name (omit to list).
    pub(crate) name: Option<String>,
    /// Version to tag.
    #[arg(long)]
    pub(crate) version: Option<u64>,
}

/// `memlane branch ...`.
#[derive(Subcommand)]
pub(crate) enum BranchCmd {
    /// Branch the store (at its latest version, or `--at VERSION`).
    Create(BranchCreateArgs),
    /// List the store's branches.
    List(BranchListArgs),
    /// Delete a branch.
    Delete(BranchNameArgs),
    /// Make a branch's commits the store's (a rehearsed migration, without calling its
    /// models again): its commits are replayed onto the store, which must not have moved
    /// since the branch point; the branch is deleted afterwards unless --keep. A killed
    /// promote is finished by running it again.
    Promote(BranchPromoteArgs),
}

/// `memlane branch promote`.
#[derive(Args)]
pub(crate) struct BranchPromoteArgs {
    /// The store.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Branch name.
    pub(crate) name: String,
    /// Keep the branch after promoting it.
    #[arg(long)]
    pub(crate) keep: bool,
}

/// `memlane branch create`.
#[derive(Args)]
pub(crate) struct BranchCreateArgs {
    /// The store to branch.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Branch name (letters, digits, `.`, `_`, `-`).
    pub(crate) name: String,
    /// Version to branch at (default: the latest).
    #[arg(long)]
    pub(crate) at: Option<u64>,
}

/// `memlane branch list`.
#[derive(Args)]
pub(crate) struct BranchListArgs {
    /// The store.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// `memlane branch delete`.
#[derive(Args)]
pub(crate) struct BranchNameArgs {
    /// The store.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Branch name.
    pub(crate) name: String,
}

/// `memlane rehearse`.
#[derive(Args)]
pub(crate) struct RehearseArgs {
    /// The store to rehearse on (not changed).
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Migrations folder.
    pub(crate) migrations: PathBuf,
    /// Cut the branch to this many evenly spread rows first; the duration and embedder
    /// cost are extrapolated to the whole store.
    #[arg(long)]
    pub(crate) sample: Option<u64>,
    /// Keep the branch afterwards (`memlane branch delete` removes it).
    #[arg(long)]
    pub(crate) keep: bool,
    /// The branch's name (default rehearse-<unix ms>).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Approve gates that ask for review, with a reason (as `apply --approve`).
    #[arg(long)]
    pub(crate) approve: Option<String>,
    /// Apply up to this migration id.
    #[arg(long)]
    pub(crate) to: Option<u32>,
    /// Embedders the migrations name.
    #[command(flatten)]
    pub(crate) embedders: EmbedderArgs,
}

/// `memlane diff`.
#[derive(Args)]
pub(crate) struct DiffArgs {
    /// Store A (path or URI).
    pub(crate) a: String,
    /// Store B.
    pub(crate) b: String,
    /// How to reach them (both sides).
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
}

/// `memlane ci`.
#[derive(Args)]
pub(crate) struct CiArgs {
    /// The store the pipeline deploys to (read only).
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Migrations folder.
    pub(crate) migrations: PathBuf,
    /// Rows sampled for the review of pending re-embeds.
    #[arg(long, default_value_t = memlane_store::CI_SAMPLE_ROWS)]
    pub(crate) sample_rows: usize,
    /// Also write the Markdown summary here (besides $GITHUB_STEP_SUMMARY).
    #[arg(long)]
    pub(crate) summary: Option<PathBuf>,
    /// Embedders the pending re-embeds name (their new spaces are embedded on the sample).
    #[command(flatten)]
    pub(crate) embedders: EmbedderArgs,
}

/// A bundle key: `--key-file FILE` or `MEMLANE_BUNDLE_KEY` (64 hex characters).
#[derive(Args)]
pub(crate) struct BundleKeyArgs {
    /// File holding the bundle key (64 hex characters); else MEMLANE_BUNDLE_KEY.
    #[arg(long)]
    pub(crate) key_file: Option<PathBuf>,
}

/// `memlane bundle`.
#[derive(Args)]
pub(crate) struct BundleArgs {
    /// The store to bundle.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The bundle file to write.
    #[arg(long, short)]
    pub(crate) output: PathBuf,
    /// Encrypt with this key.
    #[command(flatten)]
    pub(crate) key: BundleKeyArgs,
}

/// `memlane unbundle`.
#[derive(Args)]
pub(crate) struct UnbundleArgs {
    /// The bundle file.
    pub(crate) bundle: PathBuf,
    /// Where to restore the store (must not hold one).
    #[command(flatten)]
    pub(crate) dest: StoreArgs,
    /// The key it was encrypted with.
    #[command(flatten)]
    pub(crate) key: BundleKeyArgs,
}

/// `memlane restore`.
#[derive(Args)]
pub(crate) struct RestoreArgs {
    /// The store to restore.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Version number or tag.
    #[arg(long)]
    pub(crate) to: String,
    /// Why (recorded in history).
    #[arg(long)]
    pub(crate) reason: String,
}

/// `memlane unlock`.
#[derive(Args)]
pub(crate) struct UnlockArgs {
    /// The store to unlock.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Required: confirms the holder is dead.
    #[arg(long)]
    pub(crate) force: bool,
    /// Remove the lock even though its holder is alive on this host (it keeps
    /// running: a second migrator could then run beside it).
    #[arg(long, requires = "force")]
    pub(crate) even_if_alive: bool,
}

/// `memlane repair`.
#[derive(Args)]
pub(crate) struct RepairArgs {
    /// The store to repair.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Migrations folder.
    pub(crate) migrations: PathBuf,
    /// Migration id whose current file is accepted.
    #[arg(long)]
    pub(crate) accept: u32,
    /// Why the edit is safe.
    #[arg(long)]
    pub(crate) reason: String,
}

/// `memlane add`.
#[derive(Args)]
#[command(mut_arg("embedders", |a| a.help(
    "Embedder for vectors missing from the records: SPACE=hash:DIM | SPACE=cmd:COMMAND"
)))]
pub(crate) struct AddArgs {
    /// The store to add to.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Records (.jsonl, .arrow/.ipc/.feather).
    pub(crate) file: PathBuf,
    /// Embedders for vectors missing from the records.
    #[command(flatten)]
    pub(crate) embedders: EmbedderArgs,
}

/// `memlane export`.
#[derive(Args)]
pub(crate) struct ExportArgs {
    /// The store to export.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Output file (.jsonl or .arrow).
    #[arg(short, long)]
    pub(crate) output: PathBuf,
}

/// `memlane export-sample`.
#[derive(Args)]
#[command(mut_arg("embedders", |a| a.help(
    "Embedder of a pending re-embed: NAME=hash:DIM[:SEED] | NAME=cmd:COMMAND (repeatable)"
)))]
pub(crate) struct ExportSampleArgs {
    /// The store to sample.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Migrations folder whose pending re-embeds to embed into the sample.
    pub(crate) migrations: Option<PathBuf>,
    /// Records to sample.
    #[arg(long, default_value_t = 2000)]
    pub(crate) rows: usize,
    /// Output file (.arrow).
    #[arg(short, long)]
    pub(crate) output: PathBuf,
    /// Embedders of the pending re-embeds.
    #[command(flatten)]
    pub(crate) embedders: EmbedderArgs,
}

/// `memlane review`.
#[derive(Args)]
pub(crate) struct ReviewArgs {
    /// Sample file written by `memlane export-sample`.
    pub(crate) sample: PathBuf,
    /// Migrations folder.
    pub(crate) migrations: PathBuf,
    /// Neighbours per row when a step does not say.
    #[arg(long, default_value_t = 10)]
    pub(crate) k: usize,
}

/// `memlane search`.
#[derive(Args)]
pub(crate) struct SearchArgs {
    /// The store to search.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Query text.
    pub(crate) text: String,
    /// Embedder spec for the query (hash:DIM[:SEED] | cmd:COMMAND | proc: | http:);
    /// default: the embedder the query space remembers.
    #[arg(long)]
    pub(crate) embedder: Option<String>,
    /// A memlane.toml whose [embedders.NAME] tables the remembered name resolves in.
    #[arg(long = "embedders", env = "MEMLANE_EMBEDDERS", value_name = "FILE")]
    pub(crate) embedders_file: Option<PathBuf>,
    /// Space (default: active).
    #[arg(long)]
    pub(crate) space: Option<String>,
    /// The space whose model embeds the query, when it differs from the searched
    /// one: the query goes through the store's adapter (e.g. new-model queries
    /// against the old space while a re-embed runs).
    #[arg(long)]
    pub(crate) query_space: Option<String>,
    /// Number of hits.
    #[arg(short, default_value_t = 5)]
    pub(crate) k: usize,
    /// Scan every vector instead of using the space's vector index.
    #[arg(long)]
    pub(crate) exact: bool,
    /// IVF partitions probed (default: the index's recorded `nprobes`).
    #[arg(long)]
    pub(crate) nprobes: Option<usize>,
    /// Candidates re-ranked with full vectors, as a multiple of k (default: the index's).
    #[arg(long)]
    pub(crate) refine_factor: Option<u32>,
}

/// `memlane set-embedder`.
#[derive(Args)]
#[command(mut_arg("embedders", |a| a.help(
    "A named embedder NAME=SPEC the reference may name (repeatable)"
)))]
pub(crate) struct SetEmbedderArgs {
    /// The store.
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The space.
    pub(crate) space: String,
    /// What to remember: a name (an [embedders.NAME] table of --embedders FILE, a
    /// --embedder NAME=SPEC flag, a built-in hash name) or a hash:/http: spec.
    #[arg(required_unless_present = "forget", conflicts_with = "forget")]
    pub(crate) reference: Option<String>,
    /// Forget the space's embedder instead.
    #[arg(long)]
    pub(crate) forget: bool,
    /// Embedders the reference may name.
    #[command(flatten)]
    pub(crate) embedders: EmbedderArgs,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
