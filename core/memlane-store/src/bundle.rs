//! Bundles: one file holding a store (its data at every version, its history and state
//! in the Lance manifests and transactions, its tags, its indexes, its adapters) and a
//! manifest of blake3 digests, to move a store between machines and object stores or
//! keep a backup someone can verify. Unbundling refuses a file whose header, manifest or
//! any part does not match its digest, or that is cut short, and names what is wrong;
//! nothing is written to the destination before the whole bundle has been checked.
//!
//! Layout (format 1):
//!
//! ```text
//! MEMLANE-BUNDLE 1\n
//! u32 LE length | header JSON (plaintext: format, created_at, encrypted, nonce, body_blake3)
//! body: u64 LE length | manifest JSON (files: path, bytes, blake3) | file bytes, in manifest order
//! ```
//!
//! With a key, the body is encrypted with ChaCha20-Poly1305 in the STREAM construction
//! (64 KiB segments, each authenticated, the last one marked), so a flipped or cut byte
//! fails authentication; the key is 32 random bytes given as 64 hex characters in a file
//! or in `MEMLANE_BUNDLE_KEY` (make one with `memlane bundle-key`). Without a key the
//! body's blake3 in the header and every file's in the manifest catch corruption.
//!
//! Transient side files (the migration lock, a backfill's unsaved vectors, staged
//! fragment results) are left out.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit, OsRng, rand_core::RngCore};
use futures::TryStreamExt;
use lance::io::{ObjectStore, ObjectStoreRegistry};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::sidecar::StorageOptions;

const MAGIC: &[u8] = b"MEMLANE-BUNDLE 1\n";
const SEGMENT: usize = 64 * 1024;
const TAG: usize = 16;

/// The plaintext header.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    format: u32,
    created_at: String,
    tool_version: String,
    encrypted: bool,
    /// STREAM nonce prefix (hex), when encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    /// blake3 of the (plaintext) body.
    body_blake3: String,
}

/// One file of the bundled store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundledFile {
    /// Path under the store's root.
    pub path: String,
    /// Length.
    pub bytes: u64,
    /// blake3 (hex).
    pub blake3: String,
}

/// What a bundle holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// The store it was made from.
    pub store: String,
    /// Its latest version then.
    pub version: u64,
    /// Its files.
    pub files: Vec<BundledFile>,
}

impl BundleManifest {
    /// Bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// A bundle key: 32 bytes, from 64 hex characters (surrounding whitespace ignored).
#[derive(Clone)]
pub struct BundleKey([u8; 32]);

impl std::fmt::Debug for BundleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BundleKey(..)")
    }
}

impl BundleKey {
    /// Parse a key (`what` names where it came from, for the error).
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let t = text.trim();
        let bad = || {
            StoreError::Input(format!(
                "the bundle key in {what} is not 64 hex characters (32 random bytes); make one with `memlane bundle-key > key.hex`"
            ))
        };
        if t.len() != 64 {
            return Err(bad());
        }
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(BundleKey(k))
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        BundleKey(k)
    }

    /// As 64 hex characters.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    s.len()
        .is_multiple_of(2)
        .then(|| {
            (0..s.len() / 2)
                .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
                .collect()
        })
        .flatten()
}

async fn locate(uri: &str, storage: &StorageOptions) -> Result<(Arc<ObjectStore>, Path)> {
    let registry = Arc::new(ObjectStoreRegistry::default());
    Ok(ObjectStore::from_uri_and_params(registry, uri, &storage.params()).await?)
}

/// Side files that are not part of a store's lasting state.
fn transient(rel: &str) -> bool {
    rel == "_memlane/lock.json"
        || rel.starts_with("_memlane/backfill/")
        || rel.starts_with("_memlane/staged/")
}

