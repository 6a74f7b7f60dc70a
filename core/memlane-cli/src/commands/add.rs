//! `memlane add`: add records from a file.

use anyhow::Result;

use crate::cli::AddArgs;
use crate::embedders;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Add the file's records and report the rows before and after.
pub(crate) async fn run(args: AddArgs, out: Output) -> Result<ExitStatus> {
    let AddArgs {
        store,
        file,
        embedders,
    } = args;
    let mut st = store.open().await?;
    let (emb, named) = embedders::for_writes(&embedders)?;
    st.register_embedders(named);
    let r = st.add(st.load_records(&file)?, &emb).await?;
    out.emit(
        &r,
        line(format_args!(
            "added {} records ({} -> {} rows) at version {}",
            r.added, r.rows_before, r.rows_after, r.version
        )),
    )?;
    Ok(ExitStatus::Ok)
}
