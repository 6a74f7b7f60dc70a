//! Errors of the pure core.

use thiserror::Error;

/// Everything that can go wrong in memlane's pure logic.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// A migration file could not be read as a migration.
    #[error("{file}:{line}: {message}\n  hint: {hint}")]
    MigrationFile {
        /// File name (not the full path).
        file: String,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// A migration file name does not follow `NNNN_slug.toml`.
    #[error(
        "migration file name `{file}` is not `NNNN_slug.toml`; rename it, e.g. `0001_{suggestion}.toml`"
    )]
    FileName {
        /// Offending file name.
        file: String,
        /// A slug suggestion.
        suggestion: String,
    },
    /// Two migration files share one id.
    #[error("migrations `{first}` and `{second}` share id {id}; give one of them a new number")]
    DuplicateId {
        /// The shared id.
        id: u32,
        /// First file.
        first: String,
        /// Second file.
        second: String,
    },
    /// The applied history and the migration folder disagree.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A vector cannot be written into a space.
    #[error(transparent)]
    Vector(#[from] VectorError),
    /// An embedding space definition is invalid.
    #[error("invalid space `{space}`: {message}")]
    Space {
        /// Space name.
        space: String,
        /// What is wrong.
        message: String,
    },
    /// Lint found errors; nothing was applied.
    #[error("lint found {count} error(s); nothing applied:\n{details}")]
    Lint {
        /// Number of error findings.
        count: usize,
        /// Rendered findings.
        details: String,
    },
    /// A value does not fit a field type.
    #[error("value {value} does not fit field `{field}` of type {ty}; {hint}")]
    Value {
        /// Field name.
        field: String,
        /// Field type.
        ty: String,
        /// Rendered value.
        value: String,
        /// How to fix it.
        hint: String,
    },
    /// A stored state could not be decoded.
    #[error("store state is unreadable: {0}; was it written by a newer memlane?")]
    State(String),
    /// A compatibility analysis, adapter fit or gate failed.
    #[error(transparent)]
    Compat(#[from] CompatError),
}

/// The applied history and the migration files disagree (Flyway's "validate" failures).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ChainError {
    /// An applied migration's file changed after it was applied.
    #[error(
        "applied migration `{file}` was edited after it was applied (checksum {recorded} recorded, {found} now); revert the edit, or record it deliberately with `memlane repair --accept {id} --reason \"...\"`"
    )]
    Edited {
        /// Migration id.
        id: u32,
        /// File name.
        file: String,
        /// Checksum recorded in the store (short).
        recorded: String,
        /// Checksum of the file now (short).
        found: String,
    },
    /// An applied migration's file was renamed.
    #[error(
        "applied migration {id} was applied as `{applied}` but the folder has `{found}`; rename it back, or record the rename with `memlane repair --accept {id} --reason \"...\"`"
    )]
    Renamed {
        /// Migration id.
        id: u32,
        /// Name when applied.
        applied: String,
        /// Name now.
        found: String,
    },
    /// An applied migration's file is missing.
    #[error(
        "applied migration `{file}` is missing from the migrations folder; restore the file (history is forward-only)"
    )]
    Removed {
        /// Migration id.
        id: u32,
        /// File name when applied.
        file: String,
    },
    /// A pending migration sorts before an applied one.
    #[error(
        "pending migration `{file}` sorts before the last applied migration `{last_applied}`; renumber it after {last_id:04}"
    )]
    Reordered {
        /// Pending file.
        file: String,
        /// Last applied file.
        last_applied: String,
        /// Last applied id.
        last_id: u32,
    },
}

