//! The simulation of the steps on metadata fields and rows: add, rename, drop, cast and
//! backfill a field, delete and dedupe records.

use super::finding::Level;
use super::planned::Effect;
use super::sim::Sim;
use crate::schema::{CONTENT, FieldDef, FieldType, Value};

impl Sim {
    /// `add_field`: a known type, a new name, a default of that type (required when
    /// the field is non-null).
    pub(super) fn add_field(
        &mut self,
        field: &str,
        ty: &str,
        default: Option<&Value>,
        nullable: bool,
    ) -> Effect {
        let Some(t) = FieldType::parse(ty) else {
            self.err(
                "unknown-type",
                format!("unknown type `{ty}`"),
                format!("types are: {}", FieldType::NAMES),
            );
            return Effect::Metadata;
        };
        if !self.new_name(field) {
            return Effect::Metadata;
        }
        if let Some(d) = default
            && let Err(e) = d.coerce(field, &t)
        {
            self.err("bad-default", e.to_string(), format!("give a {t} default"));
        }
        if !nullable && default.is_none() {
            self.err(
                "non-null-without-default",
                format!("field `{field}` is non-null but has no default for existing rows"),
                "add a `default`, or make it nullable",
            );
        }
        self.fields.push(FieldDef {
            name: field.to_owned(),
            ty: t,
            nullable,
        });
        if default.is_some_and(|d| *d != Value::Null) {
            Effect::WritesColumn {
                column: field.to_owned(),
            }
        } else {
            Effect::Metadata
        }
    }

    /// `rename_field`: an existing, unprotected field to a new name.
    pub(super) fn rename_field(&mut self, from: &str, to: &str) -> Effect {
        if self.protected(from, "rename") || self.need_field(from).is_none() || !self.new_name(to) {
            return Effect::Metadata;
        }
        if from == CONTENT {
            self.push(
                Level::Warning,
                "rename-content",
                "renaming `content`: re-embedding reads `content` unless a step names another `source`".into(),
                "set `source` on later reembed steps",
            );
        }
        if let Some(f) = self.fields.iter_mut().find(|f| f.name == from) {
            to.clone_into(&mut f.name);
        }
        Effect::Metadata
    }

    /// `drop_field`: an existing, unprotected field.
    pub(super) fn drop_field(&mut self, field: &str) -> Effect {
        if self.protected(field, "drop") || self.need_field(field).is_none() {
            return Effect::Metadata;
        }
        if field == CONTENT {
            self.push(
                Level::Warning,
                "drop-content",
                "dropping `content` makes later re-embedding impossible".into(),
                "keep `content` unless the store holds vectors only",
            );
        }
        self.fields.retain(|f| f.name != field);
        Effect::Metadata
    }

    /// `cast_field`: an existing, unprotected field to a known type it widens to.
    pub(super) fn cast_field(&mut self, field: &str, to: &str) -> Effect {
        if self.protected(field, "cast") {
            return Effect::Metadata;
        }
        let Some(f) = self.need_field(field) else {
            return Effect::Metadata;
        };
        let Some(t) = FieldType::parse(to) else {
            self.err(
                "unknown-type",
                format!("unknown type `{to}`"),
                format!("types are: {}", FieldType::NAMES),
            );
            return Effect::Metadata;
        };
        if !f.ty.widens_to(&t) {
            self.err(
                "lossy-cast",
                format!("casting `{field}` from {} to {t} can lose information", f.ty),
                "add a new field of the target type and backfill it deliberately, or cast to a wider type",
            );
            return Effect::Metadata;
        }
        if let Some(f) = self.fields.iter_mut().find(|f| f.name == field) {
            f.ty = t;
        }
        Effect::WritesColumn {
            column: field.to_owned(),
        }
    }

    /// `backfill`: an existing, unprotected field, from exactly one of a value of its
    /// type and a field that widens to it.
    pub(super) fn backfill(
        &mut self,
        field: &str,
        value: Option<&Value>,
        copy_from: Option<&str>,
    ) -> Effect {
        if self.protected(field, "backfill") {
            return Effect::Metadata;
        }
        let Some(f) = self.need_field(field) else {
            return Effect::Metadata;
        };
        match (value, copy_from) {
            (Some(v), None) => {
                if let Err(e) = v.coerce(field, &f.ty) {
                    self.err("bad-value", e.to_string(), format!("give a {} value", f.ty));
                }
            }
            (None, Some(src)) => {
                if let Some(s) = self.need_field(src)
                    && !s.ty.widens_to(&f.ty)
                {
                    self.err(
                        "lossy-copy",
                        format!(
                            "copying `{src}` ({}) into `{field}` ({}) can lose information",
                            s.ty, f.ty
                        ),
                        "copy from a field of the same or a narrower type",
                    );
                }
            }
            _ => self.err(
                "bad-backfill",
                format!("backfill of `{field}` needs exactly one of `value` and `copy_from`"),
                "set `value = ...` or `copy_from = \"field\"`",
            ),
        }
        Effect::WritesColumn {
            column: field.to_owned(),
        }
    }

    /// `delete_where`: a predicate that is neither empty nor always true.
    pub(super) fn delete_where(&mut self, predicate: &str) -> Effect {
        if predicate.trim().is_empty() {
            self.err(
                "empty-predicate",
                "delete_where needs a predicate".into(),
                "e.g. predicate = \"status = 'expired'\"",
            );
        } else if matches!(
            predicate.trim().to_ascii_lowercase().as_str(),
            "true" | "1 = 1" | "1=1"
        ) {
            self.err(
                "delete-all",
                format!("predicate `{predicate}` deletes every record"),
                "narrow the predicate",
            );
        }
        Effect::DeletesRows
    }

    /// `dedupe`: both fields exist.
    pub(super) fn dedupe(&mut self, by: &str, order_by: &str) -> Effect {
        self.need_field(by);
        self.need_field(order_by);
        Effect::DeletesRows
    }
}
