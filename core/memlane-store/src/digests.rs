//! Integrity of the data files (issues 6 and 14): every memlane commit's seal records the
//! blake3 of each data file it added, taken from the bytes just written, so the record
//! of what the data should be travels in the authenticated chain. `verify` re-reads the
//! current version's files (through the object store) and compares; a file memlane wrote
//! without a recorded digest is a failure, a file another writer added is noted as
//! such, with its version.

use std::collections::HashMap;

use memlane_core::FileDigest;

use crate::engine::files;
use crate::engine::record::Recorded;
use crate::error::Result;
use crate::store::Store;

/// Who added a data file, as the records say.
enum Origin {
    /// A memlane commit; the digest it sealed.
    Memlane(FileDigest),
    /// A commit by another writer (no seal).
    Other(u64),
}

/// Where each data file referenced by any commit came from.
fn origins(records: &[Recorded]) -> HashMap<String, Origin> {
    let mut out = HashMap::new();
    for r in records {
        if let Some(seal) = &r.seal {
            for (p, d) in &seal.files {
                out.insert(p.clone(), Origin::Memlane(d.clone()));
            }
        } else if let Some(op) = &r.operation
            && !r.by_memlane()
        {
            for (_, p) in files::op_files(op) {
                out.entry(p).or_insert(Origin::Other(r.version));
            }
        }
    }
    out
}

impl Store {
    /// Re-read the current version's data files and compare them with the digests the
    /// chain recorded: `Ok(summary)` or `Err(what changed, by fragment, file and rows)`.
    pub(crate) async fn check_digests(
        &self,
        records: &[Recorded],
    ) -> Result<std::result::Result<String, String>> {
        let origin = origins(records);
        let store = self.dataset().object_store(None).await?;
        let data = self.dataset().data_dir();
        let (mut ok, mut other, mut legacy, mut bad) = (0usize, Vec::new(), 0usize, Vec::new());
        let inherited_files = files::inherited_files(self.dataset());
        let mut inherited = 0usize;
        for (frag, file, rows) in files::version_files(self.dataset()) {
            if inherited_files.contains(&file) {
                // a branch reads these from the store it was branched from
                inherited += 1;
                continue;
            }
            let at = format!("fragment {frag} (rows 0..{rows}): data file data/{file}");
            let want = match origin.get(&file) {
                Some(Origin::Memlane(d)) => d,
                Some(Origin::Other(v)) => {
                    other.push(*v);
                    continue;
                }
                None if records.iter().any(|r| r.seal.is_some()) => {
                    bad.push(format!(
                        "{at} is not recorded by any commit (added outside memlane and Lance's history, or its record was removed)"
                    ));
                    continue;
                }
                None => {
                    legacy += 1;
                    continue;
                }
            };
            match files::hash_object(&store, &data.clone().join(file.as_str())).await {
                Ok((h, n)) if h == want.blake3 && n == want.bytes => ok += 1,
                Ok((h, n)) => bad.push(format!(
                    "{at} changed outside memlane: {n} bytes with blake3 {h}, recorded {} bytes with blake3 {}",
                    want.bytes, want.blake3
                )),
                Err(e) => bad.push(format!("{at} cannot be read: {e}")),
            }
        }
        other.sort_unstable();
        other.dedup();
        let mut notes = String::new();
        if !other.is_empty() {
            notes.push_str(&format!(
                "; files added by another writer at version(s) {} are not checked",
                other
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if inherited > 0 {
            notes.push_str(&format!(
                "; {inherited} read from the store this branch was branched from are checked by `memlane verify` there"
            ));
        }
        if legacy > 0 {
            notes.push_str(&format!(
                "; {legacy} written before memlane sealed digests are not checked"
            ));
        }
        Ok(if bad.is_empty() {
            Ok(format!(
                "{ok} data files match their recorded digests{notes}"
            ))
        } else {
            Err(format!(
                "{}; restore a good version with `memlane restore --to VERSION` or from a backup",
                bad.join("; ")
            ))
        })
    }
}
