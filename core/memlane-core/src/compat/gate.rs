//! Gates: thresholds on reported metrics that decide whether an upgrade passes, needs a
//! human review, or is blocked.
//!
//! ```toml
//! [gates]
//! "recall@10" = { block_below = 0.85, review_below = 0.95 }
//! "procrustes.residual" = { review_above = 0.3 }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{CompatError, Result};
use crate::migration::{culprit_key, plain};

/// What a gate (or a set of gates) says. Ordered so the worst wins: `Pass < Review < Block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Within every threshold.
    Pass,
    /// Past a review threshold: a human should look before going on.
    Review,
    /// Past a block threshold: do not go on.
    Block,
}

impl Verdict {
    /// Name as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Review => "review",
            Verdict::Block => "block",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds on one metric. A value below `block_below` (or above `block_above`) blocks;
/// below `review_below` (or above `review_above`) asks for review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// Metric name as reported (e.g. `recall@10`).
    pub metric: String,
    /// Block when the value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_below: Option<f64>,
    /// Review when the value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_below: Option<f64>,
    /// Block when the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_above: Option<f64>,
    /// Review when the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_above: Option<f64>,
}

/// The thresholds of one gate as written in TOML (the metric is the key).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GateThresholds {
    block_below: Option<f64>,
    review_below: Option<f64>,
    block_above: Option<f64>,
    review_above: Option<f64>,
}

impl GateThresholds {
    /// The gate on `metric` with these thresholds, validated.
    pub(crate) fn into_gate(self, metric: &str) -> Result<Gate> {
        let g = Gate {
            metric: metric.to_owned(),
            block_below: self.block_below,
            review_below: self.review_below,
            block_above: self.block_above,
            review_above: self.review_above,
        };
        g.check_well_formed()?;
        Ok(g)
    }
}

impl Gate {
    /// Check the thresholds are finite, present and consistent.
    pub fn check_well_formed(&self) -> Result<()> {
        let bad = |message: &str| CompatError::Gate {
            metric: self.metric.clone(),
            message: message.into(),
        };
        let all = [
            self.block_below,
            self.review_below,
            self.block_above,
            self.review_above,
        ];
        if all.iter().all(Option::is_none) {
            return Err(bad(
                "no threshold; set block_below, review_below, block_above or review_above",
            ));
        }
        if all.iter().flatten().any(|v| !v.is_finite()) {
            return Err(bad("thresholds must be finite numbers"));
        }
        if let (Some(b), Some(r)) = (self.block_below, self.review_below)
            && b > r
        {
            return Err(bad(
                "block_below is above review_below, so review would never show; swap them",
            ));
        }
        if let (Some(b), Some(r)) = (self.block_above, self.review_above)
            && b < r
        {
            return Err(bad(
                "block_above is below review_above, so review would never show; swap them",
            ));
        }
        Ok(())
    }

    /// The failed result of this gate on a metric that was not reported, because `why`.
    fn unreported(&self, why: &str) -> GateResult {
        let verdict = if self.block_below.is_some() || self.block_above.is_some() {
            Verdict::Block
        } else {
            Verdict::Review
        };
        GateResult {
            metric: self.metric.clone(),
            value: None,
            thresholds: self.clone(),
            verdict,
            message: format!("{} is not reported: {why}", self.metric),
        }
    }

    /// The verdict for `value` and a sentence naming the threshold it crossed.
    pub fn judge(&self, value: f64) -> (Verdict, String) {
        let m = &self.metric;
        if value.is_nan() {
            return (Verdict::Block, format!("{m} is not a number"));
        }
        let checks = [
            (self.block_below, Verdict::Block, true),
            (self.block_above, Verdict::Block, false),
            (self.review_below, Verdict::Review, true),
            (self.review_above, Verdict::Review, false),
        ];
        for (t, verdict, below) in checks {
            match t {
                Some(t) if below && value < t => {
                    return (
                        verdict,
                        format!("{m} = {value:.4} is below {verdict} threshold {t}"),
                    );
                }
                Some(t) if !below && value > t => {
                    return (
                        verdict,
                        format!("{m} = {value:.4} is above {verdict} threshold {t}"),
                    );
                }
                _ => {}
            }
        }
        (
            Verdict::Pass,
            format!("{m} = {value:.4} is within its gate"),
        )
    }
}

