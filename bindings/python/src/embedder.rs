//! Python callables as memlane embedders: `f(list[str]) -> numpy float32 (n, d)`.

use std::sync::{Arc, Mutex};

use memlane_store::{EmbedError, Embedder};
use pyo3::prelude::*;

/// A Python callable behind memlane's `Embedder` trait. Called with the GIL held, one
/// batch at a time; an exception is kept (with its traceback) so the binding can raise
/// it as the cause of the `EmbedderError`.
pub(crate) struct PyEmbedder {
    f: Py<PyAny>,
    batch: usize,
    /// The last exception the callable raised.
    pub(crate) raised: Arc<Mutex<Option<PyErr>>>,
}

impl PyEmbedder {
    pub(crate) fn new(f: Py<PyAny>, batch: usize, raised: Arc<Mutex<Option<PyErr>>>) -> Self {
        PyEmbedder { f, batch, raised }
    }

    fn call(&self, py: Python<'_>, texts: &[&str]) -> PyResult<Vec<f32>> {
        let out = self.f.bind(py).call1((texts.to_vec(),))?;
        if out.is_none() {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "the embedder returned None for {} texts; return an array of shape (n_texts, dimension) (a numpy array or a list of lists)",
                texts.len()
            )));
        }
        // any array-like: numpy, a list of lists, torch on CPU through __array__
        let np = py.import("numpy")?;
        let arr = np.call_method1("ascontiguousarray", (out, "float32"))?;
        let ndim: usize = arr.getattr("ndim")?.extract()?;
        let rows: usize = if ndim == 0 {
            0
        } else {
            arr.getattr("shape")?.get_item(0)?.extract()?
        };
        if ndim != 2 && !(ndim == 1 && texts.len() == 1) && rows != 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "embedder returned an array of {ndim} dimensions; return shape (n_texts, dimension)"
            )));
        }
        if ndim == 2 && rows != texts.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "embedder returned {rows} rows for {} texts (shape {}); return shape (n_texts, dimension), one row per text in order",
                texts.len(),
                arr.getattr("shape")?.str()?
            )));
        }
        let bytes: Vec<u8> = arr.call_method0("tobytes")?.extract()?;
        Ok(crate::floats(&bytes))
    }
}

impl Embedder for PyEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        crate::callback(|| {
            Python::attach(|py| match self.call(py, texts) {
                Ok(v) => Ok(v),
                Err(e) => {
                    let msg = format!(
                        "{}: {}",
                        e.get_type(py)
                            .name()
                            .map_or_else(|_| "Exception".to_owned(), |n| n.to_string()),
                        e.value(py)
                    );
                    if let Ok(mut r) = self.raised.lock() {
                        *r = Some(e);
                    }
                    Err(msg.into())
                }
            })
        })
    }

    fn batch_size(&self) -> usize {
        self.batch
    }
}

/// A per-batch timeout argument (seconds) as the library takes it.
fn timeout_arg(t: Option<f64>) -> PyResult<Option<std::time::Duration>> {
    match t {
        None => Ok(None),
        Some(s) if s > 0.0 && s.is_finite() => Ok(Some(std::time::Duration::from_secs_f64(s))),
        Some(s) => Err(crate::error::input(format!(
            "timeout={s}: give a positive number of seconds"
        ))),
    }
}

/// One of memlane's own embedders (`http:`, `proc:`, `cmd:`, `hash:`, or a
/// `memlane.toml` entry), usable wherever an embedder is taken and callable from Python.
#[pyclass(name = "Embedder", module = "memlane._memlane", frozen)]
pub struct NativeEmbedder {
    pub(crate) inner: Arc<dyn Embedder>,
    spec: String,
}

#[pymethods]
impl NativeEmbedder {
    /// Make an embedder from its one-line form: `hash:DIM[:SEED]`, `cmd:COMMAND`,
    /// `proc:COMMAND` or `http:URL,model=NAME[,batch=N,concurrency=N,...]`.
    #[new]
    #[pyo3(signature = (spec, *, timeout=None))]
    fn new(py: Python<'_>, spec: &str, timeout: Option<f64>) -> PyResult<Self> {
        let t = timeout_arg(timeout)?;
        let inner = memlane_store::embedder_from_spec(spec, t)
            .map_err(|e| crate::error::to_py(py, e, None))?;
        Ok(NativeEmbedder {
            inner,
            spec: spec.to_owned(),
        })
    }

    /// The embedders a `memlane.toml` declares (`[embedders.NAME]` tables), by name.
    #[staticmethod]
    #[pyo3(signature = (path, *, timeout=None))]
    fn from_config(
        py: Python<'_>,
        path: std::path::PathBuf,
        timeout: Option<f64>,
    ) -> PyResult<std::collections::HashMap<String, NativeEmbedder>> {
        let t = timeout_arg(timeout)?;
        if !path.is_file() {
            return Err(crate::error::NotFoundError::new_err(format!(
                "no embedder configuration at {}; pass the path of a memlane.toml",
                path.display()
            )));
        }
        let map = memlane_store::configured_embedders(None, Some(&path), t)
            .map_err(|e| crate::error::to_py(py, e, None))?;
        Ok(map
            .into_iter()
            .map(|(name, inner)| {
                let spec = format!("{}[embedders.{name}]", path.display());
                (name, NativeEmbedder { inner, spec })
            })
            .collect())
    }

    /// Embed texts: a float32 array (n, dimension). Raises `EmbedderError`.
    fn __call__<'py>(&self, py: Python<'py>, texts: Vec<String>) -> PyResult<Bound<'py, PyAny>> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let inner = self.inner.clone();
        let out = py.detach(|| inner.embed(&refs)).map_err(|e| {
            crate::error::EmbedderError::new_err(format!("embedder `{}` failed: {e}", self.spec))
        })?;
        let n = texts.len();
        let d = out.len().checked_div(n).unwrap_or(0);
        let bytes: Vec<u8> = out.iter().flat_map(|f| f.to_ne_bytes()).collect();
        let np = py.import("numpy")?;
        np.call_method1(
            "frombuffer",
            (pyo3::types::PyBytes::new(py, &bytes), "float32"),
        )?
        .call_method1("reshape", (n, d))
    }

    /// Texts per call the backfill gives it.
    #[getter]
    fn batch_size(&self) -> usize {
        self.inner.batch_size()
    }

    /// What it asked of its model so far (`requests`, `retries`, `restarts`, `texts`,
    /// `tokens`), or None for embedders that do not count.
    #[getter]
    fn calls(&self) -> Option<std::collections::HashMap<&'static str, Option<u64>>> {
        self.inner.calls().map(|c| {
            [
                ("requests", Some(c.requests)),
                ("retries", Some(c.retries)),
                ("restarts", Some(c.restarts)),
                ("texts", Some(c.texts)),
                ("tokens", c.tokens),
            ]
            .into_iter()
            .collect()
        })
    }

    fn __repr__(&self) -> String {
        format!("memlane.Embedder({:?})", self.spec)
    }
}