/// A vector that cannot be written into a space.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum VectorError {
    /// Dimension mismatch.
    #[error(
        "record `{id}`: vector dimension {got} does not match space `{space}` ({expected}); re-embed with `memlane apply` or write to the matching space"
    )]
    Dimension {
        /// Record id.
        id: String,
        /// Space name.
        space: String,
        /// Expected dimension.
        expected: usize,
        /// Actual dimension.
        got: usize,
    },
    /// NaN or infinite component.
    #[error(
        "record `{id}`: vector for space `{space}` has a non-finite value ({value} at index {index}); fix the embedder output"
    )]
    NonFinite {
        /// Record id.
        id: String,
        /// Space name.
        space: String,
        /// Index of the first bad component.
        index: usize,
        /// The bad value, rendered.
        value: String,
    },
    /// All-zero vector in a cosine space.
    #[error(
        "record `{id}`: zero vector cannot be written into cosine space `{space}` (its direction is undefined); drop the record or fix the embedder"
    )]
    Zero {
        /// Record id.
        id: String,
        /// Space name.
        space: String,
    },
    /// Missing vector for a space that requires one.
    #[error(
        "record `{id}`: no vector for space `{space}`; give it one (a vector under `{space}` or its column), an embedder for `{space}` (CLI `--embedder {space}=SPEC`, Python `embedders={{\"{space}\": model}}`), or write without that space"
    )]
    Missing {
        /// Record id.
        id: String,
        /// Space name.
        space: String,
    },
    /// A normalised space got a vector whose norm is far from 1.
    #[error(
        "record `{id}`: space `{space}` is declared normalised but the vector's norm is {norm}; normalise it before writing"
    )]
    NotNormalized {
        /// Record id.
        id: String,
        /// Space name.
        space: String,
        /// Observed norm.
        norm: f32,
    },
}

/// Problems of the compatibility analysis between two embedding spaces ([`mod@crate::compat`]).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CompatError {
    /// Vectors do not have the shape an analysis needs.
    #[error("{what}: {message}")]
    Shape {
        /// What was being read (e.g. `paired sample`, `query set`).
        what: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A vector has a NaN or infinite component.
    #[error(
        "vector at row {row} has a non-finite value at index {col}; fix the embedder output before comparing spaces"
    )]
    NonFinite {
        /// Row of the bad value.
        row: usize,
        /// Column of the bad value.
        col: usize,
    },
    /// Too few rows for the requested analysis.
    #[error("{what} needs at least {needed} rows but the sample has {rows}; {hint}")]
    TooFewRows {
        /// The analysis.
        what: String,
        /// Rows given.
        rows: usize,
        /// Rows needed.
        needed: usize,
        /// How to fix it.
        hint: String,
    },
    /// An unregularised affine fit was asked for on a sample too small for its parameters.
    #[error(
        "an unregularised affine map {d_in} -> {d_out} fitted on {rows} rows would memorise the sample (needs at least {needed} rows); embed a larger sample or use a ridge penalty (lambda > 0)"
    )]
    Unregularized {
        /// Training rows.
        rows: usize,
        /// Input (new model) dimension.
        d_in: usize,
        /// Output (old model) dimension.
        d_out: usize,
        /// Rows needed: `2 * max(d_in, d_out) + 1`.
        needed: usize,
    },
    /// A dense factorisation did not converge.
    #[error("{what} did not converge; check the vectors for near-duplicate or degenerate rows")]
    Linalg {
        /// The factorisation (e.g. `SVD of the cross-covariance`).
        what: String,
    },
    /// A gate names a metric the report does not have.
    #[error("gate names unknown metric `{metric}`; reported metrics are: {available}")]
    UnknownMetric {
        /// The gate's metric.
        metric: String,
        /// Comma-separated names of the reported metrics.
        available: String,
    },
    /// A gate definition is malformed.
    #[error("gate `{metric}`: {message}")]
    Gate {
        /// The gate's metric (or `[gates]` for the table itself).
        metric: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A model's canary vectors moved: it is not the model the space was recorded with.
    #[error(
        "model drift: canary {index} has cosine {cosine:.6} to its recorded vector (tolerance {tolerance}); the embedder behind this space changed, so declare a new space and migrate instead of writing into this one"
    )]
    Drift {
        /// Index of the worst canary.
        index: usize,
        /// Its cosine to the recorded vector.
        cosine: f64,
        /// Required cosine.
        tolerance: f64,
    },
    /// A declared compatibility mode does not hold for the measured spaces.
    #[error("declared compatibility `{declared}` does not hold: {reason}")]
    Mode {
        /// Declared mode.
        declared: String,
        /// Why it fails and what to do instead.
        reason: String,
    },
}

