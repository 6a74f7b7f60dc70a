//! Embedder configuration: the one-line forms (`hash:384`, `cmd:python embed.py`,
//! `proc:python serve.py`, `http:URL,model=NAME,...`) and the `[embedders.NAME]`
//! tables of a `memlane.toml`, both parsed into one [`EmbedderSpec`] and checked the
//! same way. Secrets never live in the file: an API key is named by the environment
//! variable that holds it (`api_key_env`).
//!
//! ```toml
//! [embedders.e5]
//! type = "http"
//! url = "http://127.0.0.1:8080/v1"
//! model = "intfloat/multilingual-e5-small"
//! api_key_env = "EMBEDDINGS_API_KEY"
//! batch_size = 64
//! concurrency = 8
//! requests_per_minute = 3000
//!
//! [embedders.minilm]
//! type = "process"
//! command = "python serve_minilm.py"
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::command::CommandEmbedder;
use super::http::{HttpEmbedder, HttpSettings};
use super::process::ProcessEmbedder;
use super::{Embedder, HashEmbedder};
use crate::error::{Result, StoreError};

/// Default seconds a command, model process or HTTP request may take per batch.
pub const DEFAULT_TIMEOUT_SECS: f64 = 300.0;

/// One embedder's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmbedderSpec {
    /// The built-in hashing embedder.
    Hash {
        /// Vector dimension.
        dimension: usize,
        /// Seed (different seeds are different "models").
        #[serde(default)]
        seed: u64,
    },
    /// A command started for every batch: a JSON array of texts on stdin, a JSON array
    /// of vectors on stdout.
    Command {
        /// Shell command line.
        command: String,
        /// Seconds a batch may take (default: the global embedder timeout).
        #[serde(default, alias = "timeout")]
        timeout_secs: Option<f64>,
        /// Texts per call (default 256).
        #[serde(default, alias = "batch")]
        batch_size: Option<usize>,
    },
    /// A model process started once, fed one JSON array of texts per line and answering
    /// one JSON array of vectors per line.
    Process {
        /// Shell command line.
        command: String,
        /// Seconds a batch may take before the process is killed and restarted.
        #[serde(default, alias = "timeout")]
        timeout_secs: Option<f64>,
        /// Texts per line (default 256).
        #[serde(default, alias = "batch")]
        batch_size: Option<usize>,
        /// Restarts after crashes or hangs before the embedder fails (default 3).
        #[serde(default, alias = "restarts")]
        max_restarts: Option<u64>,
    },
    /// A server speaking the OpenAI embeddings API.
    Http {
        /// Base URL, e.g. `http://127.0.0.1:11434/v1`.
        url: String,
        /// Model name on the server.
        model: String,
        /// Environment variable holding the API key.
        #[serde(default, alias = "key_env")]
        api_key_env: Option<String>,
        /// Sent as the request's `dimensions`.
        #[serde(default)]
        dimensions: Option<usize>,
        /// Texts per request (default 64).
        #[serde(default, alias = "batch")]
        batch_size: Option<usize>,
        /// Requests in flight (default 4).
        #[serde(default)]
        concurrency: Option<usize>,
        /// Seconds a request may take (default: the global embedder timeout, else 60).
        #[serde(default, alias = "timeout")]
        timeout_secs: Option<f64>,
        /// Retries of a request after 429/5xx/dropped connections/timeouts (default 6).
        #[serde(default, alias = "retries")]
        max_retries: Option<u32>,
        /// Longest backoff between retries, seconds (default 30).
        #[serde(default)]
        max_backoff_secs: Option<f64>,
        /// Requests a minute.
        #[serde(default, alias = "rpm")]
        requests_per_minute: Option<f64>,
        /// Estimated tokens a minute (4 characters a token).
        #[serde(default, alias = "tpm")]
        tokens_per_minute: Option<f64>,
    },
}

