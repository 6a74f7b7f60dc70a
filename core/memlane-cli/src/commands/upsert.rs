//! `memlane upsert`: insert or update records by id from a file.

use anyhow::Result;

use crate::cli::UpsertArgs;
use crate::embedders;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Upsert the file's records and report how many were inserted and updated.
pub(crate) async fn run(args: UpsertArgs, out: Output) -> Result<ExitStatus> {
    let UpsertArgs {
        store,
        file,
        embedders,
    } = args;
    let mut st = store.open().await?;
    let (emb, named) = embedders::for_writes(&embedders)?;
    st.register_embedders(named);
    let r = st.upsert(st.load_records(&file)?, &emb).await?;
    out.emit(
        &r,
        line(format_args!(
            "{} inserted, {} updated at version {}",
            r.inserted, r.updated, r.version
        )),
    )?;
    Ok(ExitStatus::Ok)
}