/// Read gates from the value of a `[gates]` TOML table: one entry per metric, each an
/// inline table of thresholds. Unknown threshold names and inconsistent thresholds are
/// errors. Gates come back sorted by metric name.
pub fn parse_gates(table: &toml::Value) -> Result<Vec<Gate>> {
    let Some(t) = table.as_table() else {
        return Err(CompatError::Gate {
            metric: "[gates]".into(),
            message: format!(
                "expected a table of metric = {{ block_below = .., review_below = .. }}, found a {}",
                table.type_str()
            ),
        });
    };
    let mut gates = Vec::with_capacity(t.len());
    for (metric, v) in t {
        let th: GateThresholds = v.clone().try_into().map_err(|e: toml::de::Error| {
            // in TOML words, with the threshold it is about (a value has no spans)
            let message = plain(e.message());
            let key = v
                .as_table()
                .and_then(|t| culprit_key::<GateThresholds>(t, &[], &message))
                .map(|k| format!("`{k}`: "))
                .unwrap_or_default();
            CompatError::Gate {
                metric: metric.clone(),
                message: format!(
                    "{key}{message}; write e.g. \"{metric}\" = {{ block_below = 0.85, review_below = 0.95 }} (keys: block_below, review_below, block_above, review_above)"
                ),
            }
        })?;
        gates.push(th.into_gate(metric)?);
    }
    Ok(gates)
}

/// One gate applied to the reported value of its metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// Metric name.
    pub metric: String,
    /// Reported value (`None` when the metric was not reported, e.g. an `adapter.*`
    /// metric when no adapter was chosen).
    #[serde(default)]
    pub value: Option<f64>,
    /// The gate's thresholds.
    pub thresholds: Gate,
    /// What the gate says.
    pub verdict: Verdict,
    /// One sentence naming the value and the threshold crossed.
    pub message: String,
}

/// Apply `gates` to `metrics`. A gate naming a metric that was not reported is an error
/// listing the names that were (a typo must not pass silently).
pub fn evaluate(gates: &[Gate], metrics: &BTreeMap<String, f64>) -> Result<Vec<GateResult>> {
    evaluate_with(gates, metrics, &BTreeMap::new())
}

