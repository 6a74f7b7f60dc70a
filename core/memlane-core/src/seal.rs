//! The seal: what authenticates memlane's record of a store, commit by commit.
//!
//! Every memlane commit carries, beside its [`StoreState`](crate::StoreState) (when it
//! changes the state) and its [`HistoryEntry`](crate::HistoryEntry), a [`Seal`] under
//! [`SEAL_KEY`]: the blake3 of the exact state and entry texts it carries, the digests of
//! the data files the commit added, and a link to the seal of the memlane commit it was
//! built on (the newest one at its read version). The seal's own hash covers all of
//! that, so:
//!
//! - a state or entry edited by hand no longer matches its seal (`"applied"` →
//!   `"applieX"` changes the text's hash even though the JSON still parses);
//! - an edited seal no longer matches its own hash, nor the link of the next commit;
//! - a data file memlane wrote has a digest recorded at write time, bound into the chain
//!   (a lost side file cannot make a changed file look unrecorded).
//!
//! This is an integrity check against accidents and hand edits, not a signature: whoever
//! can rewrite every commit after an edit can recompute the hashes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Transaction property holding the [`Seal`] JSON.
pub const SEAL_KEY: &str = "memlane.seal";
/// Current seal format.
pub const SEAL_FORMAT: u32 = 1;

/// The digest of one data file, taken from the bytes written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// blake3 of the file (hex).
    pub blake3: String,
    /// File length in bytes.
    pub bytes: u64,
    /// Fragment the file belongs to when it was written.
    pub fragment: u64,
}

/// A link to an earlier sealed commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Lance version of the earlier commit.
    pub version: u64,
    /// Its seal's hash.
    pub hash: String,
}

/// The seal of one memlane commit (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// Seal format.
    pub format: u32,
    /// The sealed commit this one was built on (none for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<Link>,
    /// blake3 of the state text the commit carries (none: the commit carries no state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// blake3 of the entry text the commit carries.
    pub entry: String,
    /// Data files the commit added (path under `data/` → digest).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileDigest>,
    /// blake3 over all of the above.
    pub hash: String,
}

/// Why a commit's record does not match its seal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The seal text is not a seal.
    #[error("its seal cannot be read ({0})")]
    Unreadable(String),
    /// The seal's fields do not give its hash.
    #[error("its seal was edited: the fields hash to {computed}, the seal says {recorded}")]
    Edited {
        /// Hash recorded in the seal.
        recorded: String,
        /// Hash of the seal's fields.
        computed: String,
    },
    /// The state or entry text does not match the seal.
    #[error("its {what} was edited: the text hashes to {computed}, the seal recorded {recorded}")]
    Text {
        /// `state` or `entry`.
        what: &'static str,
        /// Hash recorded in the seal.
        recorded: String,
        /// Hash of the text carried.
        computed: String,
    },
    /// A state is carried without being sealed, or sealed without being carried.
    #[error("its {what} is {problem}")]
    Missing {
        /// `state` or `entry`.
        what: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
}

/// blake3 (hex) of a text.
pub fn text_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

impl Seal {
    /// Seal a commit carrying `state` (when it changes the state) and `entry`, adding
    /// `files`, built on the sealed commit `prev`.
    pub fn new(
        prev: Option<Link>,
        state: Option<&str>,
        entry: &str,
        files: BTreeMap<String, FileDigest>,
    ) -> Seal {
        let mut s = Seal {
            format: SEAL_FORMAT,
            prev,
            state: state.map(text_hash),
            entry: text_hash(entry),
            files,
            hash: String::new(),
        };
        s.hash = s.compute();
        s
    }

    /// The hash of the seal's fields.
    pub fn compute(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(b"memlane-seal\0");
        h.update(&self.format.to_le_bytes());
        match &self.prev {
            Some(l) => {
                h.update(&l.version.to_le_bytes());
                h.update(l.hash.as_bytes());
            }
            None => {
                h.update(b"\0none");
            }
        }
        h.update(b"\0state:");
        h.update(self.state.as_deref().unwrap_or("-").as_bytes());
        h.update(b"\0entry:");
        h.update(self.entry.as_bytes());
        for (path, d) in &self.files {
            h.update(b"\0file:");
            h.update(path.as_bytes());
            h.update(b"\0");
            h.update(d.blake3.as_bytes());
            h.update(&d.bytes.to_le_bytes());
            h.update(&d.fragment.to_le_bytes());
        }
        h.finalize().to_hex().to_string()
    }

    /// The seal as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read a seal and check it against the texts the commit carries.
    pub fn check(seal: &str, state: Option<&str>, entry: Option<&str>) -> Result<Seal, SealError> {
        let s: Seal =
            serde_json::from_str(seal).map_err(|e| SealError::Unreadable(e.to_string()))?;
        let computed = s.compute();
        if computed != s.hash {
            return Err(SealError::Edited {
                recorded: s.hash,
                computed,
            });
        }
        check_text("state", s.state.as_deref(), state)?;
        check_text("entry", Some(s.entry.as_str()), entry)?;
        Ok(s)
    }

    /// The link a later commit records to this one.
    pub fn link(&self, version: u64) -> Link {
        Link {
            version,
            hash: self.hash.clone(),
        }
    }
}

fn check_text(
    what: &'static str,
    recorded: Option<&str>,
    text: Option<&str>,
) -> Result<(), SealError> {
    match (recorded, text) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(SealError::Missing {
            what,
            problem: "sealed but missing from the commit",
        }),
        (None, Some(_)) => Err(SealError::Missing {
            what,
            problem: "carried but not sealed",
        }),
        (Some(r), Some(t)) => {
            let computed = text_hash(t);
            if computed == r {
                Ok(())
            } else {
                Err(SealError::Text {
                    what,
                    recorded: r.to_owned(),
                    computed,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> BTreeMap<String, FileDigest> {
        BTreeMap::from([(
            "a.lance".to_owned(),
            FileDigest {
                blake3: "00".repeat(32),
                bytes: 10,
                fragment: 0,
            },
        )])
    }

    #[test]
    fn a_seal_checks_its_texts() {
        let s = Seal::new(None, Some(r#"{"applied":[]}"#), "{}", files());
        let json = s.to_json();
        assert_eq!(
            Seal::check(&json, Some(r#"{"applied":[]}"#), Some("{}")).unwrap(),
            s
        );
        // one byte of the state: the JSON still parses, the hash does not match
        let e = Seal::check(&json, Some(r#"{"applieX":[]}"#), Some("{}")).unwrap_err();
        assert!(matches!(e, SealError::Text { what: "state", .. }), "{e}");
        assert!(e.to_string().contains(&s.state.clone().unwrap()), "{e}");
        let e = Seal::check(&json, None, Some("{}")).unwrap_err();
        assert!(matches!(e, SealError::Missing { .. }), "{e}");
    }

    #[test]
    fn an_edited_seal_is_caught() {
        let s = Seal::new(
            Some(Link {
                version: 3,
                hash: "ab".into(),
            }),
            None,
            "{}",
            files(),
        );
        let mut t = s.clone();
        t.files.get_mut("a.lance").unwrap().bytes = 11;
        let e = Seal::check(&t.to_json(), None, Some("{}")).unwrap_err();
        assert!(matches!(e, SealError::Edited { .. }), "{e}");
        assert!(matches!(
            Seal::check("{not json", None, Some("{}")),
            Err(SealError::Unreadable(_))
        ));
        let mut u = s;
        u.prev = None;
        assert_ne!(u.compute(), u.hash);
    }
}
