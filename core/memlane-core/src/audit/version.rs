//! The version before a step against the one after: ids preserved, content unchanged.

use std::collections::HashMap;

use super::{DigestState, SetDigest, content_digest, id_key};
use crate::migration::{CheckKind, InvariantSpec};
use crate::report::{InvariantResult, SAMPLE_IDS};

/// The version before a step against the version after it, in one table keyed by
/// [`id_key`]: ids preserved (none may appear from nowhere, and exactly the rows the
/// step deleted may disappear) and, when content is compared, every row's content
/// unchanged (per-row [`content_digest`]s, and a root digest per version).
#[derive(Debug, Default)]
pub struct VersionAudit {
    content: bool,
    /// id key -> content digest (0 when content is not compared)
    before: HashMap<u128, u128, DigestState>,
    ids_before: SetDigest,
    ids_after: SetDigest,
    root_before: SetDigest,
    root_after: SetDigest,
    matched: u64,
    unexpected: Vec<String>,
    unexpected_count: u64,
    changed: Vec<String>,
    changed_count: u64,
}

impl VersionAudit {
    /// An audit of the ids, and of the content too when `content`.
    pub fn new(content: bool) -> Self {
        VersionAudit {
            content,
            ..Self::default()
        }
    }

    /// [`Self::new`] expecting about `rows` rows before (so its table never regrows).
    pub fn with_capacity(content: bool, rows: usize) -> Self {
        VersionAudit {
            content,
            before: HashMap::with_capacity_and_hasher(rows, DigestState::default()),
            ..Self::default()
        }
    }

    /// Feed a row of the version before the step.
    pub fn before(&mut self, id: &str, content: Option<&str>) {
        self.before_key(id_key(id), content);
    }

    /// [`Self::before`] with the id's [`id_key`] already computed.
    pub fn before_key(&mut self, key: u128, content: Option<&str>) {
        let d = if self.content {
            content_digest(key, content)
        } else {
            0
        };
        self.before_digest(key, d);
    }

    /// [`Self::before_key`] with the row's [`content_digest`] already computed.
    pub fn before_digest(&mut self, key: u128, digest: u128) {
        self.ids_before.add_digest(key);
        if self.content {
            self.root_before.add_digest(digest);
        }
        self.before.insert(key, digest);
    }

    /// Feed a row of the version after the step (rows other writers added meanwhile
    /// are left out by the caller).
    pub fn after(&mut self, id: &str, content: Option<&str>) {
        self.after_key(id, id_key(id), content);
    }

    /// [`Self::after`] with the id's [`id_key`] already computed.
    pub fn after_key(&mut self, id: &str, key: u128, content: Option<&str>) {
        let d = if self.content {
            content_digest(key, content)
        } else {
            0
        };
        self.after_digest(id, key, d);
    }

    /// [`Self::after_key`] with the row's [`content_digest`] already computed.
    pub fn after_digest(&mut self, id: &str, key: u128, digest: u128) {
        self.ids_after.add_digest(key);
        if self.content {
            self.root_after.add_digest(digest);
        }
        match self.before.get(&key) {
            Some(was) => {
                self.matched += 1;
                if self.content && *was != digest {
                    self.changed_count += 1;
                    if self.changed.len() < SAMPLE_IDS {
                        self.changed.push(id.to_owned());
                    }
                }
            }
            None => {
                self.unexpected_count += 1;
                if self.unexpected.len() < SAMPLE_IDS {
                    self.unexpected.push(id.to_owned());
                }
            }
        }
    }

    /// Ids of the version before that were not seen after.
    pub fn lost(&self) -> u64 {
        (self.before.len() as u64).saturating_sub(self.matched)
    }

    /// Rows whose content changed (0 when content is not compared).
    pub fn changed(&self) -> u64 {
        self.changed_count
    }

    /// The `ids_preserved` result, given how many rows the step deleted.
    pub fn ids_result(&self, spec: &InvariantSpec, deleted: u64) -> InvariantResult {
        let before = self.before.len() as u64;
        let lost = before.saturating_sub(self.matched);
        let extra_lost = lost.saturating_sub(deleted);
        let failed = self.unexpected_count + extra_lost;
        let mut samples = self.unexpected.clone();
        if extra_lost > 0 && samples.len() < SAMPLE_IDS {
            // which ids went missing: the before set minus what was seen after is not
            // kept (memory); name the count instead
            samples.push(format!("<{extra_lost} ids lost>"));
        }
        let msg = if failed == 0 {
            format!(
                "{before} ids before, {} after ({deleted} deleted by the step); set digest {} -> {}",
                self.matched,
                self.ids_before.hex(),
                self.ids_after.hex()
            )
        } else {
            format!(
                "{} ids appeared and {extra_lost} disappeared beyond the {deleted} the step deleted ({before} before, {} after)",
                self.unexpected_count,
                self.ids_after.count()
            )
        };
        InvariantResult::from_counts(
            spec.label(),
            CheckKind::IdsPreserved,
            spec.severity,
            1.0,
            before + self.unexpected_count,
            failed,
            samples,
            msg,
        )
    }

    /// The `content_unchanged` result.
    pub fn content_result(&self, spec: &InvariantSpec) -> InvariantResult {
        let msg = if self.changed_count == 0 {
            format!(
                "content of {} records unchanged; root digest {}",
                self.matched,
                self.root_after.hex()
            )
        } else {
            format!(
                "content of {} of {} records changed (root digest {} -> {})",
                self.changed_count,
                self.matched,
                self.root_before.hex(),
                self.root_after.hex()
            )
        };
        InvariantResult::from_counts(
            spec.label(),
            CheckKind::ContentUnchanged,
            spec.severity,
            spec.mostly,
            self.matched,
            self.changed_count,
            self.changed.clone(),
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
    fn ids_preserved_counts_what_appears_and_disappears() {
        let mut a = VersionAudit::new(false);
        for x in ["a", "b", "c"] {
            a.before(x, None);
        }
        a.after("a", None);
        a.after("z", None);
        let r = a.ids_result(&spec(CheckKind::IdsPreserved), 1);
        // z appeared, and two ids went but the step deleted one
        assert_eq!((r.passed, r.failed), (false, 2), "{r:?}");
        assert!(r.sample_ids.contains(&"z".to_owned()));
        let mut ok = VersionAudit::new(false);
        ok.before("a", None);
        ok.after("a", None);
        assert!(ok.ids_result(&spec(CheckKind::IdsPreserved), 0).passed);
    }

    #[test]
    fn content_changes_are_named() {
        let mut c = VersionAudit::new(true);
        c.before("a", Some("hello"));
        c.before("b", Some("world"));
        c.before("n", None);
        c.after("a", Some("hello"));
        c.after("b", Some("World"));
        c.after("n", Some(""));
        let r = c.content_result(&spec(CheckKind::ContentUnchanged));
        assert_eq!(
            (r.passed, r.sample_ids.clone()),
            (false, vec!["b".to_owned(), "n".to_owned()])
        );
        // long content takes the other branch of the digest, and agrees with itself
        let long = "x".repeat(1000);
        assert_eq!(
            content_digest(1, Some(&long)),
            content_digest(1, Some(&long))
        );
        assert_ne!(
            content_digest(1, Some(&long)),
            content_digest(2, Some(&long))
        );
        assert_ne!(content_digest(1, Some("")), content_digest(1, None));
    }
}