/// Bundle the store at `uri` into bytes (optionally encrypted with `key`).
pub async fn bundle(
    uri: &str,
    storage: &StorageOptions,
    key: Option<&BundleKey>,
) -> Result<(Vec<u8>, BundleManifest)> {
    let store = crate::store::Store::open_with(uri, storage.clone()).await?;
    let version = store.version();
    let (os, base) = locate(uri, storage).await?;
    let prefix = format!("{}/", base.as_ref());
    let mut metas: Vec<_> = os
        .inner
        .list(Some(&base))
        .try_collect()
        .await
        .map_err(|e| StoreError::Input(format!("cannot list {uri}: {e}")))?;
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    let mut files = Vec::new();
    let mut contents = Vec::new();
    for m in metas {
        let Some(rel) = m.location.as_ref().strip_prefix(&prefix).map(str::to_owned) else {
            continue;
        };
        if transient(&rel) {
            continue;
        }
        let bytes = os
            .inner
            .get(&m.location)
            .await
            .map_err(|e| StoreError::Input(format!("cannot read {uri}/{rel}: {e}")))?
            .bytes()
            .await
            .map_err(|e| StoreError::Input(format!("cannot read {uri}/{rel}: {e}")))?;
        files.push(BundledFile {
            path: rel,
            bytes: bytes.len() as u64,
            blake3: blake3::hash(&bytes).to_hex().to_string(),
        });
        contents.push(bytes);
    }
    let manifest = BundleManifest {
        store: uri.to_owned(),
        version,
        files,
    };
    let mj = serde_json::to_vec(&manifest).map_err(|e| StoreError::Internal(e.to_string()))?;
    let mut body = Vec::with_capacity(8 + mj.len() + manifest.total_bytes() as usize);
    body.extend_from_slice(&(mj.len() as u64).to_le_bytes());
    body.extend_from_slice(&mj);
    for c in &contents {
        body.extend_from_slice(c);
    }
    let mut header = Header {
        format: 1,
        created_at: crate::store::now(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        encrypted: key.is_some(),
        nonce: None,
        body_blake3: blake3::hash(&body).to_hex().to_string(),
    };
    let body = match key {
        None => body,
        Some(k) => {
            let mut nonce = [0u8; 7];
            OsRng.fill_bytes(&mut nonce);
            header.nonce = Some(hex(&nonce));
            encrypt(k, &nonce, &body)?
        }
    };
    let hj = serde_json::to_vec(&header).map_err(|e| StoreError::Internal(e.to_string()))?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + hj.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u32::try_from(hj.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&hj);
    out.extend_from_slice(&body);
    Ok((out, manifest))
}

fn encrypt(key: &BundleKey, nonce: &[u8; 7], body: &[u8]) -> Result<Vec<u8>> {
    let aead = ChaCha20Poly1305::new((&key.0).into());
    let mut enc = EncryptorBE32::from_aead(aead, nonce.into());
    let mut out = Vec::with_capacity(body.len() + body.len() / SEGMENT * TAG + TAG);
    let crypt = |e| StoreError::Internal(format!("bundle encryption failed: {e}"));
    let chunks: Vec<&[u8]> = body.chunks(SEGMENT).collect();
    let (last, init) = chunks
        .split_last()
        .map_or((&[][..], &[][..]), |(l, i)| (*l, i));
    for c in init {
        out.extend(enc.encrypt_next(*c).map_err(crypt)?);
    }
    out.extend(enc.encrypt_last(last).map_err(crypt)?);
    Ok(out)
}

/// Decrypt the body: the plaintext, or the plaintext of the segments before the first
/// that does not authenticate, with that segment's index.
fn decrypt(key: &BundleKey, nonce: &[u8; 7], body: &[u8]) -> (Vec<u8>, Option<usize>) {
    let aead = ChaCha20Poly1305::new((&key.0).into());
    let mut dec = DecryptorBE32::from_aead(aead, nonce.into());
    let mut out = Vec::with_capacity(body.len());
    let chunks: Vec<&[u8]> = body.chunks(SEGMENT + TAG).collect();
    let Some((last, init)) = chunks.split_last() else {
        return (out, Some(0));
    };
    for (i, c) in init.iter().enumerate() {
        match dec.decrypt_next(*c) {
            Ok(p) => out.extend(p),
            Err(_) => return (out, Some(i)),
        }
    }
    match dec.decrypt_last(*last) {
        Ok(p) => {
            out.extend(p);
            (out, None)
        }
        Err(_) => (out, Some(init.len())),
    }
}

fn refuse(file: &str, what: &str) -> StoreError {
    StoreError::BadBundle {
        file: file.to_owned(),
        problem: what.to_owned(),
    }
}

/// Check a bundle's bytes and read its manifest and file contents (nothing written).
pub fn open_bundle(
    bytes: &[u8],
    file: &str,
    key: Option<&BundleKey>,
) -> Result<(BundleManifest, Vec<Bytes>)> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| refuse(file, "it does not start with the memlane bundle header"))?;
    let cut = |what: &str| refuse(file, &format!("it is cut short ({what})"));
    if rest.len() < 4 {
        return Err(cut("no header length"));
    }
    let hl = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let hj = rest.get(4..4 + hl).ok_or_else(|| cut("the header"))?;
    let header: Header = serde_json::from_slice(hj)
        .map_err(|e| refuse(file, &format!("its header does not read ({e})")))?;
    if header.format != 1 {
        return Err(refuse(
            file,
            &format!("format {} is not one this memlane reads (1)", header.format),
        ));
    }
    let raw = &rest[4 + hl..];
    let (body, failed) = match (header.encrypted, key) {
        (true, None) => {
            return Err(StoreError::Input(format!(
                "bundle {file} is encrypted: give its key (--key-file FILE or MEMLANE_BUNDLE_KEY)"
            )));
        }
        (true, Some(k)) => {
            let nonce: [u8; 7] = header
                .nonce
                .as_deref()
                .and_then(unhex)
                .and_then(|n| n.try_into().ok())
                .ok_or_else(|| refuse(file, "its header has no 7-byte nonce"))?;
            decrypt(k, &nonce, raw)
        }
        (false, _) => (raw.to_vec(), None),
    };
    if let Some(i) = failed {
        // name the file the failing segment falls in, when the manifest came through
        let at = i * SEGMENT;
        let part = manifest_of(&body)
            .and_then(|(m, start)| locate_offset(&m, start, at))
            .map_or_else(String::new, |p| format!(" (in {p})"));
        return Err(refuse(
            file,
            &format!(
                "segment {i} (plaintext byte {at}){part} does not authenticate: the file was changed or cut, or the key is not the one it was made with"
            ),
        ));
    }
    let (manifest, mut at) = manifest_of(&body).ok_or_else(|| {
        refuse(
            file,
            "its manifest does not read (bytes changed or cut at the start of the body)",
        )
    })?;
    let mut contents = Vec::with_capacity(manifest.files.len());
    for f in &manifest.files {
        let n = usize::try_from(f.bytes).unwrap_or(usize::MAX);
        let Some(c) = body.get(at..at.saturating_add(n)) else {
            return Err(refuse(
                file,
                &format!(
                    "it is cut short: {} needs {} bytes, {} are left",
                    f.path,
                    f.bytes,
                    body.len().saturating_sub(at)
                ),
            ));
        };
        if blake3::hash(c).to_hex().as_str() != f.blake3 {
            return Err(refuse(
                file,
                &format!("{} does not match its blake3 in the manifest", f.path),
            ));
        }
        contents.push(Bytes::copy_from_slice(c));
        at += n;
    }
    if at != body.len() {
        return Err(refuse(
            file,
            &format!("{} bytes follow the last file", body.len() - at),
        ));
    }
    if blake3::hash(&body).to_hex().as_str() != header.body_blake3 {
        return Err(refuse(
            file,
            "its manifest does not match the blake3 in its header",
        ));
    }
    Ok((manifest, contents))
}

