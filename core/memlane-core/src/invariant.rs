//! Minimal invariant checks over plain columns (the store feeds them batch by batch).

use std::collections::HashSet;

use crate::migration::{CheckKind, InvariantSpec};
use crate::report::{InvariantResult, SAMPLE_IDS};
use crate::space::Space;

/// Ids unique and non-null, fed id by id.
#[derive(Debug, Default)]
pub struct IdAudit {
    /// blake3-128 of every id seen (no allocation per row).
    seen: HashSet<u128, crate::audit::DigestState>,
    total: u64,
    nulls: u64,
    dupes: u64,
    samples: Vec<String>,
}

impl IdAudit {
    /// An audit expecting about `rows` ids (so its table never regrows).
    pub fn with_capacity(rows: usize) -> Self {
        IdAudit {
            seen: std::collections::HashSet::with_capacity_and_hasher(rows, Default::default()),
            ..Self::default()
        }
    }

    /// The keys of the ids seen ([`crate::audit::id_key`]), for audits that share them.
    pub fn keys(&self) -> &std::collections::HashSet<u128, crate::audit::DigestState> {
        &self.seen
    }

    /// Feed one id (`None` = null).
    pub fn feed(&mut self, id: Option<&str>) {
        self.feed_key(id.map(|id| (id, crate::audit::id_key(id))));
    }

    /// [`Self::feed`] with the id's [`crate::audit::id_key`] already computed.
    pub fn feed_key(&mut self, id: Option<(&str, u128)>) {
        self.total += 1;
        match id {
            None => {
                self.nulls += 1;
                if self.samples.len() < SAMPLE_IDS {
                    self.samples.push("<null>".into());
                }
            }
            Some((id, key)) => {
                if !self.seen.insert(key) {
                    self.dupes += 1;
                    if self.samples.len() < SAMPLE_IDS {
                        self.samples.push(id.to_owned());
                    }
                }
            }
        }
    }

    /// The result.
    pub fn finish(self, spec: &InvariantSpec) -> InvariantResult {
        let failed = self.nulls + self.dupes;
        let msg = if failed == 0 {
            format!("{} ids, all unique and non-null", self.total)
        } else {
            format!(
                "{} null and {} duplicate ids among {}",
                self.nulls, self.dupes, self.total
            )
        };
        InvariantResult::from_counts(
            spec.label(),
            CheckKind::IdsUnique,
            spec.severity,
            spec.mostly,
            self.total,
            failed,
            self.samples,
            msg,
        )
    }
}

/// Vectors of a space finite, non-zero (cosine) and of the right dimension.
#[derive(Debug)]
pub struct VectorAudit {
    space: Space,
    norm_range: (Option<f64>, Option<f64>),
    total: u64,
    missing: u64,
    failed: u64,
    samples: Vec<String>,
    first: Option<String>,
}

impl VectorAudit {
    /// A new audit for `space`.
    pub fn new(space: Space) -> Self {
        VectorAudit {
            space,
            norm_range: (None, None),
            total: 0,
            missing: 0,
            failed: 0,
            samples: Vec::new(),
            first: None,
        }
    }

    /// Also require norms within `min..=max` (either bound optional).
    #[must_use]
    pub fn with_norm_range(mut self, min: Option<f64>, max: Option<f64>) -> Self {
        self.norm_range = (min, max);
        self
    }

    fn norm_error(&self, id: &str, v: &[f32]) -> Option<String> {
        let (lo, hi) = self.norm_range;
        if lo.is_none() && hi.is_none() {
            return None;
        }
        let n = v
            .iter()
            .map(|x| f64::from(*x) * f64::from(*x))
            .sum::<f64>()
            .sqrt();
        (lo.is_some_and(|l| n < l) || hi.is_some_and(|h| n > h)).then(|| {
            format!(
                "record `{id}`: vector norm {n:.4} of space `{}` is outside [{}, {}]",
                self.space.name,
                lo.map_or("0".into(), |l| l.to_string()),
                hi.map_or("inf".into(), |h| h.to_string())
            )
        })
    }

    /// Feed one vector (`None` = missing, which counts as a failure when `required`).
    pub fn feed(&mut self, id: &str, v: Option<&[f32]>, required: bool) {
        self.total += 1;
        let err = match v {
            Some(v) => self
                .space
                .check_vector(id, v)
                .err()
                .map(|e| e.to_string())
                .or_else(|| self.norm_error(id, v)),
            None if required => Some(format!(
                "record `{id}`: no vector for space `{}`",
                self.space.name
            )),
            None => {
                self.missing += 1;
                None
            }
        };
        if let Some(e) = err {
            self.failed += 1;
            if self.samples.len() < SAMPLE_IDS {
                self.samples.push(id.to_owned());
            }
            self.first.get_or_insert(e);
        }
    }

