//! The exception hierarchy, and the one mapping from the store's and core's error enums.

use memlane_core::{ChainError, CoreError, VectorError};
use memlane_store::StoreError;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(
    memlane,
    MemlaneError,
    PyException,
    "Base class of every memlane error."
);
pyo3::create_exception!(
    memlane,
    MigrationError,
    MemlaneError,
    "A migration file, plan or step is wrong, or a step failed."
);
pyo3::create_exception!(
    memlane,
    IntegrityError,
    MigrationError,
    "The store's own record (state, history, seals, manifests or data files) was edited or is missing a part; restore the last intact version."
);
pyo3::create_exception!(
    memlane,
    ChecksumMismatch,
    MigrationError,
    "An applied migration was edited, renamed, removed or reordered."
);
pyo3::create_exception!(
    memlane,
    InvariantViolation,
    MigrationError,
    "A `fail` invariant failed; the step was not committed (`report` has the details)."
);
pyo3::create_exception!(
    memlane,
    GateBlocked,
    MigrationError,
    "A compatibility gate (or the declared mode) blocks the re-embed."
);
pyo3::create_exception!(
    memlane,
    ReviewRequired,
    GateBlocked,
    "A compatibility gate asks for review: pass `approve=\"reason\"` to go ahead."
);
pyo3::create_exception!(
    memlane,
    IncompatibleSpaceError,
    MemlaneError,
    "Vectors or an embedder do not fit a space (dimension, NaN, zero, norm, unknown space)."
);
pyo3::create_exception!(
    memlane,
    ModelDrift,
    IncompatibleSpaceError,
    "An embedder does not reproduce its space's fingerprint: another model behind the name."
);
pyo3::create_exception!(
    memlane,
    EmbedderError,
    MigrationError,
    "An embedder failed or returned unusable output; nothing of that batch was committed."
);
pyo3::create_exception!(
    memlane,
    LockHeld,
    MemlaneError,
    "Another process holds the store's migration lock."
);
pyo3::create_exception!(
    memlane,
    NotFoundError,
    MemlaneError,
    "No store, version, tag or adapter by that name."
);
pyo3::create_exception!(
    memlane,
    StoreExistsError,
    MemlaneError,
    "A store already exists at that URI."
);
pyo3::create_exception!(
    memlane,
    InvalidInputError,
    MemlaneError,
    "Records, arguments or files given to memlane are not acceptable."
);

