//! The simulation of the steps on embedding spaces: declare, re-embed, truncate,
//! normalise and activate a space.

use super::finding::Level;
use super::planned::Effect;
use super::sim::Sim;
use crate::compat::CompatMode;
use crate::migration::Step;
use crate::schema::{FieldDef, FieldType};
use crate::space::{Metric, Space, check_name};

impl Sim {
    /// `add_space` (`step`): a new, valid space whose column is free.
    pub(super) fn add_space(&mut self, step: &Step, space: &str, model: &str) -> Effect {
        if self.space(space).is_some() {
            self.err(
                "space-exists",
                format!("space `{space}` already exists"),
                "pick another name",
            );
            return Effect::Metadata;
        }
        match step.new_space(&self.spaces).map(Space::validated) {
            Some(Ok(s)) => {
                if self.field(&s.column).is_some() {
                    self.err(
                        "field-exists",
                        format!("column `{}` for space `{space}` already exists", s.column),
                        "pick another space name",
                    );
                    return Effect::Metadata;
                }
                if model.is_empty() {
                    self.push(
                        Level::Warning,
                        "anonymous-model",
                        format!("space `{space}` names no model"),
                        "set `provider`, `model` and `revision` so a model swap can be detected",
                    );
                }
                self.fields.push(FieldDef {
                    name: s.column.clone(),
                    ty: FieldType::Vector(s.dimension),
                    nullable: true,
                });
                self.spaces.push(s);
            }
            Some(Err(e)) => self.err("bad-space", e.to_string(), "fix the space definition"),
            None => {}
        }
        Effect::Metadata
    }

    /// `reembed` (`step`): its settings, its source field, a known target space with the
    /// same prefixes, and a comparison that makes sense; then the space may become active.
    pub(super) fn reembed(&mut self, step: &Step) -> Effect {
        let Step::Reembed {
            space,
            embedder,
            source,
            activate,
            batch_size,
            throttle,
            checkpoint_seconds,
            compare_to,
            mode,
            sample,
            k,
            min_retention,
            serve_min_retention,
            query_prefix,
            passage_prefix,
            contract_after,
            index,
        } = step
        else {
            return Effect::Metadata;
        };
        self.reembed_retention(contract_after.as_deref(), *activate);
        self.reembed_thresholds(*min_retention, *serve_min_retention);
        self.reembed_pacing(*throttle, *checkpoint_seconds, *batch_size);
        self.reembed_source(source);
        if k == &Some(0) || sample.is_some_and(|n| n < 2) {
            self.err(
                "bad-sample",
                "`k` must be at least 1 and `sample` at least 2".into(),
                "drop them to use the defaults (k = 10, sample = 2000)",
            );
        }
        let Some(s) = self.need_space(space) else {
            return Effect::Metadata;
        };
        self.reembed_prefixes(&s, query_prefix.as_ref(), passage_prefix.as_ref());
        if !self.reembed_comparison(space, compare_to.as_deref(), mode.as_ref()) {
            return Effect::Metadata;
        }
        self.reembed_index(space, index.as_deref(), *activate);
        if *activate {
            self.index_kept_on_switch(&s.name);
            self.active = Some(s.name.clone());
        }
        Effect::Embeds {
            embedder: embedder.clone(),
            column: s.column,
        }
    }

    /// A re-embed's `contract_after`: a duration, and only with the new space activated.
    fn reembed_retention(&mut self, contract_after: Option<&str>, activate: bool) {
        if let Some(Err(e)) = contract_after.map(crate::migration::parse_duration) {
            self.err(
                "bad-duration",
                format!("`contract_after`: {e}"),
                "write a retention such as \"7d\", or drop it to keep the old space until `memlane contract`",
            );
        }
        if contract_after.is_some() && !activate {
            self.err(
                "contract-inactive",
                "`contract_after` drops the replaced space, but `activate = false` keeps it active"
                    .into(),
                "drop `contract_after`, or activate the new space",
            );
        }
    }

    /// A re-embed's adapter thresholds: shares in `[0, 1]`, serving at most claiming.
    fn reembed_thresholds(&mut self, min_retention: Option<f64>, serve: Option<f64>) {
        for (key, v) in [
            ("min_retention", min_retention),
            ("serve_min_retention", serve),
        ] {
            if v.is_some_and(|x| !(0.0..=1.0).contains(&x)) {
                self.err(
                    "bad-threshold",
                    format!("`{key}` is a share of the old model's hits, between 0 and 1"),
                    "write e.g. min_retention = 0.9, serve_min_retention = 0.7, or drop it to use the default",
                );
                return;
            }
        }
        let d = crate::compat::ModeThresholds::default();
        let (claim, serve) = (
            min_retention.unwrap_or(d.min_retention),
            serve.unwrap_or(d.serve_min_retention),
        );
        if serve > claim {
            self.err(
                "bad-threshold",
                format!(
                    "`serve_min_retention` ({serve}) is above `min_retention` ({claim}): an adapter good enough for mode `adapter` could not serve the backfill"
                ),
                "lower `serve_min_retention` to at most `min_retention`",
            );
        }
    }

    /// A re-embed's throttle, checkpoint interval and batch size: positive.
    fn reembed_pacing(
        &mut self,
        throttle: Option<f64>,
        checkpoint_seconds: Option<f64>,
        batch_size: Option<usize>,
    ) {
        for (key, v) in [
            ("throttle", throttle),
            ("checkpoint_seconds", checkpoint_seconds),
        ] {
            if v.is_some_and(|x| !(x.is_finite() && x > 0.0)) {
                self.err(
                    "bad-number",
                    format!("`{key}` must be a positive number"),
                    "drop it to use the default",
                );
            }
        }
        if batch_size == Some(0) {
            self.err(
                "bad-batch-size",
                "batch_size must be at least 1".into(),
                "drop it to use the default",
            );
        }
    }