impl EmbedderSpec {
    /// Parse a one-line form: `hash:DIM[:SEED]`, `cmd:COMMAND`, `proc:COMMAND` or
    /// `http:URL,model=NAME[,KEY=VALUE...]` (keys as in `memlane.toml`; short forms
    /// `batch`, `timeout`, `retries`, `rpm`, `tpm`, `key_env`).
    pub fn parse(spec: &str) -> std::result::Result<Self, String> {
        if let Some(rest) = spec.strip_prefix("hash:") {
            let h = HashEmbedder::parse(spec)
                .ok_or_else(|| format!("`hash:{rest}` is not hash:DIM[:SEED] with DIM > 0"))?;
            return Ok(EmbedderSpec::Hash {
                dimension: h.dimension(),
                seed: h.seed(),
            });
        }
        if let Some(cmd) = spec.strip_prefix("cmd:") {
            return Ok(EmbedderSpec::Command {
                command: non_empty(cmd)?,
                timeout_secs: None,
                batch_size: None,
            });
        }
        if let Some(cmd) = spec.strip_prefix("proc:") {
            return Ok(EmbedderSpec::Process {
                command: non_empty(cmd)?,
                timeout_secs: None,
                batch_size: None,
                max_restarts: None,
            });
        }
        if let Some(rest) = spec.strip_prefix("http:") {
            return parse_http(rest);
        }
        Err(format!(
            "`{spec}` is not hash:DIM[:SEED], cmd:COMMAND, proc:COMMAND or http:URL,model=NAME"
        ))
    }

    /// Make the embedder. `default_timeout` applies where the spec sets none.
    pub fn build(
        &self,
        default_timeout: Option<Duration>,
    ) -> std::result::Result<Arc<dyn Embedder>, String> {
        let timeout = |own: Option<f64>, fallback: f64| -> std::result::Result<Duration, String> {
            match own {
                Some(s) if s > 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
                Some(s) => Err(format!(
                    "timeout_secs = {s} must be a positive number of seconds"
                )),
                None => Ok(default_timeout.unwrap_or(Duration::from_secs_f64(fallback))),
            }
        };
        let batch = |b: Option<usize>, d: usize| -> std::result::Result<usize, String> {
            match b {
                Some(0) => Err("batch_size = 0: give at least 1 text per call".into()),
                Some(b) => Ok(b),
                None => Ok(d),
            }
        };
        Ok(match self {
            EmbedderSpec::Hash { dimension, seed } => {
                if *dimension == 0 {
                    return Err("dimension = 0: give the vector dimension".into());
                }
                HashEmbedder::new(*dimension, *seed).arc()
            }
            EmbedderSpec::Command {
                command,
                timeout_secs,
                batch_size,
            } => Arc::new(CommandEmbedder {
                cmd: command.clone(),
                timeout: timeout(*timeout_secs, DEFAULT_TIMEOUT_SECS)?,
                batch: batch(*batch_size, 256)?,
                counters: Arc::default(),
            }),
            EmbedderSpec::Process {
                command,
                timeout_secs,
                batch_size,
                max_restarts,
            } => Arc::new(ProcessEmbedder::new(
                command.clone(),
                timeout(*timeout_secs, DEFAULT_TIMEOUT_SECS)?,
                batch(*batch_size, 256)?,
                max_restarts.unwrap_or(3),
            )),
            EmbedderSpec::Http { .. } => {
                Arc::new(HttpEmbedder::new(self.http_settings(timeout, batch)?)?)
            }
        })
    }

    fn http_settings(
        &self,
        timeout: impl Fn(Option<f64>, f64) -> std::result::Result<Duration, String>,
        batch: impl Fn(Option<usize>, usize) -> std::result::Result<usize, String>,
    ) -> std::result::Result<HttpSettings, String> {
        let EmbedderSpec::Http {
            url,
            model,
            api_key_env,
            dimensions,
            batch_size,
            concurrency,
            timeout_secs,
            max_retries,
            max_backoff_secs,
            requests_per_minute,
            tokens_per_minute,
        } = self
        else {
            return Err("not an http embedder".into());
        };
        let per_minute = |name: &str, v: Option<f64>| match v {
            Some(x) if !(x > 0.0 && x.is_finite()) => {
                Err(format!("{name} = {x} must be a positive number"))
            }
            v => Ok(v),
        };
        let mut s = HttpSettings::new(url.clone(), model.clone());
        s.api_key_env.clone_from(api_key_env);
        s.dimensions = *dimensions;
        s.batch_size = batch(*batch_size, 64)?;
        s.concurrency = match concurrency {
            Some(c) if (1..=256).contains(c) => *c,
            Some(c) => return Err(format!("concurrency = {c} must be between 1 and 256")),
            None => 4,
        };
        s.timeout = timeout(*timeout_secs, 60.0)?;
        s.max_retries = max_retries.unwrap_or(6);
        s.max_backoff = match max_backoff_secs {
            Some(b) if *b >= 0.0 && b.is_finite() => Duration::from_secs_f64(*b),
            Some(b) => {
                return Err(format!(
                    "max_backoff_secs = {b} must be a number of seconds"
                ));
            }
            None => Duration::from_secs(30),
        };
        s.requests_per_minute = per_minute("requests_per_minute", *requests_per_minute)?;
        s.tokens_per_minute = per_minute("tokens_per_minute", *tokens_per_minute)?;
        Ok(s)
    }
}

