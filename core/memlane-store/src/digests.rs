//! Integrity digests of the data files (issue 6): Lance data files are immutable, so
//! memlane keeps the blake3 of every data file it has seen committed
//! (`_memlane/digests.json`, cumulative, derived) and `verify` re-reads the files of the
//! current version and compares: a flipped byte or a replaced file outside memlane is
//! named by fragment, file and rows. Local stores only (object stores: skipped, noted).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::store::Store;

/// The recorded digest of one data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileDigest {
    blake3: String,
    bytes: u64,
    fragment: u64,
}

fn local_root(uri: &str) -> Option<PathBuf> {
    let p = uri.strip_prefix("file://").unwrap_or(uri);
    (!p.contains("://")).then(|| PathBuf::from(p))
}

fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h.finalize().to_hex().to_string(), n))
}

/// A file's blake3 (hex) and length, or why it could not be read.
type Hashed = std::io::Result<(String, u64)>;

/// [`hash_file`] of each of `files` (under `dir`), in order, on as many threads as
/// there are cores: an add of a million vectors writes a dozen files at once.
fn hash_files(dir: &Path, files: &[(u64, String)]) -> Vec<Hashed> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let per = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = files
            .chunks(per)
            .map(|part| {
                let hashed = s.spawn(move || {
                    part.iter()
                        .map(|(_, f)| hash_file(&dir.join(f)))
                        .collect::<Vec<_>>()
                });
                (part.len(), hashed)
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|(n, h)| {
                h.join().unwrap_or_else(|_| {
                    (0..n)
                        .map(|_| Err(std::io::Error::other("the hashing thread panicked")))
                        .collect()
                })
            })
            .collect()
    })
}

impl Store {
    fn digests_path(&self) -> Option<PathBuf> {
        local_root(self.uri()).map(|r| r.join("_memlane").join("digests.json"))
    }

    fn load_digests(&self) -> BTreeMap<String, FileDigest> {
        self.digests_path()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// The data files of the current version: (fragment id, path relative to `data/`).
    fn data_files(&self) -> Vec<(u64, String, u64)> {
        self.dataset()
            .get_fragments()
            .iter()
            .flat_map(|f| {
                let m = f.metadata();
                let rows = m.physical_rows.unwrap_or(0) as u64;
                m.files
                    .iter()
                    .map(move |d| (m.id, d.path.clone(), rows))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Record the digests of the current version's data files that are not recorded yet
    /// (memlane calls this after its commits; files are immutable, so once is enough).
    pub fn record_digests(&self) -> Result<usize> {
        let (Some(root), Some(path)) = (local_root(self.uri()), self.digests_path()) else {
            return Ok(0);
        };
        let mut map = self.load_digests();
        let todo: Vec<(u64, String)> = self
            .data_files()
            .into_iter()
            .filter(|(_, file, _)| !map.contains_key(file))
            .map(|(frag, file, _)| (frag, file))
            .collect();
        let data = root.join("data");
        let hashed = hash_files(&data, &todo);
        let mut added = 0;
        for ((frag, file), h) in todo.into_iter().zip(hashed) {
            let (blake3, bytes) = h.map_err(|e| StoreError::Io {
                path: data.join(&file).display().to_string(),
                source: e,
            })?;
            map.insert(
                file,
                FileDigest {
                    blake3,
                    bytes,
                    fragment: frag,
                },
            );
            added += 1;
        }
        if added > 0 {
            let io = |e: std::io::Error| StoreError::Io {
                path: path.display().to_string(),
                source: e,
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let tmp = path.with_extension("json.tmp");
            let text = serde_json::to_string(&map).map_err(|e| StoreError::Input(e.to_string()))?;
            std::fs::write(&tmp, text).map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
        }
        Ok(added)
    }

    /// Re-read the current version's data files and compare them with the recorded
    /// digests: `Ok(summary)` or `Err(what changed, by fragment, file and rows)`.
    pub(crate) fn check_digests(&self) -> std::result::Result<String, String> {
        let Some(root) = local_root(self.uri()) else {
            return Ok(
                "object-store URI: data file digests are checked on local stores only".into(),
            );
        };
        let map = self.load_digests();
        let (mut ok, mut unrecorded, mut bad) = (0usize, 0usize, Vec::new());
        let mut todo = Vec::new();
        for (frag, file, rows) in self.data_files() {
            match map.get(&file) {
                Some(want) => todo.push((frag, file, rows, want)),
                None => unrecorded += 1,
            }
        }
        let names: Vec<(u64, String)> = todo.iter().map(|(f, p, _, _)| (*f, p.clone())).collect();
        let hashed = hash_files(&root.join("data"), &names);
        for ((frag, file, rows, want), h) in todo.into_iter().zip(hashed) {
            match h {
                Ok((h, n)) if h == want.blake3 && n == want.bytes => ok += 1,
                Ok((_, n)) => bad.push(format!(
                    "fragment {frag} (rows 0..{rows}): data file data/{file} changed outside memlane ({n} bytes, {} recorded; digest differs)",
                    want.bytes
                )),
                Err(e) => bad.push(format!(
                    "fragment {frag} (rows 0..{rows}): data file data/{file} cannot be read: {e}"
                )),
            }
        }
        if bad.is_empty() {
            Ok(format!(
                "{ok} data files match their recorded digests{}",
                if unrecorded > 0 {
                    format!(
                        "; {unrecorded} not recorded yet (written by another writer; recorded at the next memlane commit)"
                    )
                } else {
                    String::new()
                }
            ))
        } else {
            Err(format!(
                "{}; restore a good version with `memlane restore --to VERSION` or from a backup",
                bad.join("; ")
            ))
        }
    }
}
