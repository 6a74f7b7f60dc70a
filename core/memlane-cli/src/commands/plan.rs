//! `memlane plan`: what `apply` would do, with lint findings.

use anyhow::Result;

use crate::cli::PlanArgs;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Show the plan; blocked on lint errors or an edited applied migration.
pub(crate) async fn run(args: PlanArgs, out: Output) -> Result<ExitStatus> {
    let PlanArgs { store, migrations } = args;
    let st = store.open().await?;
    let plan = st
        .plan(&memlane_store::MigrationFolder::read(&migrations)?.migrations)
        .await?;
    out.emit(&plan, line(&plan))?;
    if plan.errors().next().is_some() {
        return Ok(ExitStatus::Blocked);
    }
    Ok(ExitStatus::Ok)
}
