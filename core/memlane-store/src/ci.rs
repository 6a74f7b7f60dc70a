//! `memlane ci`: what a deploy pipeline runs before it applies: the plan and lint of a
//! migrations folder against the store, `verify` of the store, and the review of the
//! pending re-embeds on an exported sample (the new spaces embedded by the real
//! embedders), folded into one verdict, with the two renderings CI runners read: a
//! Markdown summary (GitHub's `$GITHUB_STEP_SUMMARY`) and error/warning annotations
//! naming the file and line (`::error file=...,line=...::`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use memlane_core::Review;
use memlane_core::compat::Verdict;
use memlane_core::plan::{Finding, Level, Plan};
use serde::Serialize;

use crate::embed::Embedder;
use crate::error::Result;
use crate::readers::MigrationFolder;
use crate::store::Store;
use crate::verify::VerifyReport;

/// Rows sampled for the review of pending re-embeds (as `export-sample`'s default).
pub const CI_SAMPLE_ROWS: usize = 2000;

/// What a CI run found.
#[derive(Debug, Clone, Serialize)]
pub struct CiReport {
    /// The store.
    pub store: String,
    /// Its version.
    pub version: u64,
    /// The migrations folder, as given.
    pub folder: String,
    /// Worst of everything: `block` on a lint error, a failed verify, or a review that
    /// blocks; `review` when a gate asks for a human; else `pass`.
    pub verdict: Verdict,
    /// Why, one line each.
    pub reasons: Vec<String>,
    /// What `apply` would do, with the lint findings.
    pub plan: Plan,
    /// `verify` of the store and the folder's hash chain.
    pub verify: serde_json::Value,
    /// Whether verify passed.
    pub verified: bool,
    /// The review of the pending re-embeds on a sample (none when nothing is pending
    /// that re-embeds or truncates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
}

/// Run plan, lint, verify and the review of `dir`'s pending migrations on `store`.
pub async fn ci(
    store: &Store,
    dir: &Path,
    embedders: &HashMap<String, Arc<dyn Embedder>>,
    sample_rows: usize,
) -> Result<CiReport> {
    let folder = MigrationFolder::read(dir)?;
    let plan = store.plan(&folder.migrations).await?;
    let verify: VerifyReport = store.verify(Some(&folder.migrations)).await?;
    let review = if needs_review(&plan) && plan.errors().next().is_none() {
        let tmp = std::env::temp_dir().join(format!(
            "memlane-ci-{}-{}.arrow",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        ));
        let r = async {
            store
                .export_sample(&tmp, sample_rows, Some(&folder.migrations), embedders)
                .await?;
            crate::sample::review_sample(&tmp, dir, 10)
        }
        .await;
        let _ = std::fs::remove_file(&tmp);
        Some(r?)
    } else {
        None
    };
    let mut out = CiReport {
        store: store.uri().to_owned(),
        version: store.version(),
        folder: dir.display().to_string(),
        verdict: Verdict::Pass,
        reasons: Vec::new(),
        verified: verify.ok(),
        verify: crate::verdict::verdict_json(&verify),
        plan,
        review,
    };
    out.decide(&verify);
    Ok(out)
}

/// Whether a pending step re-embeds or truncates (what the sample review looks at).
fn needs_review(plan: &Plan) -> bool {
    plan.migrations
        .iter()
        .flat_map(|m| &m.steps)
        .any(|s| !s.done && matches!(s.op.as_str(), "reembed" | "truncate"))
}

impl CiReport {
    fn decide(&mut self, verify: &VerifyReport) {
        let mut reasons = Vec::new();
        let mut verdict = Verdict::Pass;
        let errors = self.plan.errors().count();
        if errors > 0 {
            verdict = Verdict::Block;
            reasons.push(format!("lint: {errors} error(s)"));
        }
        if !verify.ok() {
            verdict = Verdict::Block;
            for c in verify.checks.iter().filter(|c| !c.ok) {
                reasons.push(format!("verify {}: {}", c.name, c.message));
            }
        }
        if let Some(r) = &self.review {
            verdict = verdict.max(r.verdict);
            reasons.extend(r.reasons.iter().map(|x| format!("review: {x}")));
        }
        self.verdict = verdict;
        self.reasons = reasons;
    }

