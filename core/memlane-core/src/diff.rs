//! Two stores (dev and prod, or two versions) compared as the state they carry: applied
//! migrations, schema, spaces (identity, fingerprints, the vectors of shared records,
//! the distribution drift), row counts per kind and scope, records only on one side
//! and records whose content differs. The verdict is `same`, `differ`, or
//! `incompatible` (the two cannot be treated as the same deployment: an applied
//! migration edited on one side, or a space of the same name holding another model).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::audit::{DigestState, id_key};
use crate::report::SAMPLE_IDS;

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffSide {
    /// The store.
    pub uri: String,
    /// Its version.
    pub version: u64,
    /// Live records.
    pub rows: u64,
    /// Its active space.
    pub active_space: Option<String>,
}

/// The verdict of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffVerdict {
    /// Nothing differs.
    Same,
    /// They differ (records, migrations not applied on one side, schema, drift).
    Differ,
    /// They cannot be the same deployment (an applied migration differs, or a space of
    /// one name holds another model).
    Incompatible,
}

/// Applied migrations on each side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationsDiff {
    /// Applied only on A (files).
    pub only_a: Vec<String>,
    /// Applied only on B.
    pub only_b: Vec<String>,
    /// Applied on both with different checksums (the file was edited in between).
    pub checksum_differs: Vec<String>,
}

/// Fields on each side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchemaDiff {
    /// `name: type` only on A.
    pub only_a: Vec<String>,
    /// `name: type` only on B.
    pub only_b: Vec<String>,
    /// `name: type on A / type on B`.
    pub type_differs: Vec<String>,
}

/// One space compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpaceDiff {
    /// Space name.
    pub name: String,
    /// Its identity on A (model, revision, dimension, metric), if it exists there.
    pub a: Option<String>,
    /// On B.
    pub b: Option<String>,
    /// The lowest cosine between the two sides' recorded fingerprint vectors (when
    /// both recorded one): below 0.999 another model made one of them.
    pub fingerprint_cosine: Option<f64>,
    /// Shared records with the same content whose vectors were compared.
    pub paired: usize,
    /// Mean cosine between the two sides' vectors of those records (1 = the same model).
    pub paired_cosine: Option<f64>,
    /// The lowest such cosine.
    pub paired_min_cosine: Option<f64>,
    /// MMD² of the two sides' vector samples (the drift statistic `validate` uses).
    pub mmd2: Option<f64>,
    /// Its permutation p-value.
    pub p_value: Option<f64>,
    /// Whether the distribution moved (p ≤ 0.01 and MMD² > 0.01).
    pub moved: Option<bool>,
}

impl SpaceDiff {
    /// Whether a space of this name holds another model on one side: identities
    /// differ, fingerprints differ, or the same records' vectors disagree.
    pub fn swapped(&self) -> bool {
        if let (Some(a), Some(b)) = (&self.a, &self.b)
            && a != b
        {
            return true;
        }
        self.fingerprint_cosine.is_some_and(|c| c < 0.999)
            || self.paired_cosine.is_some_and(|c| c < 0.99)
    }
}

/// Records compared by id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordsDiff {
    /// Ids only on A.
    pub only_a: u64,
    /// Ids only on B.
    pub only_b: u64,
    /// Shared ids whose content or metadata differ.
    pub changed: u64,
    /// Some ids only on A.
    pub sample_only_a: Vec<String>,
    /// Some ids only on B.
    pub sample_only_b: Vec<String>,
    /// Some changed ids.
    pub sample_changed: Vec<String>,
}

/// Two stores compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreDiff {
    /// Side A.
    pub a: DiffSide,
    /// Side B.
    pub b: DiffSide,
    /// The verdict.
    pub verdict: DiffVerdict,
    /// Why (one line each; empty when the same).
    pub reasons: Vec<String>,
    /// Applied migrations.
    pub migrations: MigrationsDiff,
    /// Fields.
    pub schema: SchemaDiff,
    /// Spaces, by name.
    pub spaces: Vec<SpaceDiff>,
    /// Live records per `kind` (A, B).
    pub rows_by_kind: BTreeMap<String, (u64, u64)>,
    /// Live records per scope (`agent_id/user_id`) (A, B).
    pub rows_by_scope: BTreeMap<String, (u64, u64)>,
    /// Records by id.
    pub records: RecordsDiff,
}

