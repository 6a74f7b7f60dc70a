//! The output shape of a report that passes or fails (`validate`, `verify`): the
//! report's own fields with `ok` beside them, the same for the CLI's `--json` and the
//! Python package.

use serde::Serialize;

/// A report with a verdict.
pub trait Verdict: Serialize {
    /// Whether it passed.
    fn ok(&self) -> bool;
}

/// The report as JSON, its fields with `"ok"` added.
pub fn verdict_json<T: Verdict>(report: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(report).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("ok".into(), serde_json::Value::Bool(report.ok()));
    }
    v
}