/// The manifest at the start of a body, and where the files begin.
fn manifest_of(body: &[u8]) -> Option<(BundleManifest, usize)> {
    let ml = usize::try_from(u64::from_le_bytes(body.get(..8)?.try_into().ok()?)).ok()?;
    let m = serde_json::from_slice(body.get(8..8usize.checked_add(ml)?)?).ok()?;
    Some((m, 8 + ml))
}

/// The file a body offset falls in.
fn locate_offset(m: &BundleManifest, start: usize, at: usize) -> Option<String> {
    let mut pos = start;
    for f in &m.files {
        let end = pos + usize::try_from(f.bytes).ok()?;
        if at < end {
            return Some(f.path.clone());
        }
        pos = end;
    }
    None
}

/// The files already under `dest` (path -> length).
async fn present_files(os: &ObjectStore, base: &Path, dest: &str) -> Result<BTreeMap<String, u64>> {
    let prefix = format!("{}/", base.as_ref());
    let metas: Vec<_> = match os.inner.list(Some(base)).try_collect().await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(StoreError::Input(format!("cannot list {dest}: {e}"))),
    };
    Ok(metas
        .into_iter()
        .filter_map(|m| {
            let rel = m.location.as_ref().strip_prefix(&prefix)?.to_owned();
            Some((rel, m.size))
        })
        .collect())
}

