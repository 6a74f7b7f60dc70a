//! `memlane lint`: lint a migrations folder, against a store or a fresh one.

use std::fmt;

use anyhow::Result;
use memlane_store::Store;
use memlane_store::memlane_core::plan::Level;

use crate::cli::LintArgs;
use crate::exit::ExitStatus;
use crate::output::Output;

/// Show the findings and a count of errors and warnings; blocked on errors.
pub(crate) async fn run(args: LintArgs, out: Output) -> Result<ExitStatus> {
    let LintArgs {
        migrations,
        store,
        storage,
    } = args;
    // the whole folder: a broken memlane.toml is reported here, before an apply needs it
    let files = memlane_store::MigrationFolder::read(&migrations)?.migrations;
    let plan = match &store {
        Some(s) => {
            Store::open_with(s, storage.parse()?)
                .await?
                .plan(&files)
                .await?
        }
        None => Store::lint_fresh(&files)?,
    };
    let text = fmt::from_fn(|f| {
        for finding in &plan.findings {
            writeln!(f, "{finding}")?;
        }
        let e = plan
            .findings
            .iter()
            .filter(|finding| finding.level == Level::Error)
            .count();
        writeln!(
            f,
            "{} file(s): {e} error(s), {} warning(s)",
            files.len(),
            plan.findings.len() - e
        )
    });
    out.emit(&plan.findings, text)?;
    if plan.errors().next().is_some() {
        return Ok(ExitStatus::Blocked);
    }
    Ok(ExitStatus::Ok)
}