    /// A re-embed's source: an existing text field.
    fn reembed_source(&mut self, source: &str) {
        if let Some(src) = self.need_field(source)
            && src.ty != FieldType::String
        {
            self.err(
                "source-not-text",
                format!("source `{source}` is {}, not string", src.ty),
                "re-embed from a text field",
            );
        }
    }

    /// A re-embed's declared prefixes: those of the target space `s`.
    fn reembed_prefixes(
        &mut self,
        s: &Space,
        query_prefix: Option<&String>,
        passage_prefix: Option<&String>,
    ) {
        let space = &s.name;
        for (key, declared, has) in [
            ("query_prefix", query_prefix, &s.query_prefix),
            ("passage_prefix", passage_prefix, &s.passage_prefix),
        ] {
            if let Some(p) = declared
                && p != has
            {
                self.push(
                    Level::Error,
                    "prefix-mismatch",
                    format!(
                        "re-embed into `{space}` declares {key} {p:?} but the space has {has:?}: the stored vectors and the queries would be embedded differently"
                    ),
                    format!(
                        "set `{key} = {p:?}` on the space (add_space), or drop it from the re-embed"
                    ),
                );
            }
        }
    }

    /// A re-embed's comparison: `compare_to` (else the active space) is a known space
    /// other than the target, required when a `mode` is declared. `false` when
    /// `compare_to` names no space (the step is not simulated further).
    fn reembed_comparison(
        &mut self,
        space: &str,
        compare_to: Option<&str>,
        mode: Option<&CompatMode>,
    ) -> bool {
        let old = compare_to
            .map(str::to_owned)
            .or_else(|| self.active.clone());
        if let Some(o) = compare_to
            && self.need_space(o).is_none()
        {
            return false;
        }
        if mode.is_some() && old.is_none() {
            self.err(
                "mode-without-old-space",
                format!(
                    "re-embed into `{space}` declares a mode but there is no space to compare it to"
                ),
                "set `compare_to` to the space it replaces, or drop `mode`",
            );
        }
        if old.as_deref() == Some(space) {
            self.err(
                "compare-to-itself",
                format!("re-embed into `{space}` compares the space to itself"),
                "set `compare_to` to the space it replaces",
            );
        }
        true
    }

    /// `truncate` (`step`): a known source space wider than `dimension`, and a new,
    /// valid space whose column is free.
    pub(super) fn truncate(
        &mut self,
        step: &Step,
        from: &str,
        space: &str,
        dimension: usize,
        activate: bool,
    ) -> Effect {
        let Some(src) = self.need_space(from) else {
            return Effect::Metadata;
        };
        if dimension == 0 || dimension >= src.dimension {
            self.err(
                "bad-dimension",
                format!(
                    "cannot truncate `{from}` ({}d) to {dimension} dims",
                    src.dimension
                ),
                if src.dimension > 1 {
                    format!("pick a dimension between 1 and {}", src.dimension - 1)
                } else {
                    "a 1-d space cannot be truncated".to_owned()
                },
            );
            return Effect::Metadata;
        }
        if self.space(space).is_some() {
            self.err(
                "space-exists",
                format!("space `{space}` already exists"),
                "pick another name",
            );
            return Effect::Metadata;
        }
        let Some(s) = step.new_space(&self.spaces) else {
            return Effect::Metadata;
        };
        if let Err(e) = check_name(space) {
            self.err("bad-name", e, "rename the space");
            return Effect::Metadata;
        }
        if self.field(&s.column).is_some() {
            self.err(
                "field-exists",
                format!("column `{}` already exists", s.column),
                "pick another space name",
            );
            return Effect::Metadata;
        }
        self.push(
            Level::Warning,
            "matryoshka",
            format!(
                "truncating `{from}` assumes its model was trained for Matryoshka truncation ({})",
                src.model
            ),
            "check the model card; otherwise re-embed instead",
        );
        self.fields.push(FieldDef {
            name: s.column.clone(),
            ty: FieldType::Vector(dimension),
            nullable: true,
        });
        let (column, name) = (s.column.clone(), s.name.clone());
        self.spaces.push(s);
        if activate {
            self.index_kept_on_switch(&name);
            self.active = Some(name);
        }
        Effect::WritesColumn { column }
    }

    /// `normalize`: a known space (a warning when it is a dot-product space).
    pub(super) fn normalize(&mut self, space: &str) -> Effect {
        let Some(s) = self.need_space(space) else {
            return Effect::Metadata;
        };
        if s.metric == Metric::Dot {
            self.push(
                Level::Warning,
                "normalize-dot",
                format!("normalising dot-product space `{space}` changes its rankings"),
                "make sure the model's dot scores are meant to be cosine",
            );
        }
        if let Some(sp) = self.spaces.iter_mut().find(|x| x.name == space) {
            sp.normalized = true;
        }
        Effect::WritesColumn { column: s.column }
    }

    /// `set_active_space`: a known space.
    pub(super) fn set_active_space(&mut self, space: &str) -> Effect {
        if self.need_space(space).is_some() {
            self.index_kept_on_switch(space);
            self.active = Some(space.to_owned());
        }
        Effect::Metadata
    }
}
