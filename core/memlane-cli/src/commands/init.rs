//! `memlane init`: create a store, optionally from a JSONL file of records.

use anyhow::Result;
use memlane_store::{CreateOptions, Store};
use serde_json::json;

use crate::cli::{InitArgs, parse_space};
use crate::embedders;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Create the store and report its version, rows and spaces.
pub(crate) async fn run(args: InitArgs, out: Output) -> Result<ExitStatus> {
    let InitArgs {
        store,
        plain,
        spaces,
        from,
        embedders,
        rows_per_fragment,
    } = args;
    let spaces = spaces
        .iter()
        .map(|s| parse_space(s))
        .collect::<Result<Vec<_>>>()?;
    let (emb, registry) = embedders::for_writes(&embedders)?;
    let opts = CreateOptions {
        plain,
        spaces,
        fields: vec![],
        rows_per_fragment,
        storage: store.storage.parse()?,
        registry,
    };
    let store = store.store;
    let mut st = match &from {
        Some(f) => {
            Store::create_from_json(&store, opts, &memlane_store::read_jsonl(f)?, &emb).await?
        }
        None => Store::create(&store, opts, None, &emb).await?,
    };
    st.refresh().await?;
    let rows = st.count().await?;
    out.emit(
        &json!({"store": store, "version": st.version(), "rows": rows, "spaces": memlane_store::space_summaries(&st.state().spaces)}),
        line(format_args!(
            "created store {store} at version {} with {rows} rows",
            st.version()
        )),
    )?;
    Ok(ExitStatus::Ok)
}