impl StoreDiff {
    /// Decide the verdict and its reasons from the parts.
    pub fn decide(&mut self) {
        let mut worst = DiffVerdict::Same;
        let mut reasons = Vec::new();
        let mut note = |v: DiffVerdict, r: String| {
            if v == DiffVerdict::Incompatible || worst == DiffVerdict::Same {
                worst = v;
            }
            reasons.push(r);
        };
        let m = &self.migrations;
        for f in &m.checksum_differs {
            note(
                DiffVerdict::Incompatible,
                format!("migration {f} was applied with different contents on each side"),
            );
        }
        for (side, files) in [("A", &m.only_a), ("B", &m.only_b)] {
            if !files.is_empty() {
                note(
                    DiffVerdict::Differ,
                    format!("migrations applied only on {side}: {}", files.join(", ")),
                );
            }
        }
        for s in &self.spaces {
            match (&s.a, &s.b) {
                (Some(_), None) => {
                    note(DiffVerdict::Differ, format!("space `{}` only on A", s.name))
                }
                (None, Some(_)) => {
                    note(DiffVerdict::Differ, format!("space `{}` only on B", s.name))
                }
                _ if s.swapped() => note(DiffVerdict::Incompatible, swap_reason(s)),
                _ if s.moved == Some(true) => note(
                    DiffVerdict::Differ,
                    format!(
                        "space `{}`: the vectors' distribution moved (MMD² {:.4})",
                        s.name,
                        s.mmd2.unwrap_or(0.0)
                    ),
                ),
                _ => {}
            }
        }
        if self.a.active_space != self.b.active_space {
            note(
                DiffVerdict::Differ,
                format!(
                    "active space: {} on A, {} on B",
                    self.a.active_space.as_deref().unwrap_or("none"),
                    self.b.active_space.as_deref().unwrap_or("none")
                ),
            );
        }
        let sc = &self.schema;
        if !sc.only_a.is_empty() || !sc.only_b.is_empty() || !sc.type_differs.is_empty() {
            note(
                DiffVerdict::Differ,
                format!(
                    "schema: {} field(s) only on A, {} only on B, {} of another type",
                    sc.only_a.len(),
                    sc.only_b.len(),
                    sc.type_differs.len()
                ),
            );
        }
        let r = &self.records;
        if r.only_a + r.only_b + r.changed > 0 {
            note(
                DiffVerdict::Differ,
                format!(
                    "records: {} only on A, {} only on B, {} with other content",
                    r.only_a, r.only_b, r.changed
                ),
            );
        }
        self.verdict = worst;
        self.reasons = reasons;
    }
}

fn swap_reason(s: &SpaceDiff) -> String {
    let mut why = Vec::new();
    if s.a != s.b {
        why.push(format!(
            "identity {} on A, {} on B",
            s.a.as_deref().unwrap_or("?"),
            s.b.as_deref().unwrap_or("?")
        ));
    }
    if let Some(c) = s.fingerprint_cosine.filter(|c| *c < 0.999) {
        why.push(format!(
            "fingerprints disagree (lowest canary cosine {c:.3})"
        ));
    }
    if let Some(c) = s.paired_cosine.filter(|c| *c < 0.99) {
        why.push(format!(
            "the same {} records have other vectors (mean cosine {c:.3})",
            s.paired
        ));
    }
    format!(
        "space `{}` holds another model on one side: {}",
        s.name,
        why.join("; ")
    )
}

/// The records of two stores compared by id, fed one row at a time: A's rows first
/// (id and a digest of what the row holds), then B's.
#[derive(Debug, Default)]
pub struct RecordComparer {
    a: HashMap<u128, (u128, bool, Box<str>), DigestState>,
    out: RecordsDiff,
    /// Shared ids with the same digest (up to `keep_paired` of them, spread by arrival).
    paired: Vec<String>,
    keep_paired: usize,
}

impl RecordComparer {
    /// A comparer that keeps up to `keep_paired` ids of unchanged shared records.
    pub fn new(keep_paired: usize) -> Self {
        RecordComparer {
            keep_paired,
            ..Self::default()
        }
    }

    /// A row of A.
    pub fn a(&mut self, id: &str, digest: u128) {
        self.a.insert(id_key(id), (digest, false, id.into()));
    }

    /// A row of B.
    pub fn b(&mut self, id: &str, digest: u128) {
        match self.a.get_mut(&id_key(id)) {
            None => {
                self.out.only_b += 1;
                push_sample(&mut self.out.sample_only_b, id);
            }
            Some((d, seen, _)) => {
                *seen = true;
                if *d == digest {
                    if self.paired.len() < self.keep_paired {
                        self.paired.push(id.to_owned());
                    }
                } else {
                    self.out.changed += 1;
                    push_sample(&mut self.out.sample_changed, id);
                }
            }
        }
    }

