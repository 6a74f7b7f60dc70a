//! Metadata field rules (required, allowed values, range) over the values the store reads.

use super::Failures;
use crate::migration::{CheckKind, InvariantSpec};
use crate::report::InvariantResult;

/// One scalar value of a metadata field, as the store reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// Null.
    Null,
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Float (timestamps as seconds since the epoch).
    Float(f64),
    /// Text.
    Str(&'a str),
    /// A value of a type the `values` and range rules do not apply to (lists, ...):
    /// only `required` is checked.
    Other,
}

impl<'a> Scalar<'a> {
    /// A JSON value as the field rules read it (arrays and objects are [`Scalar::Other`]).
    pub fn from_json(v: &'a serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Scalar::Null,
            serde_json::Value::Bool(b) => Scalar::Bool(*b),
            serde_json::Value::Number(n) => n.as_i64().map_or_else(
                || Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
                Scalar::Int,
            ),
            serde_json::Value::String(s) => Scalar::Str(s),
            _ => Scalar::Other,
        }
    }

    /// The value as JSON, the inverse of [`Scalar::from_json`] (`Other` is an empty array).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Scalar::Null => serde_json::Value::Null,
            Scalar::Bool(b) => serde_json::Value::from(*b),
            Scalar::Int(i) => serde_json::Value::from(*i),
            Scalar::Float(f) => serde_json::Value::from(*f),
            Scalar::Str(s) => serde_json::Value::from(*s),
            Scalar::Other => serde_json::Value::Array(vec![]),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            #[allow(clippy::cast_precision_loss)]
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }
    }

    fn matches(&self, v: &toml::Value) -> bool {
        match (self, v) {
            (Scalar::Str(s), toml::Value::String(t)) => s == t,
            (Scalar::Bool(a), toml::Value::Boolean(b)) => a == b,
            (Scalar::Int(a), toml::Value::Integer(b)) => a == b,
            #[allow(clippy::cast_precision_loss)]
            (Scalar::Float(a), toml::Value::Integer(b)) => (*a - *b as f64).abs() < f64::EPSILON,
            (Scalar::Float(a), toml::Value::Float(b)) => (a - b).abs() < f64::EPSILON,
            #[allow(clippy::cast_precision_loss)]
            (Scalar::Int(a), toml::Value::Float(b)) => (*a as f64 - b).abs() < f64::EPSILON,
            _ => false,
        }
    }

    fn render(&self) -> String {
        match self {
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Other => "<value>".into(),
        }
    }
}

/// A metadata field's rules: required, allowed values, range.
pub struct FieldAudit<'s> {
    spec: &'s InvariantSpec,
    field: String,
    total: u64,
    f: Failures,
}

impl<'s> FieldAudit<'s> {
    /// A new audit for `spec.field`.
    pub fn new(spec: &'s InvariantSpec) -> Self {
        FieldAudit {
            field: spec.field.clone().unwrap_or_default(),
            spec,
            total: 0,
            f: Failures::new(),
        }
    }

    /// Feed one row's value.
    pub fn feed(&mut self, id: &str, v: Scalar<'_>) {
        self.total += 1;
        let field = &self.field;
        if v == Scalar::Null {
            if self.spec.required {
                self.f.fail(id, || {
                    format!("record `{id}`: `{field}` is null but required")
                });
            }
            return;
        }
        if v == Scalar::Other {
            return;
        }
        if let Some(allowed) = &self.spec.values
            && !allowed.iter().any(|a| v.matches(a))
        {
            let shown: Vec<String> = allowed.iter().map(ToString::to_string).collect();
            self.f.fail(id, || {
                format!(
                    "record `{id}`: `{field}` = {} is not one of [{}]",
                    v.render(),
                    shown.join(", ")
                )
            });
            return;
        }
        if let Some(x) = v.number() {
            let (lo, hi) = (self.spec.min_value, self.spec.max_value);
            if lo.is_some_and(|l| x < l) || hi.is_some_and(|h| x > h) {
                self.f.fail(id, || {
                    format!(
                        "record `{id}`: `{field}` = {x} is outside [{}, {}]",
                        lo.map_or("-inf".into(), |l| l.to_string()),
                        hi.map_or("inf".into(), |h| h.to_string())
                    )
                });
            }
        }
    }

    /// The result.
    pub fn finish(self) -> InvariantResult {
        let ok = format!("{} values of `{}` follow the rules", self.total, self.field);
        self.f.result(self.spec, CheckKind::Field, self.total, ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: CheckKind) -> InvariantSpec {
        InvariantSpec::builtin(kind)
    }

    #[test]
    fn field_rules() {
        let mut s = spec(CheckKind::Field);
        s.field = Some("kind".into());
        s.required = true;
        s.values = Some(vec![toml::Value::String("semantic".into())]);
        let mut f = FieldAudit::new(&s);
        f.feed("a", Scalar::Str("semantic"));
        f.feed("b", Scalar::Str("bogus"));
        f.feed("c", Scalar::Null);
        let r = f.finish();
        assert_eq!(r.failed, 2);
        assert!(r.message.contains("bogus"), "{}", r.message);
        let mut n = spec(CheckKind::Field);
        n.field = Some("importance".into());
        n.min_value = Some(0.0);
        n.max_value = Some(1.0);
        let mut f = FieldAudit::new(&n);
        f.feed("a", Scalar::Float(0.5));
        f.feed("b", Scalar::Float(1.5));
        f.feed("c", Scalar::Int(-1));
        assert_eq!(f.finish().failed, 2);
    }
}
