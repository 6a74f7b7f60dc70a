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
pyo3::create_exception!(
    memlane,
    ConflictError,
    MemlaneError,
    "Concurrent writers kept preempting the operation after every retry, or a re-embed cannot catch up with them; nothing was committed by it, run it again."
);
pyo3::create_exception!(
    memlane,
    StateError,
    MemlaneError,
    "The operation does not fit the store's current state (e.g. abort with nothing in flight); the message names the way forward."
);
pyo3::create_exception!(
    memlane,
    StorageError,
    MemlaneError,
    "The storage under the store (Lance, the object store or the file system) failed."
);
pyo3::create_exception!(
    memlane,
    InternalError,
    MemlaneError,
    "A bug in memlane: please report it with the message."
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
/// The structured attributes of an error (its class comes from its kind).
fn attrs_of(e: &StoreError) -> Attrs {
    use serde_json::json;
    match e {
        StoreError::Core(CoreError::Chain(c)) => {
            let file = match c {
                ChainError::Edited { file, .. }
                | ChainError::Renamed { found: file, .. }
                | ChainError::Removed { file, .. }
                | ChainError::Reordered { file, .. } => file.clone(),
            };
            vec![("file", json!(file))]
        }
        StoreError::Core(CoreError::Vector(v)) => vector_attrs(v),
        StoreError::InvariantViolation {
            file, step, report, ..
        } => vec![
            ("file", json!(file)),
            ("step", json!(step)),
            ("report", serde_json::to_value(report).unwrap_or_default()),
        ],
        StoreError::GateBlocked { file, check, .. } => vec![
            ("file", json!(file)),
            ("check", serde_json::to_value(check).unwrap_or_default()),
        ],
        StoreError::ReviewRequired { file, check, .. } => vec![
            ("file", json!(file)),
            ("check", serde_json::to_value(check).unwrap_or_default()),
        ],
        StoreError::ModelDrift {
            space,
            embedder,
            cosine,
            canary,
            ..
        } => vec![
            ("space", json!(space)),
            ("embedder", json!(embedder)),
            ("cosine", json!(cosine)),
            ("canary", json!(canary)),
        ],
        StoreError::UnknownSpace { name, .. } => {
            vec![("space", json!(name))]
        }
        StoreError::Embedder {
            name,
            batch,
            first_id,
            ..
        } => vec![
            ("embedder", json!(name)),
            ("batch", json!(batch)),
            ("record_id", json!(first_id)),
        ],
        StoreError::Worker {
            fragment,
            attempts,
            worker,
            ..
        } => vec![
            ("fragment", json!(fragment)),
            ("attempts", json!(attempts)),
            ("worker", json!(worker)),
        ],
        StoreError::Executor { embedder, .. } => vec![("embedder", json!(embedder))],
        StoreError::MissingEmbedder { name, file } => {
            vec![("embedder", json!(name)), ("file", json!(file))]
        }
        StoreError::LockHeld {
            holder, host, pid, ..
        } => vec![
            ("holder", json!(holder)),
            ("host", json!(host)),
            ("pid", json!(pid)),
        ],
        StoreError::NotFound { uri } => vec![("uri", json!(uri))],
        StoreError::UnknownVersion(v) => vec![("version", json!(v))],
        StoreError::NoAdapter { from, to, .. } => {
            vec![("space", json!(to)), ("query_space", json!(from))]
        }
        StoreError::Exists { uri } => vec![("uri", json!(uri))],
        StoreError::Integrity { version, .. } => {
            vec![("version", json!(version))]
        }
        StoreError::LockAlive { uri, holder, pid } => vec![
            ("uri", json!(uri)),
            ("holder", json!(holder)),
            ("pid", json!(pid)),
        ],
        StoreError::NotAStore { uri, .. } => vec![("uri", json!(uri))],
        _ => vec![],
    }
}

/// The Python exception of an error kind, with `msg`: the binding's column of the
/// library's one table (`memlane_core::ErrorKind`).
fn new_err(kind: memlane_core::ErrorKind, msg: String) -> PyErr {
    use memlane_core::ErrorKind as K;
    match kind {
        K::MigrationFile | K::Lint => MigrationError::new_err(msg),
        K::Chain => ChecksumMismatch::new_err(msg),
        K::Integrity => IntegrityError::new_err(msg),
        K::Invariant => InvariantViolation::new_err(msg),
        K::Gate => GateBlocked::new_err(msg),
        K::Review => ReviewRequired::new_err(msg),
        K::Vector => IncompatibleSpaceError::new_err(msg),
        K::Drift => ModelDrift::new_err(msg),
        K::Embedder => EmbedderError::new_err(msg),
        K::Compat | K::Input => InvalidInputError::new_err(msg),
        K::NotFound => NotFoundError::new_err(msg),
        K::Exists => StoreExistsError::new_err(msg),
        K::Locked => LockHeld::new_err(msg),
        K::Conflict => ConflictError::new_err(msg),
        K::State => StateError::new_err(msg),
        K::Storage => StorageError::new_err(msg),
        K::Internal => InternalError::new_err(msg),
    }
}

/// A store error as a Python exception with structured attributes. When the error came
/// from a Python embedder that raised, that exception becomes the `__cause__`, so its
/// traceback is kept.
pub(crate) fn to_py(py: Python<'_>, e: StoreError, cause: Option<PyErr>) -> PyErr {
    // Ctrl-C inside an embedder: the batch was not written, what was committed stays,
    // and the caller gets the KeyboardInterrupt itself, not an EmbedderError
    if let Some(c) = cause.as_ref()
        && (c.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py)
            || c.is_instance_of::<pyo3::exceptions::PySystemExit>(py))
    {
        return c.clone_ref(py);
    }
    let attrs = attrs_of(&e);
    let err = new_err(e.kind(), e.to_string());
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
