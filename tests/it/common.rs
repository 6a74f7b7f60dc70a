use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memlane_store::{CreateOptions, Embedder, HashEmbedder, Store};

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub(crate) fn examples(name: &str) -> PathBuf {
    repo().join("migrations-examples").join(name)
}

pub(crate) fn corpus() -> Vec<serde_json::Value> {
    memlane_store::read_jsonl(examples("data").join("corpus.jsonl")).unwrap()
}

pub(crate) fn uri(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_str().unwrap().to_owned()
}

pub(crate) fn none() -> HashMap<String, Arc<dyn Embedder>> {
    HashMap::new()
}

/// A store created from the real corpus (392 records, no spaces).
pub(crate) async fn corpus_store(dir: &tempfile::TempDir, name: &str) -> Store {
    Store::create_from_json(
        &uri(dir, name),
        CreateOptions::default(),
        &corpus(),
        &none(),
    )
    .await
    .unwrap()
}

/// Copy a folder of migration files.
pub(crate) fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

pub(crate) fn hash(dim: usize, seed: u64) -> Arc<dyn Embedder> {
    HashEmbedder::new(dim, seed).arc()
}
