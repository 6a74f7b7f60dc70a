//! Python bindings of memlane: the private module `memlane._memlane`.
//!
//! Adapters only: each function converts its arguments, calls memlane-store or
//! memlane-core, and maps errors to the exception hierarchy in [`error`]. Reports cross
//! as JSON (every report type is serde), Arrow data through the Arrow C stream
//! interface (PyCapsules), vectors as little-endian `float32` bytes that the facade
//! turns into numpy arrays. The pure-Python facade `memlane` adds the notebook views.

// StoreError is large (it carries reports); these results are converted to PyErr at once
#![allow(clippy::result_large_err)]

mod arrow_ffi;
mod compat;
mod embedder;
mod error;
mod executor;
mod space;
mod store;

use std::sync::OnceLock;

/// The tokio runtime the store's async API runs on (one per process).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("memlane")
            .build()
            .unwrap_or_else(|e| panic!("memlane: cannot start the async runtime: {e}"))
    })
}

/// Native-endian `float32` bytes (numpy's `tobytes()`) as floats.
pub(crate) fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Run a store future to completion. Called back from inside memlane (an embedder or a
/// progress callback that uses another store handle), the thread is a runtime worker
/// inside `block_in_place` (see [`callback`]), which may block on the runtime's handle.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h.block_on(f),
        Err(_) => runtime().block_on(f),
    }
}

thread_local! {
    static IN_CALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run Python code that memlane calls back (embedders, progress), marked so that a
/// re-entrant use of a busy store handle fails instead of deadlocking.
pub(crate) fn callback<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_CALLBACK.with(|c| c.set(self.0));
        }
    }
    let run = || {
        let _restore = Restore(IN_CALLBACK.with(|c| c.replace(true)));
        f()
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(run)
        }
        _ => run(),
    }
}

/// Whether the current thread is running a memlane callback.
pub(crate) fn in_callback() -> bool {
    IN_CALLBACK.with(std::cell::Cell::get)
}

/// memlane's native module.
#[pyo3::pymodule]
mod _memlane {
    #[pymodule_export]
    use super::compat::compat_json;
    #[pymodule_export]
    use super::embedder::NativeEmbedder;
    #[pymodule_export]
    use super::error::{
        ChecksumMismatch, ConflictError, EmbedderError, GateBlocked, IncompatibleSpaceError,
        IntegrityError, InternalError, InvalidInputError, InvariantViolation, LockHeld,
        MemlaneError, MigrationError, ModelDrift, NotFoundError, ReviewRequired, StateError,
        StorageError, StoreExistsError,
    };
    #[pymodule_export]
    use super::executor::run_fragment_task_json;
    #[pymodule_export]
    use super::space::Space;
    #[pymodule_export]
    use super::store::{
        Store, bundle_json, create, create_from_jsonl, diff_json, open, read_migrations,
        review_json, unbundle_json, unlock_json,
    };

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        Ok(())
    }
}
