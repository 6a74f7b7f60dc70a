//! Embedding spaces: the full identity of the model that produced a vector column.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result, VectorError};

/// Distance metric of a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine distance (1 - cos).
    #[default]
    Cosine,
    /// Negative dot product.
    Dot,
    /// Euclidean distance.
    L2,
}

impl Metric {
    /// Name as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::L2 => "l2",
        }
    }

    /// Parse a metric name as written in files and APIs: `cosine`, `dot` or `l2`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cosine" => Ok(Metric::Cosine),
            "dot" => Ok(Metric::Dot),
            "l2" | "euclidean" => Ok(Metric::L2),
            other => Err(CoreError::Space {
                space: String::new(),
                message: format!("unknown metric `{other}`; use cosine, dot or l2"),
            }),
        }
    }
}

/// Element type of stored vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float.
    #[default]
    F32,
}

/// Canary texts and the vectors a model gave for them: catches a different model or
/// runtime behind the same name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Fingerprint {
    /// Canary texts.
    pub texts: Vec<String>,
    /// One vector per canary text.
    pub vectors: Vec<Vec<f32>>,
}

/// An embedding space: a named vector column with the identity of the model behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Space {
    /// Unique name within the store (`[a-z0-9_]+`).
    pub name: String,
    /// Who serves the model (e.g. `openai`, `sentence-transformers`, `memlane`).
    #[serde(default)]
    pub provider: String,
    /// Model name.
    #[serde(default)]
    pub model: String,
    /// Model revision (commit, version tag, file hash).
    #[serde(default)]
    pub revision: String,
    /// Vector dimension.
    pub dimension: usize,
    /// Distance metric.
    #[serde(default)]
    pub metric: Metric,
    /// Whether vectors are unit length.
    #[serde(default)]
    pub normalized: bool,
    /// Element type.
    #[serde(default)]
    pub dtype: DType,
    /// Column that holds this space's vectors (default `vec_<name>`).
    #[serde(default)]
    pub column: String,
    /// Optional canary fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// Prefix the model expects before queries (e.g. `query: `).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query_prefix: String,
    /// Prefix the model expects before passages (e.g. `passage: `).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub passage_prefix: String,
    /// The vector index built on the space (part of its identity), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<crate::index::IndexSpec>,
    /// The embedder that writes this space's vectors, remembered so that a later
    /// session adds and searches text without naming it: a name (an embedders
    /// configuration's `[embedders.NAME]`, a function registered under it, a built-in
    /// `hash384v2`) or a one-line spec that runs nothing local (`hash:`, `http:`).
    /// Set by the `reembed` that filled the space, or explicitly; not part of the
    /// space's identity (the fingerprint checks the model it names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
}

/// Norm tolerance for spaces declared normalised.
pub const NORM_TOLERANCE: f32 = 1e-2;

impl Space {
    /// A space with the given name and dimension and defaults elsewhere (cosine, f32).
    pub fn new(name: impl Into<String>, dimension: usize) -> Self {
        let name = name.into();
        Space {
            column: default_column(&name),
            name,
            provider: String::new(),
            model: String::new(),
            revision: String::new(),
            dimension,
            metric: Metric::Cosine,
            normalized: false,
            dtype: DType::F32,
            fingerprint: None,
            query_prefix: String::new(),
            passage_prefix: String::new(),
            index: None,
            embedder: None,
        }
    }

    /// Builder-style setter for provider and model.
    #[must_use]
    pub fn with_model(mut self, provider: &str, model: &str, revision: &str) -> Self {
        provider.clone_into(&mut self.provider);
        model.clone_into(&mut self.model);
        revision.clone_into(&mut self.revision);
        self
    }

