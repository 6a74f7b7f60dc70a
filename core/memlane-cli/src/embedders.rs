//! Embedders from the command line: `--embedder NAME=SPEC` flags over the library's
//! configured embedders (the `memlane.toml` beside the migrations, then `--embedders FILE`
//! or `MEMLANE_EMBEDDERS`). The forms, the file format and the merge are the library's
//! (`memlane_store::EmbedderSpec`, `configured_embedders`); this module adds the flags.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use memlane_store::memlane_core::{Migration, Step};
use memlane_store::{Embedder, HashEmbedder};

use crate::cli::EmbedderArgs;

/// The default per-batch timeout, set once from `--embedder-timeout` (or
/// `MEMLANE_EMBEDDER_TIMEOUT`, which clap reads into the same flag).
static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// Set the default per-batch timeout of command, process and HTTP embedders (seconds).
pub(crate) fn set_timeout(secs: Option<f64>) -> Result<()> {
    let d = match secs {
        None => return Ok(()),
        Some(s) if s > 0.0 && s.is_finite() => Duration::from_secs_f64(s),
        Some(s) => bail!("--embedder-timeout {s} must be a positive number of seconds"),
    };
    let _ = TIMEOUT.set(d);
    Ok(())
}

/// The timeout given on the command line, if any (specs without their own use it).
fn timeout() -> Option<Duration> {
    TIMEOUT.get().copied()
}

/// Parse and make one one-line embedder (`hash:`, `cmd:`, `proc:`, `http:`).
pub(crate) fn parse_spec(spec: &str) -> Result<Arc<dyn Embedder>> {
    Ok(memlane_store::embedder_from_spec(spec, timeout())?)
}

/// The embedders a command may call: the migrations folder's `memlane.toml` (when the
/// command has a folder), `--embedders FILE`, then the `--embedder NAME=SPEC` flags.
pub(crate) fn load(
    args: &EmbedderArgs,
    folder: Option<&Path>,
) -> Result<HashMap<String, Arc<dyn Embedder>>> {
    let mut out =
        memlane_store::configured_embedders(folder, args.embedders_file.as_deref(), timeout())?;
    for it in &args.embedders {
        let (name, spec) = it
            .split_once('=')
            .with_context(|| format!("`{it}` is not NAME=SPEC (e.g. minilm=hash:384)"))?;
        out.insert(name.to_owned(), parse_spec(spec)?);
    }
    Ok(out)
}

/// The embedders of a write (`add`, `upsert`, `init --from`), given to the store: the
/// `--embedder SPACE=SPEC` flags are a space's own; the `[embedders.NAME]` tables of
/// `--embedders FILE` (or `MEMLANE_EMBEDDERS`) are named ones, which a space that
/// remembers one of those names embeds with.
pub(crate) fn for_writes(
    args: &EmbedderArgs,
) -> Result<(
    memlane_store::remembered::BySpace,
    memlane_store::remembered::Registry,
)> {
    let named =
        memlane_store::configured_embedders(None, args.embedders_file.as_deref(), timeout())?;
    let flags = EmbedderArgs {
        embedders: args.embedders.clone(),
        embedders_file: None,
    };
    Ok((load(&flags, None)?, named.into_iter().collect()))
}

/// Named embedders only: the `--embedders FILE` tables and the `--embedder NAME=SPEC`
/// flags (`set-embedder`, where a flag names an embedder rather than a space).
pub(crate) fn named(args: &EmbedderArgs) -> Result<memlane_store::remembered::Registry> {
    Ok(load(args, None)?.into_iter().collect())
}

/// The given embedders (flags, `--embedders FILE`, the folder's `memlane.toml`), plus a hashing embedder for every embedder the folder names
/// that is not given and names one (applied migrations too: apply catches up a
/// completed re-embed of the active space).
pub(crate) fn for_folder(
    given: &EmbedderArgs,
    folder: &std::path::Path,
    files: &[Migration],
) -> Result<HashMap<String, Arc<dyn Embedder>>> {
    let mut e = load(given, Some(folder))?;
    let names = files
        .iter()
        .flat_map(|m| &m.steps)
        .filter_map(|s| match &s.step {
            Step::Reembed { embedder, .. } => Some(embedder),
            _ => None,
        });
    for name in names {
        if !e.contains_key(name)
            && let Some(h) = HashEmbedder::from_name(name)
        {
            e.insert(name.clone(), h.arc());
        }
    }
    Ok(e)
}
