//! The values the store API takes and returns: records to add, search hits, history
//! items, write reports, creation options.

use std::collections::HashMap;

use memlane_core::{FieldDef, HistoryEntry, Space};
use serde::{Deserialize, Serialize};

/// Options of a new store.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// A plain vector collection: `id`, `content`, metadata and spaces, without the
    /// agent-memory fields.
    pub plain: bool,
    /// Embedding spaces to start with (the first one becomes active).
    pub spaces: Vec<Space>,
    /// Extra metadata fields.
    pub fields: Vec<FieldDef>,
    /// Rows per Lance fragment (default 65 536); a re-embed commits per fragment.
    pub rows_per_fragment: Option<usize>,
    /// How to reach the object store the store is created on (see
    /// [`StorageOptions`](crate::sidecar::StorageOptions)); empty for a local path.
    pub storage: crate::sidecar::StorageOptions,
    /// Named embedders the spaces' remembered references resolve in (for the initial
    /// records and the handle's later writes; see [`crate::embed::remembered`]).
    pub registry: crate::embed::remembered::Registry,
}

/// How a search runs: over the space's vector index (the default when it has one) or
/// exactly, with the index's probing overridden.
#[derive(Debug, Clone, Default)]
pub struct SearchOptions {
    /// Scan every vector instead of using the index.
    pub exact: bool,
    /// IVF partitions probed (default: the index spec's).
    pub nprobes: Option<usize>,
    /// Candidates re-ranked with full vectors, as a multiple of k (default: the spec's).
    pub refine_factor: Option<u32>,
    /// Fields to read with the hits, by the same scan (returned as [`Searched::table`]).
    pub columns: Option<Vec<String>>,
}

/// Search hits and how they were found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Searched {
    /// Hits, closest first.
    pub hits: Vec<Hit>,
    /// The vector index kind that answered; `None` for an exact scan.
    pub index: Option<memlane_core::IndexKind>,
    /// Why the space's index was not used although the search asked for it (its files
    /// are missing or unreadable): the hits come from an exact scan, and this names the
    /// index and the fix.
    pub fallback: Option<String>,
    /// The hits' rows when [`SearchOptions::columns`] asked for fields: `id`, those
    /// fields, `_distance`; closest first, read by the same scan as the hits.
    #[serde(skip)]
    pub table: Option<arrow::array::RecordBatch>,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Record id.
    pub id: String,
    /// Record content.
    pub content: Option<String>,
    /// Distance in the space's metric (smaller is closer).
    pub distance: f32,
}

/// One version of the store, as `history` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    /// Lance version.
    pub version: u64,
    /// Commit time (RFC 3339).
    pub timestamp: String,
    /// Lance operation name.
    pub operation: String,
    /// memlane's record of the commit (none for commits by other writers).
    pub entry: Option<HistoryEntry>,
    /// Tags pointing at this version.
    pub tags: Vec<String>,
    /// The version the commit was computed from (`version - 1` unless it was rebased
    /// over concurrent commits).
    pub read_version: u64,
}

/// What `upsert` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpsertReport {
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Vectors computed by embedders, per space.
    pub embedded: HashMap<String, u64>,
    /// Version committed.
    pub version: u64,
}

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddReport {
    /// Rows added.
    pub added: u64,
    /// Rows before.
    pub rows_before: u64,
    /// Rows after.
    pub rows_after: u64,
    /// Vectors computed by embedders, per space.
    pub embedded: HashMap<String, u64>,
    /// Version committed.
    pub version: u64,
}

/// A record for [`Store::add_records`]: typed access for Rust callers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unique id.
    pub id: String,
    /// Text that gets (re-)embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Other fields by name (memory fields such as `kind`, `agent_id`, `created_at`
    /// as RFC 3339, and metadata).
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Vectors by space name.
    #[serde(flatten)]
    pub vectors: HashMap<String, Vec<f32>>,
}

impl Record {
    /// A record with an id and content.
    pub fn new(id: impl Into<String>, content: impl Into<String>) -> Self {
        Record {
            id: id.into(),
            content: Some(content.into()),
            ..Default::default()
        }
    }

    /// Set a field.
    #[must_use]
    pub fn field(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.fields.insert(name.to_owned(), value.into());
        self
    }

    /// Set the vector of a space.
    #[must_use]
    pub fn vector(mut self, space: &str, v: Vec<f32>) -> Self {
        self.vectors.insert(space.to_owned(), v);
        self
    }
}
