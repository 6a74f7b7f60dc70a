//! Embedders: supplied by the host program, named in migration files.
//!
//! Besides the [`Embedder`] trait the library ships the embedders users run models
//! with, so every host (the CLI, Python, a Rust service) gets the same ones:
//!
//! - [`HashEmbedder`] (`hash:DIM[:SEED]`): built in, model-free;
//! - `cmd:COMMAND`: a command started for every batch (JSON array in, array out);
//! - `proc:COMMAND`: a model process started once, speaking JSON lines for the whole
//!   run, restarted (a bounded number of times) when it crashes or hangs;
//! - `http:URL,...`: a server speaking the OpenAI embeddings API (OpenAI, Ollama, TEI,
//!   vLLM, LiteLLM, infinity), with batching, concurrent requests, retries with
//!   jittered backoff honouring `Retry-After`, and request/token rate limits.
//!
//! [`EmbedderSpec`] parses the one-line forms and the `[embedders.NAME]` tables of a
//! `memlane.toml`; [`load_config`] reads such a file.

use std::sync::atomic::{AtomicU64, Ordering};

use memlane_core::EmbedderCalls;

mod command;
mod config;
mod hash;
mod http;
mod limit;
mod process;
pub mod remembered;

pub use config::{
    DEFAULT_TIMEOUT_SECS, EmbedderSpec, configured_embedders, embedder_from_spec, load_config,
    parse_config,
};
pub use hash::HashEmbedder;
pub use http::HttpSettings;

/// Error type embedders return.
pub type EmbedError = Box<dyn std::error::Error + Send + Sync>;

/// Something that turns texts into vectors.
pub trait Embedder: Send + Sync {
    /// Embed a batch of texts; returns `texts.len() * dimension` floats, row-major.
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError>;

    /// Preferred rows per call.
    fn batch_size(&self) -> usize {
        256
    }

    /// What it has asked of its model so far (requests, retries, restarts, tokens),
    /// for embedders that call a server or a process; `None` for the others.
    fn calls(&self) -> Option<EmbedderCalls> {
        None
    }
}

impl<F> Embedder for F
where
    F: Fn(&[&str]) -> Result<Vec<f32>, EmbedError> + Send + Sync,
{
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        self(texts)
    }
}

/// An embedder failure inside a batch: `offset` is the index (in the texts of the call)
/// of the first text of the request that failed, so the error can name its record.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct EmbedFailure {
    /// Index of the failing request's first text in the call.
    pub offset: usize,
    /// What went wrong.
    pub message: String,
}

impl EmbedFailure {
    /// A failure at `offset`.
    pub fn at(offset: usize, message: impl Into<String>) -> EmbedError {
        Box::new(EmbedFailure {
            offset,
            message: message.into(),
        })
    }
}

/// Counters an embedder keeps of its calls (shared by its request tasks).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    restarts: AtomicU64,
    texts: AtomicU64,
    tokens: AtomicU64,
    tokens_seen: std::sync::atomic::AtomicBool,
}

impl Counters {
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn answered(&self, texts: usize, tokens: Option<u64>) {
        self.texts.fetch_add(texts as u64, Ordering::Relaxed);
        if let Some(t) = tokens {
            self.tokens.fetch_add(t, Ordering::Relaxed);
            self.tokens_seen.store(true, Ordering::Relaxed);
        }
    }
    pub(crate) fn snapshot(&self) -> EmbedderCalls {
        EmbedderCalls {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            texts: self.texts.load(Ordering::Relaxed),
            tokens: self
                .tokens_seen
                .load(Ordering::Relaxed)
                .then(|| self.tokens.load(Ordering::Relaxed)),
        }
    }
}

/// Parse the vectors a model answered: a JSON array of arrays of numbers, or an object
/// with `embeddings` (that array) or `error` (a message). `n` texts were sent.
pub(crate) fn parse_vectors(value: serde_json::Value, n: usize) -> Result<Vec<f32>, String> {
    let arr = match value {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(mut o) => {
            if let Some(e) = o.get("error") {
                return Err(format!(
                    "the model answered with an error: {}",
                    e.as_str().map_or_else(|| e.to_string(), str::to_owned)
                ));
            }
            match o.remove("embeddings") {
                Some(serde_json::Value::Array(a)) => a,
                _ => {
                    return Err(
                        "the answer is an object without an `embeddings` array; answer [[floats], ...] or {\"embeddings\": [[floats], ...]}".into(),
                    );
                }
            }
        }
        other => {
            return Err(format!(
                "the answer is {}, not an array of vectors; answer [[floats], ...], one vector per text in order",
                kind_of(&other)
            ));
        }
    };
    if arr.len() != n {
        return Err(format!(
            "answered {} vectors for {n} texts; answer one vector per text, in order",
            arr.len()
        ));
    }
    let mut out = Vec::new();
    let mut dim = None;
    for (i, v) in arr.into_iter().enumerate() {
        let serde_json::Value::Array(xs) = v else {
            return Err(format!(
                "vector {i} is {}, not an array of numbers",
                kind_of(&v)
            ));
        };
        if *dim.get_or_insert(xs.len()) != xs.len() {
            return Err(format!(
                "vector {i} has dimension {} but vector 0 has {}",
                xs.len(),
                dim.unwrap_or(0)
            ));
        }
        for x in xs {
            #[allow(clippy::cast_possible_truncation)]
            match x.as_f64() {
                Some(f) => out.push(f as f32),
                None => return Err(format!("vector {i} holds {}, not a number", kind_of(&x))),
            }
        }
    }
    Ok(out)
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_or_name_the_problem() {
        let ok = parse_vectors(serde_json::json!([[1.0, 2.0], [3.0, 4.0]]), 2).unwrap();
        assert_eq!(ok, vec![1.0, 2.0, 3.0, 4.0]);
        let obj = parse_vectors(serde_json::json!({"embeddings": [[1.0]]}), 1).unwrap();
        assert_eq!(obj, vec![1.0]);
        let e = parse_vectors(serde_json::json!({"error": "CUDA OOM"}), 1).unwrap_err();
        assert!(e.contains("CUDA OOM"), "{e}");
        let e = parse_vectors(serde_json::json!([[1.0]]), 2).unwrap_err();
        assert!(e.contains("1 vectors for 2 texts"), "{e}");
        let e = parse_vectors(serde_json::json!([[1.0], [1.0, 2.0]]), 2).unwrap_err();
        assert!(e.contains("vector 1 has dimension 2"), "{e}");
        let e = parse_vectors(serde_json::json!([null]), 1).unwrap_err();
        assert!(e.contains("vector 0 is null"), "{e}");
        let e = parse_vectors(serde_json::json!([["x"]]), 1).unwrap_err();
        assert!(e.contains("a string"), "{e}");
    }
}
