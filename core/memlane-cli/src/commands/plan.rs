//! `memlane plan`: what `apply` would do, with lint findings.

use anyhow::Result;
use memlane_store::Store;

use crate::cli::{PlanArgs, StoreArgs};
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Show the plan; blocked on lint errors or an edited applied migration.
pub(crate) async fn run(args: PlanArgs, out: Output) -> Result<ExitStatus> {
    let PlanArgs {
        store: StoreArgs { store },
        migrations,
    } = args;
    let st = Store::open(&store).await?;
    let plan = st.plan(&memlane_store::read_folder(&migrations)?).await?;
    out.emit(&plan, line(&plan))?;
    if plan.errors().next().is_some() {
        return Ok(ExitStatus::Blocked);
    }
    Ok(ExitStatus::Ok)
}
