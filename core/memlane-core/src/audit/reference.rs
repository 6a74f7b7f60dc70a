//! References between records: targets exist, `supersedes` chains are acyclic.

use std::collections::{HashMap, HashSet};

use super::{DigestState, Failures, id_key};
use crate::migration::{CheckKind, InvariantSpec};
use crate::report::InvariantResult;

/// References between records: relationship targets and `supersedes` exist, and
/// `supersedes` chains are acyclic. Records are kept by [`id_key`]; only the rows that
/// point somewhere keep their ids as text (for the report).
#[derive(Debug, Default)]
pub struct ReferenceAudit {
    ids: HashSet<u128, DigestState>,
    /// the ids come from an [`crate::invariant::IdAudit`] fed the same rows
    shared: bool,
    /// from each record that supersedes another: the index of that edge in `edges`
    supersedes: HashMap<u128, usize, DigestState>,
    edges: Vec<Edge>,
    total: u64,
}

/// One reference: `from` points at `to` (whose key is `to_key`).
#[derive(Debug)]
struct Edge {
    from: Box<str>,
    to: Box<str>,
    to_key: u128,
    kind: &'static str,
}

impl ReferenceAudit {
    /// An audit expecting about `rows` records (so its table never regrows).
    pub fn with_capacity(rows: usize) -> Self {
        ReferenceAudit {
            ids: HashSet::with_capacity_and_hasher(rows, DigestState::default()),
            ..Self::default()
        }
    }

    /// An audit that keeps no id set of its own: finish it with
    /// [`Self::finish_with_ids`] and the set of an [`crate::invariant::IdAudit`] fed the
    /// same rows (one table of a million ids instead of two).
    pub fn sharing_ids() -> Self {
        ReferenceAudit {
            shared: true,
            ..Self::default()
        }
    }

    /// Feed one record: its id, what it supersedes, its relationship targets.
    pub fn feed<'a>(
        &mut self,
        id: &str,
        supersedes: Option<&str>,
        targets: impl IntoIterator<Item = &'a str>,
    ) {
        self.feed_key(id, id_key(id), supersedes, targets);
    }

    /// [`Self::feed`] with the id's [`id_key`] already computed.
    pub fn feed_key<'a>(
        &mut self,
        id: &str,
        key: u128,
        supersedes: Option<&str>,
        targets: impl IntoIterator<Item = &'a str>,
    ) {
        self.total += 1;
        if !self.shared {
            self.ids.insert(key);
        }
        let edge = |to: &str, kind: &'static str| Edge {
            from: id.into(),
            to: to.into(),
            to_key: id_key(to),
            kind,
        };
        if let Some(s) = supersedes {
            self.supersedes.insert(key, self.edges.len());
            self.edges.push(edge(s, "supersedes"));
        }
        for t in targets {
            self.edges.push(edge(t, "relationship"));
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
        let mut bad: HashSet<&str> = HashSet::new();
        for e in &self.edges {
            if !ids.contains(&e.to_key) && bad.insert(&e.from) {
                f.fail(&e.from, || {
                    format!(
                        "record `{}`: {} target `{}` does not exist",
                        e.from, e.kind, e.to
                    )
                });
            }
        }
        // each record supersedes at most one: follow the chain, marking what is done
        let name = |k: &u128| -> &str { &self.edges[self.supersedes[k]].from };
        let mut done: HashSet<u128, DigestState> = HashSet::default();
        let mut cyclic: HashSet<u128, DigestState> = HashSet::default();
        let mut starts: Vec<(&u128, &usize)> = self.supersedes.iter().collect();
        starts.sort_unstable_by_key(|(_, e)| **e); // in the order of the records
        for (start, _) in starts {
            let mut path: Vec<u128> = Vec::new();
            let mut on_path: HashSet<u128, DigestState> = HashSet::default();
            let mut cur = *start;
            loop {
                if done.contains(&cur) {
                    break;
                }
                if !on_path.insert(cur) {
                    if cyclic.insert(cur) {
                        let cycle = path.iter().map(name).collect::<Vec<_>>().join(" -> ");
                        let at = name(&cur);
                        f.fail(at, || format!("`supersedes` cycle: {cycle} -> {at}"));
                    }
                    break;
                }
                path.push(cur);
                match self.supersedes.get(&cur) {
                    Some(e) => cur = self.edges[*e].to_key,
                    None => break,
                }
            }
            done.extend(path);
        }
        let ok = format!(
            "{} references among {} records resolve; no `supersedes` cycle",
            self.edges.len(),
            self.total
        );
        f.result(spec, CheckKind::References, self.total, ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: CheckKind) -> InvariantSpec {
        InvariantSpec::builtin(kind)
    }

    #[test]
    fn references_and_cycles() {
        let mut r = ReferenceAudit::default();
        r.feed("a", Some("b"), []);
        r.feed("b", Some("c"), ["a"]);
        r.feed("c", Some("a"), ["ghost"]);
        let res = r.finish(&spec(CheckKind::References));
        assert!(!res.passed);
        assert!(
            res.message.contains("ghost") || res.message.contains("cycle"),
            "{}",
            res.message
        );
        assert_eq!(res.failed, 2, "{res:?}"); // the dangling target and the cycle
    }
}
