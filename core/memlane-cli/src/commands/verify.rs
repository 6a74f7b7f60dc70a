//! `memlane verify`: recompute the hash chain and check the recorded state against the
//! data.

use anyhow::Result;

use crate::cli::VerifyArgs;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Show every check; blocked when one fails.
pub(crate) async fn run(args: VerifyArgs, out: Output) -> Result<ExitStatus> {
    let VerifyArgs { store, migrations } = args;
    let st = store.open().await?;
    let files = migrations
        .as_ref()
        .map(memlane_store::read_folder)
        .transpose()?;
    let r = st.verify(files.as_deref()).await?;
    out.emit(&memlane_store::verdict_json(&r), line(&r))?;
    if !r.ok() {
        return Ok(ExitStatus::Blocked);
    }
    Ok(ExitStatus::Ok)
}
