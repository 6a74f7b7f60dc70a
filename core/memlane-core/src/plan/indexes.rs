//! The simulation of the index steps (`create_index`, `optimize_index`) and the rule
//! that a switch of the active space does not silently drop a vector index.

use super::finding::Level;
use super::planned::Effect;
use super::sim::Sim;
use crate::index::IndexSpec;

impl Sim {
    /// `create_index`: a known space and parameters that fit its dimension.
    pub(super) fn create_index(&mut self, space: &str, index: &IndexSpec) -> Effect {
        let Some(s) = self.need_space(space) else {
            return Effect::Metadata;
        };
        if let Err(e) = index.check(s.dimension) {
            self.err(
                "bad-index",
                format!("index on `{space}`: {e}"),
                "fix the parameter, or drop it to use the default",
            );
            return Effect::Metadata;
        }
        if let Some(sp) = self.spaces.iter_mut().find(|x| x.name == space) {
            sp.index = Some(index.clone());
        }
        Effect::Metadata
    }

    /// `optimize_index`: a space that has an index.
    pub(super) fn optimize_index(&mut self, space: &str) -> Effect {
        let Some(s) = self.need_space(space) else {
            return Effect::Metadata;
        };
        if s.index.is_none() {
            self.err(
                "no-index",
                format!("space `{space}` has no vector index to optimise"),
                "build one first with a `create_index` step",
            );
        }
        Effect::Metadata
    }

    /// The index a re-embed gives its new space `space` (`declared`, else the active
    /// space's carried over when `activate`); checked against the dimension.
    pub(super) fn reembed_index(
        &mut self,
        space: &str,
        declared: Option<&IndexSpec>,
        activate: bool,
    ) {
        let Some(dim) = self.space(space).map(|s| s.dimension) else {
            return;
        };
        let carried = self
            .active
            .as_deref()
            .filter(|a| activate && *a != space)
            .and_then(|a| self.space(a))
            .and_then(|a| a.index.as_ref())
            .map(|i| i.carried_to(dim));
        let Some(spec) = declared.cloned().or(carried) else {
            return;
        };
        if let Err(e) = spec.check(dim) {
            self.err(
                "bad-index",
                format!("index of the re-embedded space `{space}`: {e}"),
                "fix the `[steps.index]` parameter",
            );
            return;
        }
        if let Some(sp) = self.spaces.iter_mut().find(|x| x.name == space) {
            sp.index = Some(spec);
        }
    }

    /// Warn when making `to` active replaces an indexed space with an unindexed one:
    /// searches would fall back to a full scan at the moment of the switch.
    pub(super) fn index_kept_on_switch(&mut self, to: &str) {
        let Some(from) = self.active.clone().filter(|a| a != to) else {
            return;
        };
        let had = self
            .space(&from)
            .and_then(|s| s.index.as_ref())
            .map(|i| i.kind);
        let has = self.space(to).is_some_and(|s| s.index.is_some());
        if let (Some(kind), false) = (had, has) {
            self.push(
                Level::Warning,
                "index-dropped",
                format!(
                    "the active space `{from}` has a {kind} index and `{to}` will have none: searches become full scans when `{to}` becomes active"
                ),
                format!("add a `create_index` step on `{to}` before it is activated"),
            );
        }
    }
}
