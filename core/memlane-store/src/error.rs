//! Errors of the store.

use memlane_core::{CoreError, ErrorKind, StepReport};
use thiserror::Error;

/// Everything that can go wrong in the store and migrator.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A pure-core error (migration files, chain, lint, vectors).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Lance failed (shown without Lance's source locations).
    #[error("lance: {}", lance_message(.0))]
    Lance(#[from] lance::Error),
    /// memlane's record of the store (state, history, seals, manifests) was edited or is
    /// missing a part: mutations are refused until it is repaired.
    #[error("the store's record is broken at version {version}: {problem}; {fix}")]
    Integrity {
        /// The newest version whose record is broken.
        version: u64,
        /// What is wrong.
        problem: String,
        /// How to repair it.
        fix: String,
    },
    /// A write kept being preempted by concurrent commits, or a concurrent commit made
    /// it impossible.
    #[error(
        "{what} could not be committed: {message} (after {retries} retries); the store is unchanged, run it again"
    )]
    Conflict {
        /// The write (`add`, `upsert`, `delete`).
        what: String,
        /// Retries made.
        retries: u32,
        /// The last conflict.
        message: String,
    },
    /// A re-embed keeps finding new work: writers change rows faster than it embeds.
    #[error(
        "the re-embed into `{space}` does not converge after {passes} passes: writers change rows faster than the embedder keeps up; throttle the writers or raise the batch size, then run apply again (it resumes)"
    )]
    NotConverging {
        /// Target space.
        space: String,
        /// Passes made.
        passes: u32,
    },
    /// The operation does not fit the store's current state (e.g. abort with nothing
    /// in flight, contract of the active space); the message names the way forward.
    #[error("{0}")]
    State(String),
    /// The object store under the store failed to read or write a file.
    #[error("{path}: {message}")]
    Storage {
        /// The file (relative to the store).
        path: String,
        /// What failed.
        message: String,
    },
    /// A bug in memlane (an internal state that should not happen).
    #[error("internal error (please report it): {0}")]
    Internal(String),
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// No store at the URI.
    #[error("no memlane store at `{uri}`; create one with `memlane init {uri}`")]
    NotFound {
        /// Store URI.
        uri: String,
    },
    /// A store already exists at the URI.
    #[error("a store already exists at `{uri}`; open it instead, or pick another path")]
    Exists {
        /// Store URI.
        uri: String,
    },
    /// Another process holds the migration lock.
    #[error(
        "store is locked by {holder} (pid {pid} on {host}) since {since}, lease until {expires}; wait for it to finish, or if that process is dead run `memlane unlock --force {uri}`"
    )]
    LockHeld {
        /// Store URI.
        uri: String,
        /// Holder description.
        holder: String,
        /// Holder's host.
        host: String,
        /// Holder's pid.
        pid: u32,
        /// When the lock was taken.
        since: String,
        /// When the lease expires.
        expires: String,
    },
    /// `unlock --force` on a lock whose holder is alive on this host.
    #[error(
        "the lock of {uri} is held by {holder} (pid {pid}), which is alive on this host; stop that process first (removing its lock would let a second migrator run beside it), or pass --even-if-alive"
    )]
    LockAlive {
        /// Store URI.
        uri: String,
        /// Holder description.
        holder: String,
        /// Holder's pid.
        pid: u32,
    },
    /// The store's backend cannot take the migration lock safely.
    #[error(
        "cannot lock {uri} for a migration: {reason}; migrating without a lock could let two migrators overwrite each other. Use a backend with conditional writes (local disk, S3, GCS, Azure, MinIO or another S3-compatible server that honours `If-None-Match`)"
    )]
    LockUnsupported {
        /// The lock file.
        uri: String,
        /// What the backend lacks.
        reason: String,
    },
    /// The path exists but is not a store.
    #[error(
        "`{uri}` is not a memlane store ({reason}); pass the directory of a store, or create one with `memlane init`"
    )]
    NotAStore {
        /// The path given.
        uri: String,
        /// What it is.
        reason: String,
    },
    /// Records given to `add` (or an import) are not acceptable.
    #[error("{0}")]
    Input(String),
    /// An invariant failed: the step was not committed.
    #[error(
        "invariant failed in {file} step {step} ({op}); the step was not committed:\n{details}"
    )]
    InvariantViolation {
        /// Migration file.
        file: String,
        /// 1-based step.
        step: usize,
        /// Op name.
        op: String,
        /// Rendered failures.
        details: String,
        /// The full report.
        report: Box<StepReport>,
    },
    /// The host did not supply an embedder a migration needs.
    #[error(
        "migration `{file}` needs embedder `{name}`, which was not supplied; pass it (CLI: `--embedder {name}=SPEC` or a `[embedders.{name}]` table in the folder's memlane.toml; Python: `embedders={{\"{name}\": model}}`; Rust: `Migrator::embedder`)"
    )]
    MissingEmbedder {
        /// Migration file.
        file: String,
        /// Embedder name.
        name: String,
    },
    /// A space remembers an embedder this session cannot resolve (see
    /// [`crate::embed::remembered`]).
    #[error(
        "{}space `{space}` remembers embedder `{reference}`, which this session does not have{}; declare it (a `[embedders.{reference}]` table in a memlane.toml given with --embedders FILE or MEMLANE_EMBEDDERS; Python `memlane.register_embedder(\"{reference}\", model)`; Rust `Store::register_embedders`) or give one for `{space}` (CLI `--embedder {space}=SPEC`, Python `embedders={{\"{space}\": model}}`)",
        record.as_ref().map(|r| format!("record `{r}` has no vector: ")).unwrap_or_default(),
        if why.is_empty() { String::new() } else { format!(" ({why})") }
    )]
    UnresolvedEmbedder {
        /// The space.
        space: String,
        /// What it remembers.
        reference: String,
        /// The record that needed it, when a write did.
        record: Option<String>,
        /// Why it could not be made here (empty: the name is unknown here).
        why: String,
    },
    /// A bundle failed its checks; nothing was written.
    #[error(
        "bundle {file} is refused: {problem}; nothing was written: copy the bundle again from its source (or give the key it was made with)"
    )]
    BadBundle {
        /// The bundle file.
        file: String,
        /// What is wrong, naming the part.
        problem: String,
    },
    /// An embedder's configuration (a `--embedder` form or a `memlane.toml` table) is wrong.
    #[error("embedder configuration at {at}: {message}")]
    EmbedderConfig {
        /// Where: the file and line and table, or the flag.
        at: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An embedder failed or returned unusable output.
    #[error(
        "embedder `{name}` failed on batch {batch} (first record `{first_id}`): {message}; nothing of that batch was written: fix the embedder and run the same write or apply again (an apply resumes)"
    )]
    Embedder {
        /// Embedder name.
        name: String,
        /// 0-based batch index.
        batch: usize,
        /// First record id of the batch.
        first_id: String,
        /// What went wrong.
        message: String,
    },
    /// Workers failed on a fragment of a distributed backfill as often as allowed.
    #[error(
        "fragment {fragment} failed on {attempts} tries (last on worker `{worker}`): {message}; the fragments committed so far stay committed, fix the cause and run apply again (it resumes)"
    )]
    Worker {
        /// Fragment id.
        fragment: u64,
        /// Tries made.
        attempts: u32,
        /// The worker of the last try.
        worker: String,
        /// The last failure.
        message: String,
    },
    /// The fragment executor of a distributed backfill failed as a whole (its workers
    /// are gone, it cannot reach its cluster).
    #[error(
        "the workers of embedder `{embedder}` failed: {message}; the fragments committed so far stay committed, fix the cluster and run apply again (it resumes)"
    )]
    Executor {
        /// The embedder whose executor failed.
        embedder: String,
        /// What it said.
        message: String,
    },
    /// A space name that the store does not have.
    #[error("space `{name}` does not exist in this store (spaces: {known})")]
    UnknownSpace {
        /// Requested space.
        name: String,
        /// Known spaces.
        known: String,
    },
    /// A version or tag that the store does not have.
    #[error("version or tag `{0}` does not exist; `memlane history` lists versions and tags")]
    UnknownVersion(String),
    /// A recorded state does not match the data.
    #[error("verification failed:\n{0}")]
    Verify(String),
    /// An embedder does not reproduce the fingerprint recorded for its space: another
    /// model (or runtime) behind the same name.
    #[error(
        "model drift: embedder `{embedder}` for space `{space}` does not reproduce its fingerprint (worst canary cosine {cosine:.3}, on {canary:?}); the space was built with {identity}. Use that model, or declare a new space (add_space) and reembed into it"
    )]
    ModelDrift {
        /// Space.
        space: String,
        /// Embedder name.
        embedder: String,
        /// The space's model identity.
        identity: String,
        /// Worst canary cosine.
        cosine: f64,
        /// The canary text it was worst on.
        canary: String,
    },
    /// A re-embed's compatibility check blocks (a gate, or the declared mode): nothing
    /// was backfilled or completed.
    #[error("{file}: compatibility check blocks the re-embed; nothing was committed:\n{details}")]
    GateBlocked {
        /// Migration file.
        file: String,
        /// Rendered check.
        details: String,
        /// The check.
        check: Box<memlane_core::CompatCheck>,
    },
    /// A re-embed's gates ask for review and no approval was given.
    #[error(
        "{file}: compatibility check asks for review; nothing was committed. Look at the metrics below and re-run with `--approve \"REASON\"` (API: `.approve(reason)`) to go ahead:\n{details}"
    )]
    ReviewRequired {
        /// Migration file.
        file: String,
        /// Rendered check.
        details: String,
        /// The check.
        check: Box<memlane_core::CompatCheck>,
    },
    /// No adapter maps queries of one space into another.
    #[error(
        "no adapter maps `{from}` queries into space `{to}` (adapters: {known}); a re-embed fits one in its compatibility check when one retains enough recall; otherwise search `{from}` itself"
    )]
    NoAdapter {
        /// Query space.
        from: String,
        /// Searched space.
        to: String,
        /// Known adapters.
        known: String,
    },
}

