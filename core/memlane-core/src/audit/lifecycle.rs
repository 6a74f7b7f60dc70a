//! Agent-memory lifecycle rules: superseded records are inactive, timestamps in order.

use std::collections::HashSet;

use super::{DigestState, Failures, id_key};
use crate::migration::{CheckKind, InvariantSpec};
use crate::report::InvariantResult;

/// Agent-memory lifecycle: a record superseded by another record is not `active`, and
/// `updated_at` is not before `created_at`. Records are kept by [`id_key`].
#[derive(Debug, Default)]
pub struct LifecycleAudit {
    /// every record's key (unless shared, see [`Self::sharing_ids`])
    ids: HashSet<u128, DigestState>,
    shared: bool,
    /// records whose status is not `active` (few, in a live store)
    inactive: HashSet<u128, DigestState>,
    /// (superseded id, its key, superseding id, its key)
    superseded_by: Vec<(Box<str>, u128, Box<str>, u128)>,
    total: u64,
    f: Vec<(String, String)>,
}

impl LifecycleAudit {
    /// An audit expecting about `rows` records (so its table never regrows).
    pub fn with_capacity(rows: usize) -> Self {
        LifecycleAudit {
            ids: HashSet::with_capacity_and_hasher(rows, DigestState::default()),
            ..Self::default()
        }
    }

    /// An audit that keeps no id set of its own: finish it with
    /// [`Self::finish_with_ids`] and the set of an [`crate::invariant::IdAudit`] fed the
    /// same rows.
    pub fn sharing_ids() -> Self {
        LifecycleAudit {
            shared: true,
            ..Self::default()
        }
    }

    /// Feed one record (timestamps in microseconds).
    pub fn feed(
        &mut self,
        id: &str,
        status: Option<&str>,
        supersedes: Option<&str>,
        created: Option<i64>,
        updated: Option<i64>,
    ) {
        self.feed_key(id, id_key(id), status, supersedes, created, updated);
    }

    /// [`Self::feed`] with the id's [`id_key`] already computed.
    pub fn feed_key(
        &mut self,
        id: &str,
        key: u128,
        status: Option<&str>,
        supersedes: Option<&str>,
        created: Option<i64>,
        updated: Option<i64>,
    ) {
        self.total += 1;
        if !self.shared {
            self.ids.insert(key);
        }
        if status != Some("active") {
            self.inactive.insert(key);
        }
        if let Some(s) = supersedes {
            self.superseded_by
                .push((s.into(), id_key(s), id.into(), key));
        }
        if let (Some(c), Some(u)) = (created, updated)
            && u < c
        {
            self.f.push((
                id.to_owned(),
                format!("record `{id}`: updated_at is before created_at"),
            ));
        }
    }

    /// The result.
    pub fn finish(mut self, spec: &InvariantSpec) -> InvariantResult {
        let ids = std::mem::take(&mut self.ids);
        self.finish_with_ids(spec, &ids)
    }

    /// The result, with the ids of the records (see [`Self::sharing_ids`]).
    pub fn finish_with_ids(
        self,
        spec: &InvariantSpec,
        ids: &HashSet<u128, DigestState>,
    ) -> InvariantResult {
        let mut f = Failures::new();
        for (id, why) in self.f {
            f.fail(&id, || why);
        }
        let active = |k: &u128| ids.contains(k) && !self.inactive.contains(k);
        for (old, old_key, new, new_key) in &self.superseded_by {
            if active(old_key) && active(new_key) {
                f.fail(old, || {
                    format!("record `{old}` is active but superseded by active record `{new}`")
                });
            }
        }
        let ok = format!("{} records follow the lifecycle rules", self.total);
        f.result(spec, CheckKind::Lifecycle, self.total, ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: CheckKind) -> InvariantSpec {
        InvariantSpec::builtin(kind)
    }

    #[test]
    fn lifecycle() {
        let mut l = LifecycleAudit::default();
        l.feed("old", Some("active"), None, Some(1), Some(2));
        l.feed("new", Some("active"), Some("old"), Some(5), Some(3));
        let r = l.finish(&spec(CheckKind::Lifecycle));
        assert_eq!(r.failed, 2, "{r:?}");
    }
}