/// Attributes to set on the exception: (name, value as JSON).
type Attrs = Vec<(&'static str, serde_json::Value)>;

fn vector_attrs(v: &VectorError) -> Attrs {
    use serde_json::json;
    match v {
        VectorError::Dimension {
            id,
            space,
            expected,
            got,
        } => vec![
            ("record_id", json!(id)),
            ("space", json!(space)),
            ("expected", json!(expected)),
            ("got", json!(got)),
        ],
        VectorError::NonFinite { id, space, .. }
        | VectorError::Zero { id, space }
        | VectorError::Missing { id, space }
        | VectorError::NotNormalized { id, space, .. } => {
            vec![("record_id", json!(id)), ("space", json!(space))]
        }
    }
}

/// The exception class and structured attributes for a store error.
fn classify(e: &StoreError) -> (PyErrType, Attrs) {
    use serde_json::json;
    match e {
        StoreError::Core(CoreError::Chain(c)) => {
            let file = match c {
                ChainError::Edited { file, .. }
                | ChainError::Renamed { found: file, .. }
                | ChainError::Removed { file, .. }
                | ChainError::Reordered { file, .. } => file.clone(),
            };
            (PyErrType::ChecksumMismatch, vec![("file", json!(file))])
        }
        StoreError::Core(CoreError::Vector(v)) => (PyErrType::Incompatible, vector_attrs(v)),
        StoreError::Core(CoreError::Space { .. }) => (PyErrType::Incompatible, vec![]),
        StoreError::Core(
            CoreError::MigrationFile { .. }
            | CoreError::FileName { .. }
            | CoreError::DuplicateId { .. }
            | CoreError::Lint { .. }
            | CoreError::State(_),
        ) => (PyErrType::Migration, vec![]),
        StoreError::Core(CoreError::Value { .. } | CoreError::Compat(_)) => {
            (PyErrType::Input, vec![])
        }
        StoreError::InvariantViolation {
            file, step, report, ..
        } => (
            PyErrType::Invariant,
            vec![
                ("file", json!(file)),
                ("step", json!(step)),
                ("report", serde_json::to_value(report).unwrap_or_default()),
            ],
        ),
        StoreError::GateBlocked { file, check, .. } => (
            PyErrType::Gate,
            vec![
                ("file", json!(file)),
                ("check", serde_json::to_value(check).unwrap_or_default()),
            ],
        ),
        StoreError::ReviewRequired { file, check, .. } => (
            PyErrType::Review,
            vec![
                ("file", json!(file)),
                ("check", serde_json::to_value(check).unwrap_or_default()),
            ],
        ),
        StoreError::ModelDrift {
            space,
            embedder,
            cosine,
            canary,
            ..
        } => (
            PyErrType::Drift,
            vec![
                ("space", json!(space)),
                ("embedder", json!(embedder)),
                ("cosine", json!(cosine)),
                ("canary", json!(canary)),
            ],
        ),
        StoreError::UnknownSpace { name, .. } => {
            (PyErrType::Incompatible, vec![("space", json!(name))])
        }
        StoreError::Embedder {
            name,
            batch,
            first_id,
            ..
        } => (
            PyErrType::Embedder,
            vec![
                ("embedder", json!(name)),
                ("batch", json!(batch)),
                ("record_id", json!(first_id)),
            ],
        ),
        StoreError::MissingEmbedder { name, file } => (
            PyErrType::Migration,
            vec![("embedder", json!(name)), ("file", json!(file))],
        ),
        StoreError::LockHeld {
            holder, host, pid, ..
        } => (
            PyErrType::Lock,
            vec![
                ("holder", json!(holder)),
                ("host", json!(host)),
                ("pid", json!(pid)),
            ],
        ),
        StoreError::NotFound { uri } => (PyErrType::NotFound, vec![("uri", json!(uri))]),
        StoreError::UnknownVersion(v) => (PyErrType::NotFound, vec![("version", json!(v))]),
        StoreError::NoAdapter { from, to, .. } => (
            PyErrType::NotFound,
            vec![("space", json!(to)), ("query_space", json!(from))],
        ),
        StoreError::Exists { uri } => (PyErrType::Exists, vec![("uri", json!(uri))]),
        StoreError::Verify(_) => (PyErrType::Migration, vec![]),
        StoreError::Integrity { version, .. } => {
            (PyErrType::Migration, vec![("version", json!(version))])
        }
        StoreError::LockAlive { uri, holder, pid } => (
            PyErrType::Lock,
            vec![
                ("uri", json!(uri)),
                ("holder", json!(holder)),
                ("pid", json!(pid)),
            ],
        ),
        StoreError::NotAStore { uri, .. } => (PyErrType::NotFound, vec![("uri", json!(uri))]),
        StoreError::Conflict { .. } | StoreError::Internal(_) => (PyErrType::Base, vec![]),
        StoreError::Input(_) | StoreError::Arrow(_) => (PyErrType::Input, vec![]),
        StoreError::Lance(_) | StoreError::Io { .. } => (PyErrType::Base, vec![]),
    }
}

#[derive(Clone, Copy)]
enum PyErrType {
    Base,
    Migration,
    Integrity,
    ChecksumMismatch,
    Invariant,
    Gate,
    Review,
    Incompatible,
    Drift,
    Embedder,
    Lock,
    NotFound,
    Exists,
    Input,
}

impl PyErrType {
    fn new_err(self, msg: String) -> PyErr {
        match self {
            PyErrType::Base => MemlaneError::new_err(msg),
            PyErrType::Migration => MigrationError::new_err(msg),
            PyErrType::Integrity => IntegrityError::new_err(msg),
            PyErrType::ChecksumMismatch => ChecksumMismatch::new_err(msg),
            PyErrType::Invariant => InvariantViolation::new_err(msg),
            PyErrType::Gate => GateBlocked::new_err(msg),
            PyErrType::Review => ReviewRequired::new_err(msg),
            PyErrType::Incompatible => IncompatibleSpaceError::new_err(msg),
            PyErrType::Drift => ModelDrift::new_err(msg),
            PyErrType::Embedder => EmbedderError::new_err(msg),
            PyErrType::Lock => LockHeld::new_err(msg),
            PyErrType::NotFound => NotFoundError::new_err(msg),
            PyErrType::Exists => StoreExistsError::new_err(msg),
            PyErrType::Input => InvalidInputError::new_err(msg),
        }
    }
}

/// A store error as a Python exception with structured attributes. When the error came
/// from a Python embedder that raised, that exception becomes the `__cause__`, so its
/// traceback is kept.
/// The Python class of an error kind: the binding's column of the library's one table.
fn class_of(kind: memlane_core::ErrorKind) -> PyErrType {
    use memlane_core::ErrorKind as K;
    match kind {
        K::MigrationFile | K::Lint => PyErrType::Migration,
        K::Chain => PyErrType::ChecksumMismatch,
        K::Integrity => PyErrType::Integrity,
        K::Invariant => PyErrType::Invariant,
        K::Gate => PyErrType::Gate,
        K::Review => PyErrType::Review,
        K::Vector => PyErrType::Incompatible,
        K::Drift => PyErrType::Drift,
        K::Embedder => PyErrType::Embedder,
        K::Compat | K::Input => PyErrType::Input,
        K::NotFound => PyErrType::NotFound,
        K::Exists => PyErrType::Exists,
        K::Locked => PyErrType::Lock,
        K::Conflict | K::Storage | K::Internal => PyErrType::Base,
    }
}

pub(crate) fn to_py(py: Python<'_>, e: StoreError, cause: Option<PyErr>) -> PyErr {
    let (_, attrs) = classify(&e);
    let ty = class_of(e.kind());
    let err = ty.new_err(e.to_string());
    let value = err.value(py);
    for (k, v) in attrs {
        if let Ok(obj) = json_to_py(py, &v) {
            let _ = value.setattr(k, obj);
        }
    }
    if let Some(c) = cause {
        err.set_cause(py, Some(c));
    }
    err
}

/// An input error raised by the binding itself.
pub(crate) fn input(msg: impl Into<String>) -> PyErr {
    InvalidInputError::new_err(msg.into())
}

/// A JSON value as the equivalent Python object (through the `json` module).
pub(crate) fn json_to_py<'py>(
    py: Python<'py>,
    v: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    let s = serde_json::to_string(v).map_err(|e| input(e.to_string()))?;
    py.import("json")?.call_method1("loads", (s,))
}