fn non_empty(cmd: &str) -> std::result::Result<String, String> {
    if cmd.trim().is_empty() {
        return Err("no command given after the prefix".into());
    }
    Ok(cmd.to_owned())
}

/// `URL,key=value,...` into the same table a `memlane.toml` would hold.
fn parse_http(rest: &str) -> std::result::Result<EmbedderSpec, String> {
    let mut parts = rest.split(',');
    let url = parts.next().unwrap_or_default().trim();
    let mut t = toml::Table::new();
    t.insert("type".into(), "http".into());
    t.insert("url".into(), url.into());
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("`{p}` in http:{rest} is not KEY=VALUE"))?;
        let (k, v) = (k.trim(), v.trim());
        let value = if let Ok(i) = v.parse::<i64>() {
            toml::Value::Integer(i)
        } else if let Ok(f) = v.parse::<f64>() {
            toml::Value::Float(f)
        } else {
            toml::Value::String(v.to_owned())
        };
        t.insert(k.to_owned(), value);
    }
    spec_from_table(&t)
}

/// Deserialize one embedder table; `api_key` is refused with the way to give a key.
fn spec_from_table(t: &toml::Table) -> std::result::Result<EmbedderSpec, String> {
    if t.contains_key("api_key") {
        return Err(
            "`api_key` is not read from configuration (it would end up in files and logs); put the key in an environment variable and name it with `api_key_env`".into(),
        );
    }
    if !t.contains_key("type") {
        return Err("no `type`; set type = \"http\", \"process\", \"command\" or \"hash\"".into());
    }
    let spec = EmbedderSpec::deserialize(toml::Value::Table(t.clone()))
        .map_err(|e| e.to_string().trim().to_owned())?;
    Ok(spec)
}

/// Parse a `memlane.toml`'s `[embedders.NAME]` tables (`file` names it in errors).
pub fn parse_config(file: &str, text: &str) -> Result<BTreeMap<String, EmbedderSpec>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        #[serde(default)]
        embedders: BTreeMap<String, toml::Table>,
    }
    let bad = |message: String| StoreError::EmbedderConfig {
        at: file.to_owned(),
        message,
    };
    let raw: Raw = toml::from_str(text).map_err(|e| bad(e.to_string().trim().to_owned()))?;
    let mut out = BTreeMap::new();
    for (name, t) in raw.embedders {
        let at = format!("{file} line {}", header_line(text, &name));
        let spec = spec_from_table(&t).map_err(|message| StoreError::EmbedderConfig {
            at: format!("{at} [embedders.{name}]"),
            message,
        })?;
        out.insert(name, spec);
    }
    Ok(out)
}

/// Read a `memlane.toml` from disk.
pub fn load_config(path: impl AsRef<std::path::Path>) -> Result<BTreeMap<String, EmbedderSpec>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| StoreError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    parse_config(&path.display().to_string(), &text)
}

/// Make an embedder from a one-line form (`hash:`, `cmd:`, `proc:`, `http:`); errors
/// name the form.
pub fn embedder_from_spec(
    spec: &str,
    default_timeout: Option<Duration>,
) -> Result<Arc<dyn Embedder>> {
    let bad = |message: String| StoreError::EmbedderConfig {
        at: format!("`{spec}`"),
        message,
    };
    EmbedderSpec::parse(spec)
        .map_err(bad)?
        .build(default_timeout)
        .map_err(bad)
}

/// An embedder from a file that could not be made (an unset API key variable, say): a
/// run fails only if it calls it, with the reason.
struct Unavailable {
    why: String,
}

