//! Vector indexes as part of a space's identity: which of Lance's own indexes a space
//! has, with its build and search parameters and the recall it must keep.
//!
//! Pure data: the store builds the index (`create_index` op, or a re-embed that
//! activates a space replacing an indexed one) and measures `index_recall@K` against
//! exact search on a sample.

use serde::{Deserialize, Serialize};

/// Lance's vector index kinds memlane builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    /// IVF partitions, product-quantised vectors (compact; refine for precision).
    IvfPq,
    /// IVF partitions, an HNSW graph per partition over scalar-quantised vectors.
    IvfHnswSq,
    /// IVF partitions over full vectors (exact within the probed partitions).
    IvfFlat,
}

impl std::fmt::Display for IndexKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IndexKind::IvfPq => "ivf_pq",
            IndexKind::IvfHnswSq => "ivf_hnsw_sq",
            IndexKind::IvfFlat => "ivf_flat",
        })
    }
}

/// Recall an index must keep against exact search unless the spec says otherwise.
pub const DEFAULT_MIN_RECALL: f64 = 0.9;
/// Neighbours `index_recall@K` compares.
pub const RECALL_K: usize = 10;

/// A vector index on a space: what to build and how to search it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// Index kind.
    pub kind: IndexKind,
    /// IVF partitions (default: about √rows, at most 256 while rows are few).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<usize>,
    /// PQ sub-vectors (`ivf_pq`; default: dimension / 16, or a divisor of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_vectors: Option<usize>,
    /// PQ bits per code (`ivf_pq`; 4 or 8, default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u8>,
    /// HNSW edges per node (`ivf_hnsw_sq`; default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<usize>,
    /// HNSW candidates while building (`ivf_hnsw_sq`; default 150).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construction: Option<usize>,
    /// Partitions probed per query (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nprobes: Option<usize>,
    /// Candidates re-ranked with full vectors, as a multiple of k (default: 10 for
    /// `ivf_pq`, none for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refine_factor: Option<u32>,
    /// HNSW candidates while searching (`ivf_hnsw_sq`; default: 2k, at least 40).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef: Option<usize>,
    /// Smallest `index_recall@10` against exact search on a sample that the index may
    /// have; below it the step is blocked (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_recall: Option<f64>,
}

impl IndexSpec {
    /// A spec of `kind` with every parameter at its default.
    pub fn new(kind: IndexKind) -> Self {
        IndexSpec {
            kind,
            partitions: None,
            sub_vectors: None,
            bits: None,
            m: None,
            ef_construction: None,
            nprobes: None,
            refine_factor: None,
            ef: None,
            min_recall: None,
        }
    }

    /// Partitions for `rows` rows.
    pub fn partitions_for(&self, rows: usize) -> usize {
        self.partitions.unwrap_or_else(|| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let root = (rows as f64).sqrt() as usize;
            root.clamp(1, 256)
        })
    }

    /// PQ sub-vectors for `dimension` (a divisor of it).
    pub fn sub_vectors_for(&self, dimension: usize) -> usize {
        self.sub_vectors.unwrap_or_else(|| {
            let want = (dimension / 16).max(1);
            (1..=want)
                .rev()
                .find(|s| dimension.is_multiple_of(*s))
                .unwrap_or(1)
        })
    }

    /// Partitions probed per query.
    pub fn nprobes(&self) -> usize {
        self.nprobes.unwrap_or(20)
    }

    /// Refine factor for a query.
    pub fn refine_factor(&self) -> Option<u32> {
        match (self.refine_factor, self.kind) {
            (Some(0), _) => None,
            (Some(r), _) => Some(r),
            (None, IndexKind::IvfPq) => Some(10),
            (None, _) => None,
        }
    }

    /// HNSW search candidates for `k` neighbours.
    pub fn ef_for(&self, k: usize) -> usize {
        self.ef.unwrap_or((2 * k).max(40))
    }

    /// The recall the index must keep.
    pub fn min_recall(&self) -> f64 {
        self.min_recall.unwrap_or(DEFAULT_MIN_RECALL)
    }

    /// Check the parameters against the space's dimension: what is wrong and the fix.
    pub fn check(&self, dimension: usize) -> Result<(), String> {
        if let Some(s) = self.sub_vectors
            && (s == 0 || !dimension.is_multiple_of(s))
        {
            return Err(format!(
                "sub_vectors = {s} does not divide the dimension {dimension}; pick a divisor (e.g. {})",
                IndexSpec::new(self.kind).sub_vectors_for(dimension)
            ));
        }
        if let Some(b) = self.bits
            && b != 4
            && b != 8
        {
            return Err(format!("bits = {b}: PQ codes have 4 or 8 bits"));
        }
        if self.partitions == Some(0) {
            return Err("partitions = 0: an IVF index needs at least one partition".into());
        }
        if let Some(r) = self.min_recall
            && !(0.0..=1.0).contains(&r)
        {
            return Err(format!(
                "min_recall = {r}: a recall is between 0 and 1 (e.g. 0.9)"
            ));
        }
        Ok(())
    }

    /// The same kind and serving parameters for a space of another dimension (what a
    /// re-embed carries over from the space it replaces): dimension-bound parameters
    /// (`sub_vectors`) and the partition count go back to their defaults.
    #[must_use]
    pub fn carried_to(&self, dimension: usize) -> IndexSpec {
        let mut s = self.clone();
        if s.sub_vectors
            .is_some_and(|v| v == 0 || !dimension.is_multiple_of(v))
        {
            s.sub_vectors = None;
        }
        s.partitions = None;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_the_dimension_and_bad_parameters_name_the_fix() {
        let s = IndexSpec::new(IndexKind::IvfPq);
        assert_eq!(s.sub_vectors_for(384), 24);
        assert_eq!(s.sub_vectors_for(100), 5);
        assert_eq!(s.partitions_for(10_000), 100);
        assert_eq!(s.refine_factor(), Some(10));
        let bad = IndexSpec {
            sub_vectors: Some(7),
            ..s.clone()
        };
        let e = bad.check(384).unwrap_err();
        assert!(e.contains("divide") && e.contains("24"), "{e}");
        assert_eq!(bad.carried_to(384).sub_vectors, None);
        let toml = "kind = \"ivf_hnsw_sq\"\nm = 16\nmin_recall = 0.95\n";
        let h: IndexSpec = toml::from_str(toml).unwrap();
        assert_eq!(
            (h.kind, h.m, h.min_recall()),
            (IndexKind::IvfHnswSq, Some(16), 0.95)
        );
        assert_eq!(h.refine_factor(), None);
    }
}
