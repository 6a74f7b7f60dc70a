//! Embedders from the command line: `--embedder NAME=SPEC` flags, a `--embedders FILE`
//! (or `MEMLANE_EMBEDDERS`), and the `memlane.toml` beside the migrations. The forms and
//! the file format are the library's (`memlane_store::EmbedderSpec`); this module only
//! gathers them, later sources overriding earlier ones by name: the folder's file, the
//! named file, the flags.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use memlane_store::{EmbedError, Embedder, EmbedderSpec, StoreError};

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
    let s = EmbedderSpec::parse(spec).map_err(|message| StoreError::EmbedderConfig {
        at: format!("`{spec}`"),
        message,
    })?;
    s.build(timeout()).map_err(|message| {
        StoreError::EmbedderConfig {
            at: format!("`{spec}`"),
            message,
        }
        .into()
    })
}

/// An embedder from a file that could not be made (an unset API key variable, say): the
/// command fails only if it calls it, with the reason.
struct Unavailable {
    why: String,
}

impl Embedder for Unavailable {
    fn embed(&self, _: &[&str]) -> std::result::Result<Vec<f32>, EmbedError> {
        Err(self.why.clone().into())
    }
}

/// The embedders a command may call: the migrations folder's `memlane.toml` (when the
/// command has a folder), `--embedders FILE`, then the `--embedder NAME=SPEC` flags.
pub(crate) fn load(
    args: &EmbedderArgs,
    folder: Option<&Path>,
) -> Result<HashMap<String, Arc<dyn Embedder>>> {
    let mut out: HashMap<String, Arc<dyn Embedder>> = HashMap::new();
    let beside = folder
        .map(|d| d.join(memlane_store::memlane_core::migration::CONFIG_FILE))
        .filter(|p| p.is_file());
    for file in beside.iter().chain(args.file.iter()) {
        for (name, spec) in memlane_store::load_config(file)? {
            let e = spec.build(timeout()).unwrap_or_else(|why| {
                Arc::new(Unavailable {
                    why: format!("{}: [embedders.{name}]: {why}", file.display()),
                })
            });
            out.insert(name, e);
        }
    }
    for it in &args.embedders {
        let (name, spec) = it
            .split_once('=')
            .with_context(|| format!("`{it}` is not NAME=SPEC (e.g. minilm=hash:384)"))?;
        out.insert(name.to_owned(), parse_spec(spec)?);
    }
    Ok(out)
}