/// Whether what `dest` holds is part of this bundle (a restore that was stopped): every
/// file one of the bundle's, with its length, and at least one version manifest missing.
fn is_partial_restore(present: &BTreeMap<String, u64>, m: &BundleManifest) -> bool {
    let ours: BTreeMap<&str, u64> = m.files.iter().map(|f| (f.path.as_str(), f.bytes)).collect();
    present
        .iter()
        .all(|(p, n)| transient(p) || ours.get(p.as_str()) == Some(n))
        && m.files.iter().any(|f| !present.contains_key(&f.path))
}

/// The Lance version a `_versions/` manifest holds (its name is the version, or
/// `u64::MAX - version` in Lance's newer naming); 0 for other files.
fn version_of(path: &str) -> u64 {
    let Some(stem) = path
        .strip_prefix("_versions/")
        .and_then(|n| n.strip_suffix(".manifest"))
    else {
        return 0;
    };
    match stem.parse::<u64>() {
        Ok(n) if n > u64::MAX / 2 => u64::MAX - n,
        Ok(n) => n,
        Err(_) => 0,
    }
}

/// Restore a checked bundle into `dest` (which must not hold a dataset), then open it.
pub async fn unbundle(
    bytes: &[u8],
    file: &str,
    dest: &str,
    storage: &StorageOptions,
    key: Option<&BundleKey>,
) -> Result<BundleManifest> {
    let (manifest, contents) = open_bundle(bytes, file, key)?;
    let (os, base) = locate(dest, storage).await?;
    let present = present_files(&os, &base, dest).await?;
    if !present.is_empty() && !is_partial_restore(&present, &manifest) {
        return Err(StoreError::Exists {
            uri: dest.to_owned(),
        });
    }
    // data first, then the version manifests oldest to newest: a restore killed midway
    // is a store at an earlier version of the bundle with its whole history up to it,
    // and unbundling again into it finishes the restore
    let mut order: Vec<(&BundledFile, &Bytes)> = manifest.files.iter().zip(&contents).collect();
    order.sort_by_key(|(f, _)| {
        (
            f.path.starts_with("_versions/"),
            version_of(&f.path),
            f.path.clone(),
        )
    });
    for (f, c) in order {
        let path = f
            .path
            .split('/')
            .fold(base.clone(), |acc, part| acc.join(part));
        os.inner
            .put(&path, PutPayload::from_bytes(c.clone()))
            .await
            .map_err(|e| StoreError::Input(format!("cannot write {dest}/{}: {e}", f.path)))?;
    }
    crate::store::Store::open_with(dest, storage.clone()).await?;
    Ok(manifest)
}