    /// The result.
    pub fn finish(self, spec: &InvariantSpec) -> InvariantResult {
        let msg = match &self.first {
            None if self.missing > 0 => format!(
                "{} vectors of `{}` valid, {} rows without one yet",
                self.total - self.missing,
                self.space.name,
                self.missing
            ),
            None => format!("{} vectors of `{}` valid", self.total, self.space.name),
            Some(e) => format!(
                "{} of {} vectors of `{}` invalid; first: {e}",
                self.failed, self.total, self.space.name
            ),
        };
        let mut name = spec.label();
        if spec.space.is_none() {
            name = format!("vectors_valid[{}]", self.space.name);
        }
        InvariantResult::from_counts(
            name,
            CheckKind::VectorsValid,
            spec.severity,
            spec.mostly,
            self.total,
            self.failed,
            self.samples,
            msg,
        )
    }
}

/// rows before - deleted + added = after.
pub fn rows_accounted(
    spec: &InvariantSpec,
    before: u64,
    deleted: u64,
    added: u64,
    after: u64,
) -> InvariantResult {
    let expected = (before + added).saturating_sub(deleted);
    let ok = expected == after && deleted <= before + added;
    InvariantResult::from_counts(
        spec.label(),
        CheckKind::RowsAccounted,
        spec.severity,
        1.0,
        after,
        u64::from(!ok),
        vec![],
        format!("{before} - {deleted} deleted + {added} added = {expected}, store has {after}"),
    )
}

/// The row count within `min..=max`.
pub fn row_count(spec: &InvariantSpec, after: u64) -> InvariantResult {
    let ok = spec.min.is_none_or(|m| after >= m) && spec.max.is_none_or(|m| after <= m);
    let bounds = match (spec.min, spec.max) {
        (Some(a), Some(b)) => format!("between {a} and {b}"),
        (Some(a), None) => format!("at least {a}"),
        (None, Some(b)) => format!("at most {b}"),
        (None, None) => "any number".to_owned(),
    };
    InvariantResult::from_counts(
        spec.label(),
        CheckKind::RowCount,
        spec.severity,
        1.0,
        after,
        u64::from(!ok),
        vec![],
        format!("{after} rows, expected {bounds}"),
    )
}

/// A SQL expression evaluated by the store: `failed` rows did not satisfy it.
pub fn expression(
    spec: &InvariantSpec,
    total: u64,
    failed: u64,
    samples: Vec<String>,
) -> InvariantResult {
    let expr = spec.expr.as_deref().unwrap_or("");
    InvariantResult::from_counts(
        spec.label(),
        CheckKind::Expression,
        spec.severity,
        spec.mostly,
        total,
        failed,
        samples,
        format!(
            "{} of {total} rows satisfy `{expr}` (mostly {})",
            total - failed,
            spec.mostly
        ),
    )
}

/// The invariants checked after every step even when a file declares none.
pub fn builtin_invariants() -> Vec<InvariantSpec> {
    vec![
        InvariantSpec::builtin(CheckKind::RowsAccounted),
        InvariantSpec::builtin(CheckKind::IdsUnique),
        InvariantSpec::builtin(CheckKind::VectorsValid),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_vectors() {
        let spec = InvariantSpec::builtin(CheckKind::IdsUnique);
        let mut a = IdAudit::default();
        for id in [Some("a"), Some("b"), Some("a"), None] {
            a.feed(id);
        }
        let r = a.finish(&spec);
        assert!(
            !r.passed && r.failed == 2 && r.sample_ids == vec!["a", "<null>"],
            "{r:?}"
        );

        let mut v = VectorAudit::new(Space::new("s", 2));
        v.feed("x", Some(&[1.0, 0.0]), true);
        v.feed("y", Some(&[f32::NAN, 0.0]), true);
        v.feed("z", None, true);
        let r = v.finish(&InvariantSpec::builtin(CheckKind::VectorsValid));
        assert_eq!((r.failed, r.passed), (2, false));
        assert!(r.message.contains("`y`"), "{}", r.message);

        let mut lax = InvariantSpec::builtin(CheckKind::Expression);
        lax.mostly = 0.9;
        assert!(expression(&lax, 100, 5, vec![]).passed);
        assert!(!expression(&lax, 100, 11, vec![]).passed);
        assert!(!rows_accounted(&spec, 10, 2, 0, 9).passed);
        assert!(rows_accounted(&spec, 10, 2, 1, 9).passed);
    }
}
