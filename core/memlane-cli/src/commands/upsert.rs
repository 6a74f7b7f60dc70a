//! `memlane upsert`: insert or update records by id from a file.

use anyhow::Result;
use memlane_store::Store;

use crate::cli::{EmbedderArgs, StoreArgs, UpsertArgs};
use crate::embedders;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Upsert the file's records and report how many were inserted and updated.
pub(crate) async fn run(args: UpsertArgs, out: Output) -> Result<ExitStatus> {
    let UpsertArgs {
        store: StoreArgs { store },
        file,
        embedders: EmbedderArgs { embedders },
    } = args;
    let mut st = Store::open(&store).await?;
    let emb = embedders::parse_all(&embedders)?;
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