    /// The comparison, and the ids of unchanged shared records kept.
    pub fn finish(mut self) -> (RecordsDiff, Vec<String>) {
        let mut only_a: Vec<&str> = self
            .a
            .values()
            .filter(|(_, seen, _)| !seen)
            .map(|(_, _, id)| &**id)
            .collect();
        self.out.only_a = only_a.len() as u64;
        only_a.sort_unstable();
        self.out.sample_only_a = only_a
            .iter()
            .take(SAMPLE_IDS)
            .map(|s| (*s).to_owned())
            .collect();
        self.out.sample_only_b.sort();
        self.out.sample_changed.sort();
        (self.out, self.paired)
    }
}

fn push_sample(v: &mut Vec<String>, id: &str) {
    if v.len() < SAMPLE_IDS {
        v.push(id.to_owned());
    }
}

impl fmt::Display for StoreDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = match self.verdict {
            DiffVerdict::Same => "SAME",
            DiffVerdict::Differ => "DIFFER",
            DiffVerdict::Incompatible => "INCOMPATIBLE",
        };
        writeln!(
            f,
            "A: {} (version {}, {} rows)",
            self.a.uri, self.a.version, self.a.rows
        )?;
        writeln!(
            f,
            "B: {} (version {}, {} rows)",
            self.b.uri, self.b.version, self.b.rows
        )?;
        writeln!(f, "verdict: {v}")?;
        for r in &self.reasons {
            writeln!(f, "  - {r}")?;
        }
        for s in &self.spaces {
            write!(f, "space {}: ", s.name)?;
            match (&s.a, &s.b) {
                (Some(a), Some(b)) if a == b => write!(f, "{a}")?,
                (a, b) => write!(
                    f,
                    "{} / {}",
                    a.as_deref().unwrap_or("absent"),
                    b.as_deref().unwrap_or("absent")
                )?,
            }
            if let Some(c) = s.paired_cosine {
                write!(
                    f,
                    "; same records' vectors: mean cosine {c:.4} over {}",
                    s.paired
                )?;
            }
            if let Some(c) = s.fingerprint_cosine {
                write!(f, "; fingerprint cosine {c:.4}")?;
            }
            if let (Some(m), Some(p)) = (s.mmd2, s.p_value) {
                write!(f, "; drift MMD² {m:.4} (p {p:.3})")?;
            }
            writeln!(f)?;
        }
        let r = &self.records;
        writeln!(
            f,
            "records: {} only on A {:?}, {} only on B {:?}, {} changed {:?}",
            r.only_a, r.sample_only_a, r.only_b, r.sample_only_b, r.changed, r.sample_changed
        )?;
        for (k, (a, b)) in &self.rows_by_kind {
            if a != b {
                writeln!(f, "kind {k}: {a} on A, {b} on B")?;
            }
        }
        for (k, (a, b)) in &self.rows_by_scope {
            if a != b {
                writeln!(f, "scope {k}: {a} on A, {b} on B")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_compared_by_id_and_digest() {
        let mut c = RecordComparer::new(10);
        for (id, d) in [("a", 1), ("b", 2), ("c", 3)] {
            c.a(id, d);
        }
        for (id, d) in [("b", 2), ("c", 9), ("d", 4)] {
            c.b(id, d);
        }
        let (r, paired) = c.finish();
        assert_eq!((r.only_a, r.only_b, r.changed), (1, 1, 1));
        assert_eq!(
            (r.sample_only_a, r.sample_only_b, r.sample_changed),
            (vec!["a".into()], vec!["d".into()], vec!["c".into()])
        );
        assert_eq!(paired, vec!["b".to_owned()]);
    }

    #[test]
    fn a_swapped_model_is_incompatible() {
        let side = |v| DiffSide {
            uri: "s".into(),
            version: v,
            rows: 1,
            active_space: Some("x".into()),
        };
        let mut d = StoreDiff {
            a: side(1),
            b: side(1),
            verdict: DiffVerdict::Same,
            reasons: vec![],
            migrations: MigrationsDiff::default(),
            schema: SchemaDiff::default(),
            spaces: vec![SpaceDiff {
                name: "x".into(),
                a: Some("m 384d".into()),
                b: Some("m 384d".into()),
                paired: 100,
                paired_cosine: Some(0.1),
                ..SpaceDiff::default()
            }],
            rows_by_kind: BTreeMap::new(),
            rows_by_scope: BTreeMap::new(),
            records: RecordsDiff::default(),
        };
        d.decide();
        assert_eq!(d.verdict, DiffVerdict::Incompatible);
        assert!(d.reasons[0].contains("another model"), "{:?}", d.reasons);
        d.spaces[0].paired_cosine = Some(1.0);
        d.decide();
        assert_eq!(d.verdict, DiffVerdict::Same);
        d.records.only_b = 2;
        d.decide();
        assert_eq!(d.verdict, DiffVerdict::Differ);
    }
}
