//! `memlane search`: the k nearest records to a text in a space.

use std::fmt;

use anyhow::Result;
use serde_json::json;

use crate::cli::SearchArgs;
use crate::embedders;
use crate::exit::ExitStatus;
use crate::output::Output;

/// Embed the text (with the query space's prefix), search (through the store's adapter
/// when the query space differs) and show the hits with the space's coverage.
pub(crate) async fn run(args: SearchArgs, out: Output) -> Result<ExitStatus> {
    let SearchArgs {
        store,
        text,
        embedder,
        embedders_file,
        space,
        query_space,
        k,
        exact,
        nprobes,
        refine_factor,
    } = args;
    let opts = memlane_store::SearchOptions {
        exact,
        nprobes,
        refine_factor,
        columns: None,
    };
    let mut st = store.open().await?;
    let e = embedder.as_deref().map(embedders::parse_spec).transpose()?;
    let named = memlane_store::configured_embedders(None, embedders_file.as_deref(), None)?;
    st.register_embedders(named);
    let sp = st.space(space.as_deref())?.clone();
    let qsp = st
        .space(Some(query_space.as_deref().unwrap_or(&sp.name)))?
        .clone();
    let q = st.query_vector(Some(&qsp.name), &text, e.as_ref())?;
    let found = st
        .search_adapted_with(Some(&sp.name), &qsp.name, &q, k, None, &opts)
        .await?;
    let hits = &found.hits;
    let (with, total) = st.coverage(Some(&sp.name)).await?;
    let shown = fmt::from_fn(|f| {
        if with < total {
            writeln!(
                f,
                "space {}: covers {with} of {total} rows (a re-embed is filling it)",
                sp.name
            )?;
        }
        match (&found.index, &found.fallback) {
            (Some(kind), _) => writeln!(f, "space {}: searched with its {kind} index", sp.name)?,
            (None, Some(why)) => writeln!(f, "space {}: warning: {why}", sp.name)?,
            (None, None) => writeln!(f, "space {}: exact search", sp.name)?,
        }
        for h in hits {
            let c = h.content.as_deref().unwrap_or_default();
            let c: String = c.chars().take(90).collect();
            writeln!(f, "{:.4}  {:<40} {c}", h.distance, h.id)?;
        }
        Ok(())
    });
    out.emit(
        &json!({"space": sp.name, "index": found.index, "fallback": found.fallback, "coverage": {"rows_with_vector": with, "rows": total}, "hits": hits}),
        shown,
    )?;
    Ok(ExitStatus::Ok)
}
