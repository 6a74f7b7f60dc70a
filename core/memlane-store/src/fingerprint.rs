//! Model fingerprints: the canary texts a space's model embedded when the space was
//! created, compared with what an embedder makes of them now, so a swapped or drifted
//! model is refused before it writes a vector.

use std::sync::{Arc, Mutex};

use memlane_core::Space;
use memlane_core::compat;
use memlane_core::space::Fingerprint;

use crate::embed::Embedder;
use crate::error::{Result, StoreError};
use crate::vectors::embed_checked;

/// Canary texts embedded to fingerprint a model: short, varied, and unrelated to any
/// particular corpus.
pub const CANARIES: [&str; 8] = [
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password if I no longer have access to my email?",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "The meeting was moved to Thursday at 3 pm because the client was travelling.",
    "Le chat dort sur le canapé pendant que la pluie tombe.",
    "Interest rates rose by a quarter point, the third increase this year.",
    "Remember that the user prefers vegetarian recipes and dislikes cilantro.",
];

/// Embedders whose fingerprint was already checked (kept alive, compared by pointer).
#[derive(Default, Clone)]
pub(crate) struct Checked(Arc<Mutex<Vec<CheckedEmbedder>>>);

/// A space and an embedder that reproduced its fingerprint.
type CheckedEmbedder = (String, Arc<dyn Embedder>);

impl Checked {
    fn contains(&self, space: &str, e: &Arc<dyn Embedder>) -> bool {
        self.0
            .lock()
            .map(|v| v.iter().any(|(s, x)| s == space && Arc::ptr_eq(x, e)))
            .unwrap_or(false)
    }
    pub(crate) fn insert(&self, space: &str, e: &Arc<dyn Embedder>) {
        if let Ok(mut v) = self.0.lock() {
            if v.len() >= 64 {
                v.clear();
            }
            v.push((space.to_owned(), e.clone()));
        }
    }
}

/// Embed the canaries of `space` (its own texts, or [`CANARIES`]) with `e`.
fn embed_canaries(
    space: &Space,
    name: &str,
    e: &dyn Embedder,
    texts: &[String],
) -> Result<Vec<f32>> {
    let prefixed: Vec<String> = texts
        .iter()
        .map(|t| format!("{}{t}", space.passage_prefix))
        .collect();
    let refs: Vec<&str> = prefixed.iter().map(String::as_str).collect();
    let ids: Vec<String> = (0..texts.len()).map(|i| format!("canary-{i}")).collect();
    embed_checked(name, e, &refs, space, &ids, 0)
}

/// A fingerprint of the model behind `e` for `space`.
pub(crate) fn record_fingerprint(
    space: &Space,
    name: &str,
    e: &dyn Embedder,
) -> Result<Fingerprint> {
    let texts: Vec<String> = CANARIES.iter().map(|s| (*s).to_owned()).collect();
    let flat = embed_canaries(space, name, e, &texts)?;
    Ok(Fingerprint {
        vectors: flat
            .chunks_exact(space.dimension)
            .map(<[f32]>::to_vec)
            .collect(),
        texts,
    })
}

/// Refuse an embedder that does not reproduce the space's recorded fingerprint.
/// Spaces without a fingerprint pass (there is nothing to compare with).
pub(crate) fn check_fingerprint(
    space: &Space,
    name: &str,
    e: &Arc<dyn Embedder>,
    checked: &Checked,
) -> Result<()> {
    let Some(fp) = space.fingerprint.as_ref().filter(|f| !f.vectors.is_empty()) else {
        return Ok(());
    };
    if checked.contains(&space.name, e) {
        return Ok(());
    }
    let got = embed_canaries(space, name, e.as_ref(), &fp.texts)?;
    match compat::check_fingerprint(
        &fp.vectors,
        &got,
        space.dimension,
        compat::DEFAULT_TOLERANCE,
    ) {
        Ok(_) => {
            checked.insert(&space.name, e);
            Ok(())
        }
        Err(memlane_core::CompatError::Drift { index, cosine, .. }) => {
            Err(StoreError::ModelDrift {
                space: space.name.clone(),
                embedder: name.to_owned(),
                identity: space.identity(),
                cosine,
                canary: fp.texts.get(index).cloned().unwrap_or_default(),
            })
        }
        Err(e) => Err(StoreError::Core(e.into())),
    }
}