/// Result alias of the core.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// What kind of failure an error is: the one table from which the CLI's exit codes, the
/// Python exception classes and the JS error names are all derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A migration file does not parse (named by file and line).
    MigrationFile,
    /// Lint found errors in a migrations folder.
    Lint,
    /// The applied history and the migration files disagree.
    Chain,
    /// The store's own record (state, history, seals, manifests) is broken.
    Integrity,
    /// A `fail` invariant failed: the step was not committed.
    Invariant,
    /// A compatibility gate (or the declared mode) blocks.
    Gate,
    /// A compatibility gate asks for a human's review.
    Review,
    /// Vectors or spaces do not fit each other.
    Vector,
    /// An embedder does not reproduce its space's fingerprint.
    Drift,
    /// A compatibility analysis or adapter fit cannot run on its input.
    Compat,
    /// An embedder failed, hung or is missing.
    Embedder,
    /// Arguments or records are not acceptable.
    Input,
    /// No store, version, tag, space or adapter by that name.
    NotFound,
    /// Something already exists.
    Exists,
    /// Another process holds the migration lock.
    Locked,
    /// Concurrent commits kept preempting the operation (or a re-embed cannot catch
    /// up with writers); nothing was committed by the failed attempt.
    Conflict,
    /// The operation does not fit the store's current state (abort with nothing in
    /// flight, contract of the active space...).
    State,
    /// The storage engine or the file system failed.
    Storage,
    /// A bug in memlane.
    Internal,
}

impl ErrorKind {
    /// The CLI exit code: 3 for "refused by a check" (a CI gate), 1 otherwise.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Lint
            | ErrorKind::Chain
            | ErrorKind::Integrity
            | ErrorKind::Invariant
            | ErrorKind::Gate
            | ErrorKind::Review => 3,
            _ => 1,
        }
    }

    /// The name a JavaScript `Error` of this kind carries.
    pub fn js_name(self) -> &'static str {
        match self {
            ErrorKind::MigrationFile => "MigrationFileError",
            ErrorKind::Lint => "LintError",
            ErrorKind::Chain => "ChainError",
            ErrorKind::Integrity => "IntegrityError",
            ErrorKind::Invariant => "InvariantError",
            ErrorKind::Gate => "GateBlockedError",
            ErrorKind::Review => "ReviewRequiredError",
            ErrorKind::Vector | ErrorKind::Drift => "VectorError",
            ErrorKind::Compat => "CompatError",
            ErrorKind::Embedder => "EmbedderError",
            ErrorKind::Input => "InvalidInputError",
            ErrorKind::NotFound => "NotFoundError",
            ErrorKind::Exists => "ExistsError",
            ErrorKind::Locked => "LockHeldError",
            ErrorKind::Conflict => "ConflictError",
            ErrorKind::State => "StateError",
            ErrorKind::Storage => "StorageError",
            ErrorKind::Internal => "InternalError",
        }
    }
}

impl CoreError {
    /// This error's kind (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            CoreError::MigrationFile { .. }
            | CoreError::FileName { .. }
            | CoreError::DuplicateId { .. } => ErrorKind::MigrationFile,
            CoreError::Lint { .. } => ErrorKind::Lint,
            CoreError::Chain(_) => ErrorKind::Chain,
            CoreError::Vector(_) | CoreError::Space { .. } => ErrorKind::Vector,
            // a value that does not fit a field: a record's or a migration default's,
            // the input either way
            CoreError::Value { .. } => ErrorKind::Input,
            CoreError::State(_) => ErrorKind::Integrity,
            CoreError::Compat(_) => ErrorKind::Compat,
        }
    }
}