impl From<memlane_core::CompatError> for StoreError {
    fn from(e: memlane_core::CompatError) -> Self {
        StoreError::Core(e.into())
    }
}

/// A Lance error's message without the source location of Lance's own code (`, /root/.cargo/registry/.../file.rs:12:34`),
/// which names a dependency's file, not anything the user can act on.
pub fn lance_message(e: &lance::Error) -> String {
    strip_locations(&e.to_string())
}

fn strip_locations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(".rs:") {
        // the location starts after the last ", " or space before `.rs:`
        let head = &rest[..i];
        let start = head.rfind(", ").or_else(|| head.rfind(' '));
        let tail = &rest[i + 4..];
        let digits = tail
            .find(|c: char| !(c.is_ascii_digit() || c == ':'))
            .unwrap_or(tail.len());
        if digits == 0 {
            out.push_str(&rest[..i + 4]);
            rest = tail;
            continue;
        }
        if let Some(p) = start {
            out.push_str(&head[..p]);
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// `UnknownSpace` for `name`, listing the spaces `state` has.
    pub fn unknown_space(name: &str, state: &memlane_core::StoreState) -> StoreError {
        StoreError::UnknownSpace {
            name: name.to_owned(),
            known: if state.spaces.is_empty() {
                "none; add one with an `add_space` migration".into()
            } else {
                state
                    .spaces
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }
    }

    /// This error's kind: the CLI exit code, the Python class and the JS name derive
    /// from it (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Core(c) => c.kind(),
            // Lance refusing the caller's input (a filter, a column) is the caller's to fix
            StoreError::Lance(lance::Error::InvalidInput { .. }) => ErrorKind::Input,
            StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            StoreError::Lance(_) | StoreError::Arrow(_) | StoreError::Io { .. } => {
                ErrorKind::Storage
            }
            StoreError::Integrity { .. } | StoreError::Verify(_) => ErrorKind::Integrity,
            StoreError::Internal(_) => ErrorKind::Internal,
            StoreError::Conflict { .. } | StoreError::NotConverging { .. } => ErrorKind::Conflict,
            StoreError::State(_) => ErrorKind::State,
            StoreError::Storage { .. } | StoreError::LockUnsupported { .. } => ErrorKind::Storage,
            StoreError::NotFound { .. }
            | StoreError::NotAStore { .. }
            | StoreError::UnknownVersion(_)
            | StoreError::NoAdapter { .. } => ErrorKind::NotFound,
            StoreError::Exists { .. } => ErrorKind::Exists,
            StoreError::LockHeld { .. } | StoreError::LockAlive { .. } => ErrorKind::Locked,
            StoreError::Input(_) | StoreError::EmbedderConfig { .. } => ErrorKind::Input,
            StoreError::InvariantViolation { .. } => ErrorKind::Invariant,
            StoreError::MissingEmbedder { .. }
            | StoreError::UnresolvedEmbedder { .. }
            | StoreError::Embedder { .. }
            | StoreError::Worker { .. }
            | StoreError::Executor { .. } => ErrorKind::Embedder,
            StoreError::UnknownSpace { .. } => ErrorKind::Vector,
            StoreError::ModelDrift { .. } => ErrorKind::Drift,
            StoreError::GateBlocked { .. } => ErrorKind::Gate,
            StoreError::BadBundle { .. } => ErrorKind::Integrity,
            StoreError::ReviewRequired { .. } => ErrorKind::Review,
        }
    }

    /// Whether this error means "refused by a check" (lint, chain, invariant, gate, a
    /// broken record): exit code 3.
    pub fn is_blocked(&self) -> bool {
        self.kind().exit_code() == 3
    }
}

#[cfg(test)]
mod tests {
    use super::strip_locations;

    #[test]
    fn lance_locations_are_dropped() {
        assert_eq!(
            strip_locations(
                "Retryable commit conflict for version 30: preempted by DataReplacement, /root/.cargo/registry/src/index.crates.io-1/lance-14.0.2/src/io/commit/conflict_resolver.rs:468:13"
            ),
            "Retryable commit conflict for version 30: preempted by DataReplacement"
        );
        assert_eq!(
            strip_locations("Not found: /tmp/x/data/a.lance, /src/io.rs:1:2, more"),
            "Not found: /tmp/x/data/a.lance, more"
        );
        assert_eq!(strip_locations("file a.rs: fine"), "file a.rs: fine");
    }
}
