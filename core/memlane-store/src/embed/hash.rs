//! The built-in hashing embedder.

use std::sync::Arc;

use super::{EmbedError, Embedder};

/// A deterministic, model-free embedder: signed feature hashing of words and
/// character trigrams, L2-normalised. Texts that share words get close vectors, so
/// it is a real (if simple) retrieval model, useful for demos, tests and benchmarks.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dimension: usize,
    seed: u64,
}

impl HashEmbedder {
    /// A hashing embedder of `dimension` with a seed (different seeds = different "models").
    pub fn new(dimension: usize, seed: u64) -> Self {
        HashEmbedder { dimension, seed }
    }

    /// Parse `hash:DIM` or `hash:DIM:SEED`.
    pub fn parse(spec: &str) -> Option<Self> {
        let mut parts = spec.strip_prefix("hash:")?.split(':');
        let dim = parts.next()?.parse().ok().filter(|d| *d > 0)?;
        let seed = match parts.next() {
            Some(s) => s.parse().ok()?,
            None => 0,
        };
        Some(HashEmbedder::new(dim, seed))
    }

    /// Names like `hash384` or `hash384v2` (dimension 384, seed 0 or 2): how migration
    /// files name the built-in embedder without the host supplying one.
    pub fn from_name(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("hash")?;
        let (dim, seed) = match rest.split_once('v') {
            Some((d, s)) => (d.parse().ok()?, s.parse().ok()?),
            None => (rest.parse().ok()?, 0),
        };
        (dim > 0).then(|| HashEmbedder::new(dim, seed))
    }

    /// Vector dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Shared handle.
    pub fn arc(self) -> Arc<dyn Embedder> {
        Arc::new(self)
    }

    fn add(&self, v: &mut [f32], token: &str, weight: f32) {
        let h = blake3::keyed_hash(&seed_key(self.seed), token.as_bytes());
        let b = h.as_bytes();
        let idx = u64::from_le_bytes(b[0..8].try_into().unwrap_or_default());
        #[allow(clippy::cast_possible_truncation)]
        let i = (idx % self.dimension as u64) as usize;
        let sign = if b[8] & 1 == 0 { 1.0 } else { -1.0 };
        v[i] += sign * weight;
    }
}

fn seed_key(seed: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&seed.to_le_bytes());
    k[8..16].copy_from_slice(b"memlane!");
    k
}

impl Embedder for HashEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let mut out = vec![0.0f32; texts.len() * self.dimension];
        for (text, v) in texts.iter().zip(out.chunks_exact_mut(self.dimension)) {
            let lower = text.to_lowercase();
            for word in lower
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                self.add(v, word, 1.0);
                let chars: Vec<char> = word.chars().collect();
                for tri in chars.windows(3) {
                    let t: String = tri.iter().collect();
                    self.add(v, &format!("#{t}"), 0.3);
                }
            }
            if v.iter().all(|x| *x == 0.0) {
                // empty text: a fixed, non-zero direction so cosine spaces accept it
                self.add(v, "<empty>", 1.0);
            }
            memlane_core::space::normalize_in_place(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_embedder_is_deterministic_and_semantic() {
        let e = HashEmbedder::new(64, 1);
        let v = e
            .embed(&["the cat sat", "the cat sat", "quantum chromodynamics"])
            .unwrap();
        assert_eq!(&v[..64], &v[64..128]);
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        assert!((dot(&v[..64], &v[..64]) - 1.0).abs() < 1e-5);
        assert!(dot(&v[..64], &v[128..]) < 0.9);
        assert!(HashEmbedder::parse("hash:384:2").is_some());
        assert!(HashEmbedder::parse("hash:0").is_none());
        assert_eq!(
            HashEmbedder::from_name("hash384v2").map(|h| (h.dimension, h.seed)),
            Some((384, 2))
        );
        assert!(HashEmbedder::from_name("minilm").is_none());
    }
}