    /// Builder-style setter for the metric.
    #[must_use]
    pub fn with_metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        self
    }

    /// Builder-style setter for normalisation.
    #[must_use]
    pub fn with_normalized(mut self, normalized: bool) -> Self {
        self.normalized = normalized;
        self
    }

    /// Parse `NAME:DIM[:METRIC][:normalized]` (e.g. `minilm:384:cosine:normalized`).
    pub fn parse_spec(spec: &str) -> Result<Self> {
        let bad = |message: String| CoreError::Space {
            space: spec.to_owned(),
            message,
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let [name, dim, rest @ ..] = parts.as_slice() else {
            return Err(bad(
                "write NAME:DIM[:METRIC][:normalized], e.g. minilm:384:cosine".into(),
            ));
        };
        let dim: usize = dim
            .parse()
            .map_err(|_| bad(format!("`{dim}` is not a dimension")))?;
        let mut sp = Space::new(*name, dim);
        for r in rest {
            match *r {
                "normalized" | "normalised" => sp.normalized = true,
                other => {
                    sp.metric = Metric::parse(other).map_err(|_| {
                        bad(format!(
                            "unknown option `{other}` (cosine, dot, l2, normalized)"
                        ))
                    })?;
                }
            }
        }
        sp.validated()
    }

    /// Fill defaults (column name) and check the definition.
    pub fn validated(mut self) -> Result<Self> {
        if self.column.is_empty() {
            self.column = default_column(&self.name);
        }
        check_name(&self.name).map_err(|message| CoreError::Space {
            space: self.name.clone(),
            message,
        })?;
        if self.dimension == 0 || self.dimension > 65_536 {
            return Err(CoreError::Space {
                space: self.name.clone(),
                message: format!("dimension {} is out of range 1..=65536", self.dimension),
            });
        }
        if let Some(fp) = &self.fingerprint {
            if fp.texts.len() != fp.vectors.len() {
                return Err(CoreError::Space {
                    space: self.name.clone(),
                    message: format!(
                        "fingerprint has {} texts but {} vectors",
                        fp.texts.len(),
                        fp.vectors.len()
                    ),
                });
            }
            if let Some(v) = fp.vectors.iter().find(|v| v.len() != self.dimension) {
                return Err(CoreError::Space {
                    space: self.name.clone(),
                    message: format!(
                        "fingerprint vector of dimension {} in a space of dimension {}",
                        v.len(),
                        self.dimension
                    ),
                });
            }
        }
        Ok(self)
    }

    /// A one-line identity, e.g. `minilm (sentence-transformers/all-MiniLM-L6-v2@abc, 384d cosine, normalised)`.
    pub fn identity(&self) -> String {
        let mut model = String::new();
        if !self.provider.is_empty() {
            model.push_str(&self.provider);
            model.push('/');
        }
        model.push_str(if self.model.is_empty() {
            "?"
        } else {
            &self.model
        });
        if !self.revision.is_empty() {
            model.push('@');
            model.push_str(&self.revision);
        }
        format!(
            "{} ({}, {}d {}{})",
            self.name,
            model,
            self.dimension,
            self.metric.as_str(),
            if self.normalized { ", normalised" } else { "" }
        )
    }

    /// Column holding, per row, the digest of the text its vector was embedded from
    /// (so a gradual re-embed can tell current vectors from stale ones).
    pub fn digest_column(&self) -> String {
        format!("{}__src", self.column)
    }

    /// Digest of the text an embedder sees for a passage of this space (prefix included).
    pub fn passage_digest(&self, text: &str) -> [u8; 16] {
        let mut h = blake3::Hasher::new();
        h.update(self.passage_prefix.as_bytes());
        h.update(text.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        out
    }

    /// Check one vector for this space: dimension, finiteness, non-zero for cosine,
    /// unit norm when the space is normalised.
    pub fn check_vector(&self, id: &str, v: &[f32]) -> Result<(), VectorError> {
        if v.len() != self.dimension {
            return Err(VectorError::Dimension {
                id: id.to_owned(),
                space: self.name.clone(),
                expected: self.dimension,
                got: v.len(),
            });
        }
        let sq = sum_sq(v);
        if !sq.is_finite() {
            // squares of finite f32 cannot overflow an f64 sum: some component is not finite
            if let Some((index, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                return Err(VectorError::NonFinite {
                    id: id.to_owned(),
                    space: self.name.clone(),
                    index,
                    value: x.to_string(),
                });
            }
        }
        if sq == 0.0 && self.metric == Metric::Cosine {
            return Err(VectorError::Zero {
                id: id.to_owned(),
                space: self.name.clone(),
            });
        }
        #[allow(clippy::cast_possible_truncation)]
        let norm = sq.sqrt() as f32;
        if self.normalized && (norm - 1.0).abs() > NORM_TOLERANCE {
            return Err(VectorError::NotNormalized {
                id: id.to_owned(),
                space: self.name.clone(),
                norm,
            });
        }
        Ok(())
    }

    /// Check a flat row-major buffer of `ids.len()` vectors; stops at the first bad one.
    pub fn check_flat<S: AsRef<str>>(&self, ids: &[S], flat: &[f32]) -> Result<(), VectorError> {
        let d = self.dimension;
        if flat.len() != ids.len() * d {
            let got = if ids.is_empty() {
                flat.len()
            } else {
                flat.len() / ids.len()
            };
            return Err(VectorError::Dimension {
                id: ids.first().map_or("?", AsRef::as_ref).to_owned(),
                space: self.name.clone(),
                expected: d,
                got,
            });
        }
        for (id, v) in ids.iter().zip(flat.chunks_exact(d)) {
            self.check_vector(id.as_ref(), v)?;
        }
        Ok(())
    }
}

/// Sum of squares of a vector: in f32 over sixteen independent lanes (so that the loop
/// vectorises; one running sum is bound by the latency of an add per element), redone
/// exactly in f64 when the f32 sum is not a normal positive number (an underflow to zero,
/// an overflow, or a component that is not finite). Not finite exactly when some
/// component is not finite.
fn sum_sq(v: &[f32]) -> f64 {
    let mut acc = [0.0f32; 16];
    let chunks = v.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x * x;
        }
    }
    let mut sq: f32 = acc.iter().sum();
    for x in tail {
        sq += x * x;
    }
    if sq.is_normal() {
        return f64::from(sq);
    }
    v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum()
}

