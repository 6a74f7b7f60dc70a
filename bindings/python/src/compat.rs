//! `memlane.compat` on plain arrays: the same report `memlane compat` gives.

use memlane_core::Space as CoreSpace;
use pyo3::prelude::*;

use crate::error::{input, to_py};

use crate::floats;

/// Compatibility report (JSON) of paired vectors: `old` (n × d_old) and `new`
/// (n × d_new) as float32 bytes of the same n records. `queries` is optional:
/// (old query bytes, new query bytes, relevant row indices per query).
#[pyfunction]
#[pyo3(signature = (old, old_dim, new, new_dim, *, k=10, metric="cosine", queries=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub(crate) fn compat_json(
    py: Python<'_>,
    old: &[u8],
    old_dim: usize,
    new: &[u8],
    new_dim: usize,
    k: usize,
    metric: &str,
    queries: Option<(Vec<u8>, Vec<u8>, Vec<Vec<usize>>)>,
) -> PyResult<(String, String)> {
    let (o, n) = (floats(old), floats(new));
    if old_dim == 0 || new_dim == 0 || o.len() / old_dim != n.len() / new_dim {
        return Err(input(format!(
            "old has {} rows of {old_dim} and new {} rows of {new_dim}; pass the same records in both spaces",
            o.len() / old_dim.max(1),
            n.len() / new_dim.max(1)
        )));
    }
    let metric = memlane_core::space::Metric::parse(metric).map_err(|e| input(e.to_string()))?;
    let os = CoreSpace::new("old", old_dim).with_metric(metric);
    let ns = CoreSpace::new("new", new_dim).with_metric(metric);
    let ids: Vec<String> = (0..o.len() / old_dim).map(|i| i.to_string()).collect();
    let sample = memlane_store::PairedSample {
        ids,
        old: o,
        new: n,
    };
    let q = queries.map(|(qo, qn, rel)| memlane_store::Queries {
        old: floats(&qo),
        new: floats(&qn),
        relevant: rel
            .into_iter()
            .map(|r| r.into_iter().map(|i| i.to_string()).collect())
            .collect(),
    });
    let r = py
        .detach(|| memlane_store::compat_report(&sample, &os, &ns, k, q.as_ref()))
        .map_err(|e| to_py(py, e, None))?;
    crate::store::json_text(&r)
}
