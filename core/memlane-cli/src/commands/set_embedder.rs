//! `memlane set-embedder`: remember (or forget) the embedder of a space.

use anyhow::Result;
use serde_json::json;

use crate::cli::SetEmbedderArgs;
use crate::embedders;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Remember the reference (checked against the space's stored vectors) or forget it,
/// and report the version of the commit.
pub(crate) async fn run(args: SetEmbedderArgs, out: Output) -> Result<ExitStatus> {
    let SetEmbedderArgs {
        store,
        space,
        reference,
        forget: _,
        embedders,
    } = args;
    let mut st = store.open().await?;
    st.register_embedders(embedders::named(&embedders)?);
    let version = st.set_embedder(&space, reference.as_deref()).await?;
    let said = match &reference {
        Some(r) => format!("space {space} remembers embedder {r} (version {version})"),
        None => format!("space {space} forgets its embedder (version {version})"),
    };
    out.emit(
        &json!({"space": space, "embedder": reference, "version": version}),
        line(format_args!("{said}")),
    )?;
    Ok(ExitStatus::Ok)
}