impl Embedder for Unavailable {
    fn embed(&self, _: &[&str]) -> std::result::Result<Vec<f32>, super::EmbedError> {
        Err(self.why.clone().into())
    }
}

/// The embedders configured for a run: the migrations folder's `memlane.toml` (when
/// there is one), then `file` (overriding by name). An entry that cannot be made (its
/// API key variable unset) fails only when called, so a file can declare embedders a
/// given run does not use. `default_timeout` applies where an entry sets none.
pub fn configured_embedders(
    folder: Option<&std::path::Path>,
    file: Option<&std::path::Path>,
    default_timeout: Option<Duration>,
) -> Result<std::collections::HashMap<String, Arc<dyn Embedder>>> {
    let beside = folder
        .map(|d| d.join(memlane_core::migration::CONFIG_FILE))
        .filter(|p| p.is_file());
    let mut out = std::collections::HashMap::new();
    for path in beside.as_deref().into_iter().chain(file) {
        for (name, spec) in load_config(path)? {
            let e = spec.build(default_timeout).unwrap_or_else(|why| {
                Arc::new(Unavailable {
                    why: format!("{} [embedders.{name}]: {why}", path.display()),
                }) as Arc<dyn Embedder>
            });
            out.insert(name, e);
        }
    }
    Ok(out)
}

/// The 1-based line of `[embedders.NAME]` (1 when it is written another way).
fn header_line(text: &str, name: &str) -> usize {
    let quoted = format!("[embedders.\"{name}\"]");
    let plain = format!("[embedders.{name}]");
    text.lines()
        .position(|l| {
            let l = l.trim().replace(' ', "");
            l == plain || l == quoted
        })
        .map_or(1, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_forms() {
        assert_eq!(
            EmbedderSpec::parse("hash:8:2").unwrap(),
            EmbedderSpec::Hash {
                dimension: 8,
                seed: 2
            }
        );
        let EmbedderSpec::Http {
            url,
            model,
            batch_size,
            concurrency,
            timeout_secs,
            requests_per_minute,
            ..
        } = EmbedderSpec::parse(
            "http:http://127.0.0.1:9/v1,model=e5,batch=32,concurrency=8,timeout=2.5,rpm=600",
        )
        .unwrap()
        else {
            panic!("not http")
        };
        assert_eq!(
            (url.as_str(), model.as_str(), batch_size, concurrency),
            ("http://127.0.0.1:9/v1", "e5", Some(32), Some(8))
        );
        assert_eq!(
            (timeout_secs, requests_per_minute),
            (Some(2.5), Some(600.0))
        );
        let e = EmbedderSpec::parse("http:http://x/v1,modle=e5").unwrap_err();
        assert!(e.contains("modle"), "{e}");
        let e = EmbedderSpec::parse("http:http://x/v1,model=e5,api_key=sk-123").unwrap_err();
        assert!(e.contains("api_key_env") && !e.contains("sk-123"), "{e}");
        assert!(EmbedderSpec::parse("proc:").is_err());
        assert!(EmbedderSpec::parse("nope:x").is_err());
        let e = EmbedderSpec::parse("http:http://x/v1,model=e5,concurrency=0")
            .unwrap()
            .build(None)
            .err()
            .unwrap();
        assert!(e.contains("concurrency"), "{e}");
    }

    #[test]
    fn config_file_names_the_table_and_line() {
        let text = "# embedders\n\n[embedders.a]\ntype = \"hash\"\ndimension = 4\n\n[embedders.b]\ntype = \"process\"\ncommand = \"python m.py\"\ntimeout = 5\n";
        let c = parse_config("memlane.toml", text).unwrap();
        assert_eq!(c.len(), 2);
        assert!(c["a"].build(None).is_ok());
        let bad = "[embedders.x]\ntype = \"http\"\nurl = \"http://h/v1\"\nmodel = \"m\"\nconcurency = 3\n";
        let e = parse_config("memlane.toml", bad).unwrap_err().to_string();
        assert!(
            e.contains("memlane.toml line 1 [embedders.x]") && e.contains("concurency"),
            "{e}"
        );
        let e = parse_config("memlane.toml", "[embedder.x]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("embedder"), "{e}");
        let e = parse_config("m.toml", "[embedders.k]\ncommand = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `type`"), "{e}");
    }
}
