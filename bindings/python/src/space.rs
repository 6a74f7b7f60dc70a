//! `memlane.Space`: an embedding space's identity (memlane_core::Space).

use memlane_core::Space as CoreSpace;
use pyo3::prelude::*;

use crate::error::input;

/// An embedding space: a named vector column with the full identity of its model.
#[pyclass(module = "memlane", frozen, from_py_object)]
#[derive(Clone)]
pub struct Space {
    pub(crate) inner: CoreSpace,
}

#[pymethods]
impl Space {
    /// Declare a space. `metric` is "cosine", "dot" or "l2"; the column defaults to
    /// `vec_<name>`; `embedder` is the embedder the store remembers for it (a name
    /// given to `memlane.register_embedder`, or a `hash:`/`http:` spec). Invalid names,
    /// dimensions, metrics or references raise `InvalidInputError`.
    #[new]
    #[pyo3(signature = (name, dimension, *, provider="", model="", revision="", metric="cosine", normalized=false, query_prefix="", passage_prefix="", column=None, embedder=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &str,
        dimension: usize,
        provider: &str,
        model: &str,
        revision: &str,
        metric: &str,
        normalized: bool,
        query_prefix: &str,
        passage_prefix: &str,
        column: Option<&str>,
        embedder: Option<&str>,
    ) -> PyResult<Self> {
        let metric =
            memlane_core::space::Metric::parse(metric).map_err(|e| input(e.to_string()))?;
        let mut s = CoreSpace::new(name, dimension)
            .with_model(provider, model, revision)
            .with_metric(metric)
            .with_normalized(normalized);
        query_prefix.clone_into(&mut s.query_prefix);
        passage_prefix.clone_into(&mut s.passage_prefix);
        if let Some(c) = column {
            c.clone_into(&mut s.column);
        }
        if let Some(r) = embedder {
            memlane_store::remembered::check_reference(r).map_err(|e| input(e.to_string()))?;
            s.embedder = Some(r.to_owned());
        }
        let inner = s.validated().map_err(|e| input(e.to_string()))?;
        Ok(Space { inner })
    }

    /// Parse a CLI space spec such as `"e5:384:cosine:normalized"` (see `memlane init --help`).
    #[staticmethod]
    fn parse(spec: &str) -> PyResult<Self> {
        let inner = CoreSpace::parse_spec(spec).map_err(|e| input(e.to_string()))?;
        Ok(Space { inner })
    }

    /// Space name.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }
    /// Vector dimension.
    #[getter]
    fn dimension(&self) -> usize {
        self.inner.dimension
    }
    /// Provider of the model.
    #[getter]
    fn provider(&self) -> &str {
        &self.inner.provider
    }
    /// Model name.
    #[getter]
    fn model(&self) -> &str {
        &self.inner.model
    }
    /// Model revision.
    #[getter]
    fn revision(&self) -> &str {
        &self.inner.revision
    }
    /// Distance metric: "cosine", "dot" or "l2".
    #[getter]
    fn metric(&self) -> &'static str {
        self.inner.metric.as_str()
    }
    /// Whether vectors are unit length.
    #[getter]
    fn normalized(&self) -> bool {
        self.inner.normalized
    }
    /// Column that holds the vectors.
    #[getter]
    fn column(&self) -> &str {
        &self.inner.column
    }
    /// Prefix put before queries.
    #[getter]
    fn query_prefix(&self) -> &str {
        &self.inner.query_prefix
    }
    /// Prefix put before passages.
    #[getter]
    fn passage_prefix(&self) -> &str {
        &self.inner.passage_prefix
    }
    /// The embedder the store remembers for the space (a name or a spec), if any.
    #[getter]
    fn embedder(&self) -> Option<&str> {
        self.inner.embedder.as_deref()
    }
    /// Whether the space carries a canary fingerprint.
    #[getter]
    fn has_fingerprint(&self) -> bool {
        self.inner.fingerprint.is_some()
    }
    /// The identity string, e.g. `e5 = intfloat/multilingual-e5-small@fd1525a (384-d cosine, normalized)`.
    fn identity(&self) -> String {
        self.inner.identity()
    }
    /// The space as a JSON string (serde form of memlane_core::Space).
    fn to_json(&self) -> String {
        serde_json::to_string(&self.inner).unwrap_or_default()
    }
    /// A space from its JSON form (as `to_json` or a store's state gives it).
    #[staticmethod]
    fn from_json(s: &str) -> PyResult<Self> {
        let inner: CoreSpace = serde_json::from_str(s).map_err(|e| input(e.to_string()))?;
        Ok(Space {
            inner: inner.validated().map_err(|e| input(e.to_string()))?,
        })
    }
    fn __repr__(&self) -> String {
        format!("Space({})", self.inner.identity())
    }
    fn __eq__(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}
