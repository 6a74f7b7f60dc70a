//! Embedders the CLI can supply: the built-in hashing embedder and external commands.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use memlane_store::{EmbedError, Embedder, HashEmbedder};

/// An embedder run as an external command: it reads a JSON array of texts on stdin
/// and writes a JSON array of vectors (arrays of numbers) on stdout.
struct CommandEmbedder {
    cmd: String,
}

impl Embedder for CommandEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let input = serde_json::to_vec(texts)?;
        child.stdin.take().ok_or("no stdin")?.write_all(&input)?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(format!("`{}` exited with {}", self.cmd, out.status).into());
        }
        let vecs: Vec<Vec<f32>> = serde_json::from_slice(&out.stdout)?;
        Ok(vecs.into_iter().flatten().collect())
    }
}

/// Parse `hash:DIM[:SEED]` or `cmd:COMMAND`.
pub(crate) fn parse_spec(spec: &str) -> Result<Arc<dyn Embedder>> {
    if let Some(h) = HashEmbedder::parse(spec) {
        return Ok(h.arc());
    }
    if let Some(cmd) = spec.strip_prefix("cmd:") {
        return Ok(Arc::new(CommandEmbedder {
            cmd: cmd.to_owned(),
        }));
    }
    bail!("embedder spec `{spec}` is not `hash:DIM[:SEED]` or `cmd:COMMAND`")
}

/// Parse repeated `NAME=SPEC` options.
pub(crate) fn parse_all(items: &[String]) -> Result<HashMap<String, Arc<dyn Embedder>>> {
    let mut out = HashMap::new();
    for it in items {
        let (name, spec) = it
            .split_once('=')
            .with_context(|| format!("`{it}` is not NAME=SPEC (e.g. minilm=hash:384)"))?;
        out.insert(name.to_owned(), parse_spec(spec)?);
    }
    Ok(out)
}