    /// The summary a CI job shows (GitHub-flavoured Markdown).
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let badge = match self.verdict {
            Verdict::Pass => "✅ PASS",
            Verdict::Review => "🟡 REVIEW",
            Verdict::Block => "⛔ BLOCK",
        };
        let _ = writeln!(s, "## memlane: {badge}\n");
        let _ = writeln!(
            s,
            "Store `{}` at version {}, migrations `{}`.\n",
            self.store, self.version, self.folder
        );
        let pending: Vec<&str> = self
            .plan
            .migrations
            .iter()
            .map(|m| m.file.as_str())
            .collect();
        let (e, w) = counts(&self.plan.findings);
        let _ = writeln!(s, "| check | result |\n|---|---|");
        let _ = writeln!(
            s,
            "| plan | {} pending: {} |",
            pending.len(),
            if pending.is_empty() {
                "—".to_owned()
            } else {
                pending.join(", ")
            }
        );
        let _ = writeln!(s, "| lint | {e} error(s), {w} warning(s) |");
        let _ = writeln!(
            s,
            "| verify | {} |",
            if self.verified { "ok" } else { "**failed**" }
        );
        match &self.review {
            Some(r) => {
                let _ = writeln!(
                    s,
                    "| review | {} on {} sampled rows of {} |",
                    r.verdict, r.sample_rows, r.store_rows
                );
            }
            None => {
                let _ = writeln!(s, "| review | nothing pending re-embeds |");
            }
        }
        if !self.reasons.is_empty() {
            let _ = writeln!(s, "\n### Why\n");
            for r in &self.reasons {
                let _ = writeln!(s, "- {}", md(r));
            }
        }
        self.gates_markdown(&mut s);
        if !self.plan.findings.is_empty() {
            let _ = writeln!(
                s,
                "\n### Lint findings\n\n| level | where | code | finding | fix |\n|---|---|---|---|---|"
            );
            for f in &self.plan.findings {
                let _ = writeln!(
                    s,
                    "| {} | `{}:{}` | `{}` | {} | {} |",
                    level(f.level),
                    f.file,
                    f.line,
                    f.code,
                    md(&f.message),
                    md(&f.hint)
                );
            }
        }
        s
    }

    fn gates_markdown(&self, s: &mut String) {
        let Some(r) = &self.review else { return };
        let checks: Vec<_> = r
            .steps
            .iter()
            .filter_map(|st| st.check.as_ref().map(|c| (st, c)))
            .collect();
        if checks.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n### Gates\n\n| migration | step | metric | value | verdict | |\n|---|---|---|---:|---|---|"
        );
        for (st, c) in checks {
            for g in &c.gates {
                let _ = writeln!(
                    s,
                    "| {} | {} `{}` → `{}` | {} | {} | {} | {} |",
                    st.file,
                    st.op,
                    st.from,
                    st.to,
                    g.metric,
                    g.value.map_or_else(|| "—".into(), |v| format!("{v:.3}")),
                    g.verdict,
                    md(&g.message)
                );
            }
            if c.gates.is_empty() {
                let _ = writeln!(
                    s,
                    "| {} | {} `{}` → `{}` | (no gates) | | {} | {} |",
                    st.file,
                    st.op,
                    st.from,
                    st.to,
                    c.verdict,
                    md(&c.adapter_summary)
                );
            }
        }
    }

    /// Annotations in the runner's workflow-command format, one per lint finding (file
    /// and line under the folder), then one per other reason to block.
    pub fn annotations(&self) -> String {
        let mut s = String::new();
        for f in &self.plan.findings {
            let kind = match f.level {
                Level::Error => "error",
                Level::Warning => "warning",
            };
            let file = Path::new(&self.folder).join(&f.file);
            let _ = writeln!(
                s,
                "::{kind} file={},line={},title={}::{}",
                escape_property(&file.display().to_string()),
                f.line,
                escape_property(&format!("memlane lint {}", f.code)),
                escape_data(&format!("{} Fix: {}", f.message, f.hint))
            );
        }
        if !self.verified {
            for r in self.reasons.iter().filter(|r| r.starts_with("verify")) {
                let _ = writeln!(s, "::error title=memlane verify::{}", escape_data(r));
            }
        }
        if let Some(r) = &self.review
            && r.verdict != Verdict::Pass
        {
            let kind = if r.verdict == Verdict::Block {
                "error"
            } else {
                "warning"
            };
            for x in &r.reasons {
                let _ = writeln!(s, "::{kind} title=memlane review::{}", escape_data(x));
            }
        }
        s
    }
}

fn counts(f: &[Finding]) -> (usize, usize) {
    let e = f.iter().filter(|x| x.level == Level::Error).count();
    (e, f.len() - e)
}

fn level(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warning => "warning",
    }
}

/// Text inside a Markdown table cell.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A workflow command's message (`%`, CR and LF escaped, as the runner expects).
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value (also `:` and `,`).
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_commands_are_escaped() {
        assert_eq!(escape_data("a%b\nc"), "a%25b%0Ac");
        assert_eq!(escape_property("x:y,z"), "x%3Ay%2Cz");
        assert_eq!(md("a|b\nc"), "a\\|b c");
    }
}
