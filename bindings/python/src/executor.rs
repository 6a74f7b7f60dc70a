//! Distributed backfill from Python: a Python executor object (e.g. `memlane.ray.RayExecutor`)
//! behind memlane's `FragmentExecutor`, and the worker's entry point
//! `run_fragment_task_json`. The rules (what a task is, when to commit, retry, drop or
//! reuse) live in memlane-store; this adapts calls and JSON.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use memlane_store::{EmbedError, FragmentExecutor, FragmentResult, FragmentTask, TaskOutcome};
use pyo3::prelude::*;
use serde::Deserialize;

use crate::embedder::PyEmbedder;
use crate::error::{input, to_py};

/// The attribute that marks a Python embedder as an executor of fragment tasks.
pub(crate) const MARKER: &str = "__memlane_executor__";

/// A Python object with `_workers() -> int`, `_submit(task_json)`, `_next(timeout) ->
/// str | None` and `_cancel()`.
pub(crate) struct PyExecutor {
    obj: Py<PyAny>,
    workers: usize,
}

/// What `_next` returns, as JSON.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Wire {
    Done(FragmentResult),
    Failed {
        fragment: u64,
        #[serde(default)]
        worker: String,
        error: String,
    },
}

fn py_err(py: Python<'_>, e: &PyErr) -> EmbedError {
    let name = e
        .get_type(py)
        .name()
        .map_or_else(|_| "Exception".to_owned(), |n| n.to_string());
    format!("{name}: {}", e.value(py)).into()
}

impl PyExecutor {
    /// Wrap `obj` when it is an executor (has the marker attribute set).
    pub(crate) fn of(obj: &Bound<'_, PyAny>) -> PyResult<Option<Self>> {
        let marked = obj
            .getattr(MARKER)
            .ok()
            .and_then(|m| m.is_truthy().ok())
            .unwrap_or(false);
        if !marked {
            return Ok(None);
        }
        let workers: usize = obj.call_method0("_workers")?.extract()?;
        Ok(Some(PyExecutor {
            obj: obj.clone().unbind(),
            workers,
        }))
    }

    fn call<R>(
        &self,
        f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>) -> PyResult<R>,
    ) -> Result<R, EmbedError> {
        crate::callback(|| {
            Python::attach(|py| f(py, self.obj.bind(py)).map_err(|e| py_err(py, &e)))
        })
    }
}

impl FragmentExecutor for PyExecutor {
    fn workers(&self) -> usize {
        self.workers
    }

    fn submit(&self, task: &FragmentTask) -> Result<(), EmbedError> {
        let json = serde_json::to_string(task)?;
        self.call(|_, o| o.call_method1("_submit", (json,)).map(|_| ()))
    }

    fn next(&self, timeout: Duration) -> Result<Option<TaskOutcome>, EmbedError> {
        let got: Option<String> =
            self.call(|_, o| o.call_method1("_next", (timeout.as_secs_f64(),))?.extract())?;
        let Some(text) = got else {
            return Ok(None);
        };
        Ok(Some(match serde_json::from_str::<Wire>(&text)? {
            Wire::Done(r) => TaskOutcome::Done(r),
            Wire::Failed {
                fragment,
                worker,
                error,
            } => TaskOutcome::Failed {
                fragment,
                worker,
                error,
            },
        }))
    }

    fn cancel(&self) {
        let _ = self.call(|_, o| o.call_method0("_cancel").map(|_| ()));
    }
}

/// Run one fragment task in this process (a worker): read the fragment at the task's
/// version, embed what needs it with `embedder` (`list[str] -> (n, d)` array), write
/// the columns and stage the result; returns the result as JSON. Nothing is committed.
#[pyfunction]
#[pyo3(signature = (task, embedder, *, worker=None))]
pub(crate) fn run_fragment_task_json(
    py: Python<'_>,
    task: &str,
    embedder: Py<PyAny>,
    worker: Option<String>,
) -> PyResult<String> {
    let task: FragmentTask = serde_json::from_str(task)
        .map_err(|e| input(format!("not a memlane fragment task: {e}")))?;
    let raised = Arc::new(Mutex::new(None));
    let e = PyEmbedder::new(embedder, task.batch, raised.clone());
    let r = py.detach(|| crate::block_on(memlane_store::run_fragment_task(&task, &e)));
    match r {
        Ok(mut r) => {
            r.worker = worker.unwrap_or_default();
            serde_json::to_string(&r).map_err(|e| input(e.to_string()))
        }
        Err(err) => {
            let cause = raised.lock().ok().and_then(|mut r| r.take());
            Err(to_py(py, err, cause))
        }
    }
}