/// [`evaluate`], where `unreported` names metrics known to be left out, each with why
/// (see [`super::CompatReport::unreported`]): a gate on one of them fails with that
/// reason instead of passing or erroring, at its strictest verdict (block when it has a
/// block threshold, else review).
pub fn evaluate_with(
    gates: &[Gate],
    metrics: &BTreeMap<String, f64>,
    unreported: &BTreeMap<String, String>,
) -> Result<Vec<GateResult>> {
    gates
        .iter()
        .map(|g| {
            g.check_well_formed()?;
            if let Some(why) = unreported.get(&g.metric) {
                return Ok(g.unreported(why));
            }
            let Some(&value) = metrics.get(&g.metric) else {
                return Err(CompatError::UnknownMetric {
                    metric: g.metric.clone(),
                    available: metrics
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            let (verdict, message) = g.judge(value);
            Ok(GateResult {
                metric: g.metric.clone(),
                value: Some(value),
                thresholds: g.clone(),
                verdict,
                message,
            })
        })
        .collect()
}

/// The worst verdict of `results` (`Pass` when there are none).
pub fn overall(results: &[GateResult]) -> Verdict {
    results
        .iter()
        .map(|r| r.verdict)
        .max()
        .unwrap_or(Verdict::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gates(src: &str) -> Result<Vec<Gate>> {
        let doc: toml::Value = toml::from_str(src).unwrap();
        parse_gates(&doc["gates"])
    }

    fn metrics(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn verdicts_pass_review_block() {
        let g = gates(
            r#"
            [gates]
            "recall@10" = { block_below = 0.85, review_below = 0.95 }
            "procrustes.residual" = { review_above = 0.3, block_above = 0.6 }
            "#,
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].metric, "recall@10");
        let judge = |recall: f64, resid: f64| {
            let r = evaluate(
                &g,
                &metrics(&[("recall@10", recall), ("procrustes.residual", resid)]),
            )
            .unwrap();
            (r[1].verdict, r[0].verdict, overall(&r))
        };
        assert_eq!(
            judge(0.97, 0.1),
            (Verdict::Pass, Verdict::Pass, Verdict::Pass)
        );
        assert_eq!(
            judge(0.90, 0.1),
            (Verdict::Review, Verdict::Pass, Verdict::Review)
        );
        assert_eq!(
            judge(0.80, 0.1),
            (Verdict::Block, Verdict::Pass, Verdict::Block)
        );
        assert_eq!(
            judge(0.97, 0.4),
            (Verdict::Pass, Verdict::Review, Verdict::Review)
        );
        assert_eq!(
            judge(0.90, 0.7),
            (Verdict::Review, Verdict::Block, Verdict::Block)
        );
        // Exactly at a threshold passes it.
        assert_eq!(judge(0.95, 0.3).2, Verdict::Pass);
        let r = evaluate(
            &g,
            &metrics(&[("recall@10", 0.8), ("procrustes.residual", 0.0)]),
        )
        .unwrap();
        assert!(
            r[1].message.contains("below block threshold 0.85"),
            "{}",
            r[1].message
        );
        assert!(Verdict::Block > Verdict::Review && Verdict::Review > Verdict::Pass);
        assert_eq!(
            serde_json::to_string(&Verdict::Review).unwrap(),
            "\"review\""
        );
        assert_eq!(overall(&[]), Verdict::Pass);
    }

    #[test]
    fn unreported_metrics_fail_with_the_reason() {
        let g = gates(
            "[gates]\n\"adapter.retention\" = { review_below = 0.8 }\n\"adapter.recall@10\" = { block_below = 0.2, review_below = 0.5 }\n",
        )
        .unwrap();
        let why: BTreeMap<String, String> = ["adapter.retention", "adapter.recall@10"]
            .iter()
            .map(|m| {
                (
                    (*m).to_owned(),
                    "no adapter was chosen: none fits".to_owned(),
                )
            })
            .collect();
        let r = evaluate_with(&g, &metrics(&[("cka", 0.8)]), &why).unwrap();
        assert_eq!(r[0].metric, "adapter.recall@10");
        assert_eq!(
            (r[0].verdict, r[1].verdict),
            (Verdict::Block, Verdict::Review)
        );
        assert!(r.iter().all(|x| x.value.is_none()));
        assert!(
            r[1].message
                .contains("adapter.retention is not reported: no adapter was chosen"),
            "{}",
            r[1].message
        );
        // without the reason it is an unknown metric, never a pass
        assert!(evaluate(&g, &metrics(&[("cka", 0.8)])).is_err());
    }

    #[test]
    fn unknown_metric_lists_available_names() {
        let g = gates("[gates]\n\"recal@10\" = { block_below = 0.9 }\n").unwrap();
        let e = evaluate(&g, &metrics(&[("recall@10", 0.9), ("cka", 0.8)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "gate names unknown metric `recal@10`; reported metrics are: cka, recall@10"
        );
    }

    #[test]
    fn malformed_gates_are_explained() {
        let e = gates("[gates]\n\"cka\" = { block_bellow = 0.5 }\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cka") && e.contains("block_bellow") && e.contains("keys:"),
            "{e}"
        );
        let e = gates("[gates]\n\"cka\" = {}\n").unwrap_err().to_string();
        assert!(e.contains("no threshold"), "{e}");
        let e = gates("[gates]\n\"cka\" = { block_below = 0.9, review_below = 0.5 }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("swap"), "{e}");
        let e = gates("[gates]\n\"cka\" = { review_below = 0.9, block_below = \"low\" }\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`block_below`: invalid type: string \"low\", expected a number"),
            "{e}"
        );
        assert!(!e.contains("f64"), "{e}");
        let e = parse_gates(&toml::Value::Integer(3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a table"), "{e}");
    }
}
