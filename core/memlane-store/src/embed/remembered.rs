//! Remembered embedders: the reference a space keeps ([`memlane_core::Space::embedder`])
//! and how a session finds the embedder it names, so that `add` and `search` take text
//! without being told the model again.
//!
//! A reference is a **name** (looked up in the session's named embedders: a
//! `memlane.toml` / `--embedders FILE` entry, a Python function given to
//! `memlane.register_embedder`, a Rust service's `Store::register_embedders`;
//! then the built-in hashing names such as `hash384v2`) or a **one-line spec that runs
//! nothing on the reader's machine** (`hash:DIM[:SEED]`, `http:URL,model=NAME,...`).
//! `cmd:` and `proc:` specs are refused: whoever opened the store would run the
//! command. Keys are never stored (an HTTP spec names its key's variable).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Embedder, EmbedderSpec, HashEmbedder};
use crate::error::{Result, StoreError};

/// Longest reference kept.
const MAX_LEN: usize = 512;

/// Named embedders a session can call, by name (what a space's reference is looked up
/// in before specs and built-in names).
#[derive(Clone, Default)]
pub struct Registry(HashMap<String, Arc<dyn Embedder>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Registry {
    /// The embedder registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Embedder>> {
        self.0.get(name)
    }

    /// Register (or replace) `name`.
    pub fn insert(&mut self, name: impl Into<String>, e: Arc<dyn Embedder>) {
        self.0.insert(name.into(), e);
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Extend<(String, Arc<dyn Embedder>)> for Registry {
    fn extend<T: IntoIterator<Item = (String, Arc<dyn Embedder>)>>(&mut self, iter: T) {
        self.0.extend(iter);
    }
}

impl IntoIterator for Registry {
    type Item = (String, Arc<dyn Embedder>);
    type IntoIter = std::collections::hash_map::IntoIter<String, Arc<dyn Embedder>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<(String, Arc<dyn Embedder>)> for Registry {
    fn from_iter<T: IntoIterator<Item = (String, Arc<dyn Embedder>)>>(iter: T) -> Self {
        Registry(iter.into_iter().collect())
    }
}

/// One remembered reference a write looked up.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The space.
    pub space: String,
    /// What it remembers.
    pub reference: String,
    /// `None` when this session resolved it; else why not (empty: the name is unknown
    /// here; else the reason a spec could not be made, e.g. an unset key variable).
    pub unresolved: Option<String>,
}

/// The remembered references a write looked up.
pub type Lookups = Vec<Lookup>;

/// Embedders by space name.
pub type BySpace = HashMap<String, Arc<dyn Embedder>>;

/// The embedders a write uses, by space: the ones given for a space win; every other
/// space that remembers an embedder gets it when this session can resolve it. Also
/// returns the references looked up, for [`explain`].
pub fn for_spaces(
    spaces: &[memlane_core::Space],
    given: &BySpace,
    registry: &Registry,
) -> Result<(BySpace, Lookups)> {
    let mut out = given.clone();
    let mut looked = Vec::new();
    for sp in spaces {
        let Some(r) = sp
            .embedder
            .as_deref()
            .filter(|_| !given.contains_key(&sp.name))
        else {
            continue;
        };
        // a reference that cannot be made here (an HTTP spec whose key variable is
        // unset) stops only the writes that need its vectors, never the others
        let unresolved = match resolve(r, registry, None) {
            Ok(Some(e)) => {
                out.insert(sp.name.clone(), e);
                None
            }
            Ok(None) => Some(String::new()),
            Err(e) => Some(e.to_string()),
        };
        looked.push(Lookup {
            space: sp.name.clone(),
            reference: r.to_owned(),
            unresolved,
        });
    }
    Ok((out, looked))
}

/// A write's error told in terms of the remembered embedder: a missing vector for a
/// space whose embedder this session could not resolve, or a remembered model that
/// drifted (named by its reference, not the space).
pub fn explain(e: StoreError, looked: &Lookups) -> StoreError {
    let find = |space: &str| looked.iter().find(|l| l.space == space);
    match e {
        StoreError::Core(memlane_core::CoreError::Vector(memlane_core::VectorError::Missing {
            id,
            space,
        })) if find(&space).is_some_and(|l| l.unresolved.is_some()) => {
            let l = find(&space).cloned();
            let l = l.unwrap_or(Lookup {
                space: space.clone(),
                reference: String::new(),
                unresolved: None,
            });
            StoreError::UnresolvedEmbedder {
                space,
                reference: l.reference,
                record: Some(id),
                why: l.unresolved.unwrap_or_default(),
            }
        }
        StoreError::ModelDrift {
            space,
            embedder,
            identity,
            cosine,
            canary,
        } => StoreError::ModelDrift {
            embedder: find(&space)
                .filter(|l| l.unresolved.is_none())
                .map_or(embedder, |l| l.reference.clone()),
            space,
            identity,
            cosine,
            canary,
        },
        e => e,
    }
}

/// Check that `reference` may be kept in a store: a name without spaces or control
/// characters, or a `hash:` / `http:` spec that parses.
pub fn check_reference(reference: &str) -> Result<()> {
    let bad = |why: String| StoreError::Input(format!("embedder reference `{reference}`: {why}"));
    if reference.is_empty() || reference.len() > MAX_LEN {
        return Err(bad(format!(
            "give a name or a spec of 1 to {MAX_LEN} characters"
        )));
    }
    if reference.starts_with("cmd:") || reference.starts_with("proc:") {
        return Err(bad(
            "a command is not kept in the store (whoever opens it would run it); declare it as `[embedders.NAME]` in a memlane.toml (or register a function under NAME in Python) and remember NAME".into(),
        ));
    }
    if reference.contains(':') {
        return EmbedderSpec::parse(reference).map(|_| ()).map_err(bad);
    }
    if reference
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(
            "a name has no spaces or control characters (e.g. `minilm`, `bge-small-v1.5`)".into(),
        ));
    }
    Ok(())
}

