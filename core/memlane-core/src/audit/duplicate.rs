//! Duplicate vectors of one space: exact (by their bytes) and near (among neighbours).

use std::collections::HashMap;

use super::digest16;
use crate::compat::Approximation;
use crate::migration::{CheckKind, InvariantSpec};
use crate::report::{InvariantResult, SAMPLE_IDS};

/// Exact duplicate vectors of one space (by their bytes).
#[derive(Debug, Default)]
pub struct DuplicateAudit {
    seen: HashMap<[u8; 16], Box<str>>,
    total: u64,
    dupes: u64,
    samples: Vec<String>,
    first: Option<String>,
    searched: Option<String>,
}

impl DuplicateAudit {
    /// Feed one vector.
    pub fn feed(&mut self, id: &str, v: &[f32]) {
        self.total += 1;
        let mut bytes = Vec::with_capacity(v.len() * 4);
        for x in v {
            // +0.0 and -0.0 are the same vector
            let x = if *x == 0.0 { 0.0f32 } else { *x };
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        let key = digest16(&bytes);
        match self.seen.get(&key) {
            Some(first) => {
                self.dupes += 1;
                if self.samples.len() < SAMPLE_IDS {
                    self.samples.push(id.to_owned());
                }
                if self.first.is_none() {
                    self.first = Some(format!("`{id}` has the same vector as `{first}`"));
                }
            }
            None => {
                self.seen.insert(key, id.into());
            }
        }
    }

    /// Add near-duplicate pairs found among nearest neighbours (cosine ≥ `near`).
    pub fn near_pairs(&mut self, pairs: &[(String, String, f64)]) {
        for (a, b, c) in pairs {
            self.dupes += 1;
            if self.samples.len() < SAMPLE_IDS {
                self.samples.push(a.clone());
            }
            if self.first.is_none() {
                self.first = Some(format!(
                    "`{a}` and `{b}` are near-duplicates (cosine {c:.4})"
                ));
            }
        }
    }

    /// Say how the near pairs were searched: `sampled` vectors, through `approx` when
    /// an HNSW graph was used (its measured recall goes into the message).
    pub fn searched(&mut self, sampled: usize, approx: Option<&Approximation>) {
        self.searched = Some(match approx {
            None => format!("near pairs searched exactly among {sampled} vectors"),
            Some(a) => format!(
                "near pairs searched among {sampled} vectors by HNSW (M={}, ef={}), recall@{} vs exact {:.3} on {} checked vectors",
                a.params.m, a.params.ef_search, a.k, a.recall_vs_exact, a.checked_rows
            ),
        });
    }

    /// The result.
    pub fn finish(self, spec: &InvariantSpec, space: &str) -> InvariantResult {
        let mut msg = match &self.first {
            None => format!("{} vectors of `{space}`, no duplicates", self.total),
            Some(f) => format!(
                "{} duplicate vectors among {} of `{space}`; first: {f}",
                self.dupes, self.total
            ),
        };
        if let Some(how) = &self.searched {
            msg = format!("{msg} ({how})");
        }
        InvariantResult::from_counts(
            spec.label(),
            CheckKind::Duplicates,
            spec.severity,
            spec.mostly,
            self.total,
            self.dupes,
            self.samples,
            msg,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: CheckKind) -> InvariantSpec {
        InvariantSpec::builtin(kind)
    }

    #[test]
    fn duplicates() {
        let mut d = DuplicateAudit::default();
        d.feed("a", &[1.0, 0.0]);
        d.feed("b", &[1.0, -0.0]);
        d.feed("c", &[0.0, 1.0]);
        let r = d.finish(&spec(CheckKind::Duplicates), "s");
        assert_eq!((r.failed, r.sample_ids.clone()), (1, vec!["b".to_owned()]));
    }
}
