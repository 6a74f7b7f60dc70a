//! `memlane bundle`, `unbundle`, `bundle-key`: a store in one verified (optionally
//! encrypted) file, and back.

use anyhow::{Context, Result};
use memlane_store::BundleKey;
use serde_json::json;

use crate::cli::{BundleArgs, BundleKeyArgs, UnbundleArgs};
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// The key from `--key-file` or `MEMLANE_BUNDLE_KEY`, if any.
fn read_key(a: &BundleKeyArgs) -> Result<Option<BundleKey>> {
    if let Some(p) = &a.key_file {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the key file {}", p.display()))?;
        return Ok(Some(BundleKey::parse(&text, &p.display().to_string())?));
    }
    match std::env::var("MEMLANE_BUNDLE_KEY") {
        Ok(v) if !v.trim().is_empty() => Ok(Some(BundleKey::parse(&v, "MEMLANE_BUNDLE_KEY")?)),
        _ => Ok(None),
    }
}

/// Bundle a store into a file.
pub(crate) async fn run(args: BundleArgs, out: Output) -> Result<ExitStatus> {
    let key = read_key(&args.key)?;
    let storage = args.store.storage.parse()?;
    let (bytes, manifest) =
        memlane_store::bundle(&args.store.store, &storage, key.as_ref()).await?;
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    out.emit(
        &json!({
            "bundle": args.output,
            "store": manifest.store,
            "version": manifest.version,
            "files": manifest.files.len(),
            "store_bytes": manifest.total_bytes(),
            "bundle_bytes": bytes.len(),
            "encrypted": key.is_some(),
        }),
        line(format_args!(
            "bundled {} (version {}, {} files, {} bytes) into {} ({} bytes{})",
            manifest.store,
            manifest.version,
            manifest.files.len(),
            manifest.total_bytes(),
            args.output.display(),
            bytes.len(),
            if key.is_some() { ", encrypted" } else { "" }
        )),
    )?;
    Ok(ExitStatus::Ok)
}

/// Restore a bundle.
pub(crate) async fn unbundle(args: UnbundleArgs, out: Output) -> Result<ExitStatus> {
    let key = read_key(&args.key)?;
    let storage = args.dest.storage.parse()?;
    let bytes = std::fs::read(&args.bundle)
        .with_context(|| format!("cannot read {}", args.bundle.display()))?;
    let name = args.bundle.display().to_string();
    let manifest =
        memlane_store::unbundle(&bytes, &name, &args.dest.store, &storage, key.as_ref()).await?;
    out.emit(
        &json!({"store": args.dest.store, "from": manifest.store, "version": manifest.version, "files": manifest.files.len()}),
        line(format_args!(
            "restored {} (version {}, {} files, every digest checked) into {}",
            manifest.store,
            manifest.version,
            manifest.files.len(),
            args.dest.store
        )),
    )?;
    Ok(ExitStatus::Ok)
}

/// Print a new key.
pub(crate) fn key(out: Output) -> Result<ExitStatus> {
    let k = BundleKey::generate();
    out.emit(&json!({"key": k.to_hex()}), line(k.to_hex()))?;
    Ok(ExitStatus::Ok)
}