/// The embedder `reference` names: the registry's entry of that name, else the spec it
/// is, else a built-in hashing name; `None` when this session has none of these.
pub fn resolve(
    reference: &str,
    registry: &Registry,
    default_timeout: Option<Duration>,
) -> Result<Option<Arc<dyn Embedder>>> {
    if let Some(e) = registry.get(reference) {
        return Ok(Some(e.clone()));
    }
    if reference.contains(':') {
        check_reference(reference)?;
        return super::embedder_from_spec(reference, default_timeout).map(Some);
    }
    Ok(HashEmbedder::from_name(reference).map(HashEmbedder::arc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_safe_specs_are_kept_commands_are_not() {
        for ok in ["minilm", "BAAI/bge-small-en-v1.5", "hash384v2", "hash:8:2"] {
            check_reference(ok).unwrap();
        }
        check_reference("http:http://127.0.0.1:1/v1,model=m,key_env=K").unwrap();
        for bad in [
            "",
            "two words",
            "cmd:python e.py",
            "proc:serve",
            "hash:0",
            "x:y",
        ] {
            assert!(check_reference(bad).is_err(), "{bad}");
        }
        let e = check_reference("proc:python serve.py")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[embedders.NAME]"), "{e}");
    }

    #[test]
    fn resolution_order_is_registry_then_spec_then_builtin() {
        let mut reg = Registry::default();
        reg.insert("hash384v2", HashEmbedder::new(3, 9).arc());
        let e = resolve("hash384v2", &reg, None).unwrap().unwrap();
        assert_eq!(e.embed(&["a"]).unwrap().len(), 3);
        let e = resolve("hash384v2", &Registry::default(), None)
            .unwrap()
            .unwrap();
        assert_eq!(e.embed(&["a"]).unwrap().len(), 384);
        let e = resolve("hash:5", &Registry::default(), None)
            .unwrap()
            .unwrap();
        assert_eq!(e.embed(&["a"]).unwrap().len(), 5);
        assert!(
            resolve("minilm", &Registry::default(), None)
                .unwrap()
                .is_none()
        );
        assert!(resolve("cmd:true", &Registry::default(), None).is_err());
    }
}
