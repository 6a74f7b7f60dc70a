//! Accumulators of the data invariants beyond ids and vectors (issue 6): id sets kept
//! across a step, content unchanged, metadata field rules, references between
//! records, duplicate vectors and agent-memory lifecycle rules. Pure: the store feeds
//! them batch by batch (and the browser preview feeds them a sample).

mod digest;
mod duplicate;
mod field;
mod lifecycle;
mod reference;
mod version;

pub use digest::{DigestHasher, DigestState, SetDigest, content_digest, digest16, id_key};
pub use duplicate::DuplicateAudit;
pub use field::{FieldAudit, Scalar};
pub use lifecycle::LifecycleAudit;
pub use reference::ReferenceAudit;
pub use version::VersionAudit;

use crate::migration::{CheckKind, InvariantSpec};
use crate::report::{InvariantResult, SAMPLE_IDS};

/// The failing rows of a check that fails row by row: a count, the first ids, and what
/// was wrong with the first.
struct Failures {
    /// Rows that failed.
    failed: u64,
    /// The first [`SAMPLE_IDS`] failing ids.
    samples: Vec<String>,
    /// What was wrong with the first failing row.
    first: Option<String>,
}

impl Failures {
    /// No failure yet.
    fn new() -> Self {
        Failures {
            failed: 0,
            samples: Vec::new(),
            first: None,
        }
    }

    /// Count row `id` as failed; `why` is asked for the first failure only.
    fn fail(&mut self, id: &str, why: impl FnOnce() -> String) {
        self.failed += 1;
        if self.samples.len() < SAMPLE_IDS {
            self.samples.push(id.to_owned());
        }
        if self.first.is_none() {
            self.first = Some(why());
        }
    }

    /// The result of `spec` (a `kind` check) over `total` rows, with the message `ok`
    /// when no row failed.
    fn result(
        self,
        spec: &InvariantSpec,
        kind: CheckKind,
        total: u64,
        ok: String,
    ) -> InvariantResult {
        let msg = match self.first {
            None => ok,
            Some(f) => format!("{} of {total} rows fail; first: {f}", self.failed),
        };
        InvariantResult::from_counts(
            spec.label(),
            kind,
            spec.severity,
            spec.mostly,
            total,
            self.failed,
            self.samples,
            msg,
        )
    }
}
