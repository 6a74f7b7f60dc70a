//! `memlane validate`: check the data against every built-in invariant and the folder's
//! `invariants.toml`, or show the recorded checks over versions.

use std::fmt;

use anyhow::Result;
use memlane_store::Store;

use crate::cli::ValidateArgs;
use crate::exit::ExitStatus;
use crate::output::Output;

/// Validate and record the report (blocked when a `fail` check fails), or with
/// `--history` show the recorded checks.
pub(crate) async fn run(args: ValidateArgs, out: Output) -> Result<ExitStatus> {
    let ValidateArgs {
        store,
        migrations,
        against,
        history,
    } = args;
    let st = store.open().await?;
    if history {
        return show_history(&st, out).await;
    }
    let specs = match &migrations {
        Some(d) => memlane_store::read_invariants(d)?,
        None => vec![],
    };
    let r = st.validate(&specs, against).await?;
    st.record_validation(&r).await?;
    out.emit(&memlane_store::verdict_json(&r), &r)?;
    if !r.ok() {
        return Ok(ExitStatus::Blocked);
    }
    Ok(ExitStatus::Ok)
}

/// Every recorded check over versions, as a table.
async fn show_history(st: &Store, out: Output) -> Result<ExitStatus> {
    let rows = st.validate_history().await?;
    let text = fmt::from_fn(|f| {
        writeln!(
            f,
            "{:>8}  {:<10}  {:<34} {:>9} {:>9}  result",
            "version", "source", "check", "failed", "rows"
        )?;
        for r in &rows {
            writeln!(
                f,
                "{:>8}  {:<10}  {:<34} {:>9} {:>9}  {}",
                r.version,
                r.source,
                r.check,
                r.failed,
                r.total,
                if r.passed {
                    "pass"
                } else {
                    r.severity.as_str()
                }
            )?;
        }
        Ok(())
    });
    out.emit(&rows, text)?;
    Ok(ExitStatus::Ok)
}