/// Default column of a space.
pub fn default_column(name: &str) -> String {
    format!("vec_{name}")
}

/// Check a space or field identifier: `[a-z_][a-z0-9_]*`, at most 64 chars.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok_first || !ok_rest || name.len() > 64 {
        return Err(format!(
            "`{name}` is not a valid name; use lowercase letters, digits and `_`, starting with a letter (e.g. `{}`)",
            suggest_name(name)
        ));
    }
    Ok(())
}

/// Turn any text into a valid identifier suggestion.
pub fn suggest_name(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'x');
    }
    s.truncate(64);
    s
}

/// Matryoshka truncation: keep the first `dim_out` components of each `dim_in`-vector
/// and renormalise to unit length. Zero prefixes stay zero (and fail the cosine check).
pub fn truncate_flat(flat: &[f32], dim_in: usize, dim_out: usize, out: &mut Vec<f32>) {
    debug_assert!(dim_out <= dim_in);
    out.reserve(flat.len() / dim_in * dim_out);
    for v in flat.chunks_exact(dim_in) {
        let head = &v[..dim_out];
        let start = out.len();
        out.extend_from_slice(head);
        normalize_in_place(&mut out[start..]);
    }
}

/// Scale each `dim`-vector of a flat buffer to unit length (zero vectors stay zero;
/// with `dim` 0 there is nothing to scale).
pub fn normalize_flat(flat: &mut [f32], dim: usize) {
    if dim == 0 {
        return;
    }
    for v in flat.chunks_exact_mut(dim) {
        normalize_in_place(v);
    }
}

/// Scale one vector to unit length (a zero vector stays zero).
pub fn normalize_in_place(v: &mut [f32]) {
    let sq: f32 = v.iter().map(|x| x * x).sum();
    if sq > 0.0 && sq.is_finite() {
        let inv = 1.0 / sq.sqrt();
        for x in v {
            *x *= inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_checks_name_record_and_space() {
        let s = Space::new("minilm", 3);
        let e = s.check_vector("r1", &[1.0, 2.0]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("r1") && msg.contains("minilm") && msg.contains('3') && msg.contains('2'),
            "{msg}"
        );
        assert!(matches!(
            s.check_vector("r2", &[1.0, f32::NAN, 0.0]),
            Err(VectorError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            s.check_vector("r3", &[0.0; 3]),
            Err(VectorError::Zero { .. })
        ));
        let dot = Space::new("d", 3).with_metric(Metric::Dot);
        assert!(dot.check_vector("r3", &[0.0; 3]).is_ok());
        let n = Space::new("n", 2).with_normalized(true);
        assert!(matches!(
            n.check_vector("r4", &[3.0, 4.0]),
            Err(VectorError::NotNormalized { .. })
        ));
        assert!(n.check_vector("r4", &[0.6, 0.8]).is_ok());
    }

    #[test]
    fn truncate_renormalises() {
        let mut out = Vec::new();
        truncate_flat(&[3.0, 4.0, 100.0, 0.0, 2.0, 7.0], 3, 2, &mut out);
        assert_eq!(out.len(), 4);
        assert!((out[0] - 0.6).abs() < 1e-6 && (out[1] - 0.8).abs() < 1e-6);
        assert!((out[2]).abs() < 1e-6 && (out[3] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn specs() {
        let s = Space::parse_spec("e5:384:dot:normalized").unwrap();
        assert_eq!(
            (s.dimension, s.metric, s.normalized, s.column.as_str()),
            (384, Metric::Dot, true, "vec_e5")
        );
        assert!(Space::parse_spec("e5").is_err());
        assert!(
            Space::parse_spec("e5:big")
                .unwrap_err()
                .to_string()
                .contains("big")
        );
        assert!(
            Space::parse_spec("e5:8:hamming")
                .unwrap_err()
                .to_string()
                .contains("hamming")
        );
    }

    #[test]
    fn names() {
        assert!(check_name("minilm_v2").is_ok());
        assert!(check_name("MiniLM").unwrap_err().contains("minilm"));
        assert!(Space::new("a", 0).validated().is_err());
        assert_eq!(Space::new("a", 4).validated().unwrap().column, "vec_a");
    }
}
