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
