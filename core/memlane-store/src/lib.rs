//! # memlane-store
//!
//! The Lance-backed engine of memlane: a store of records with embedding spaces,
//! migrations applied one Lance commit per step (the history entry travels in the
//! same commit), a lease lock, forward-only restore, tags and search.
//!
//! ```no_run
//! # async fn demo() -> memlane_store::Result<()> {
//! use memlane_store::{Store, HashEmbedder};
//! let mut store = Store::open("/tmp/memory.lance").await?;
//! let files = memlane_store::read_folder("migrations/")?;
//! let report = store
//!     .migrator(files)
//!     .embedder("minilm", HashEmbedder::new(384, 0).arc())
//!     .apply()
//!     .await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

mod bundle;
mod calibrate;
mod checks;
mod ci;
mod convert;
mod diff;
mod digests;
mod embed;
mod engine;
mod error;
mod export;
mod fingerprint;
mod gradual;
#[cfg(test)]
mod layers;
pub mod lock;
mod metrics;
mod migrate;
mod ops;
mod predicates;
mod promote;
mod readers;
mod rehearse;
mod sample;
mod sidecar;
mod status;
mod store;
mod validate;
mod vectors;
mod verdict;
mod verify;

pub use bundle::{BundleKey, BundleManifest, BundledFile, bundle, open_bundle, unbundle};
pub use calibrate::{DEFAULT_SAMPLE, PairedSample, Queries, compat_report};
pub use checks::context::SpaceDrift;
pub use ci::{CI_SAMPLE_ROWS, CiReport, ci};
pub use convert::{SPACE_META, arrow_type, check_batch, conform};
pub use diff::diff;
pub use embed::remembered;
pub use embed::{
    DEFAULT_TIMEOUT_SECS, EmbedError, EmbedFailure, Embedder, EmbedderSpec, HashEmbedder,
    HttpSettings, configured_embedders, embedder_from_spec, load_config, parse_config,
};
pub use error::{Result, StoreError, lance_message};
pub use export::{export, export_ipc, export_jsonl};
pub use fingerprint::CANARIES;
pub use gradual::{FragmentExecutor, FragmentResult, FragmentTask, TaskOutcome, run_fragment_task};
pub use memlane_core;
pub use metrics::ApplyMetrics;
pub use migrate::{Migrator, migration_tag};
pub use ops::{Progress, ProgressFn};
pub use promote::{PromoteOptions, PromoteReport, promote};
pub use readers::{MigrationFolder, read_folder, read_invariants, read_ipc, read_jsonl};
pub use rehearse::{Rehearsal, RehearsalOutcome, RehearseOptions, rehearse};
pub use sample::{SAMPLE_META, SNAPSHOT_META, SampleInfo, read_sample, review_sample};
pub use sidecar::{SideFiles, StorageOptions};
pub use status::{ReembedProgress, Status, space_summaries};
pub use store::{
    AddReport, BranchInfo, CreateOptions, HistoryItem, Hit, Record, SearchOptions, Searched, Store,
    UpsertReport, branch_uri, branches_root,
};
pub use validate::{CheckMetric, ValidateReport};
pub use verdict::{Verdict, verdict_json};
pub use verify::{Check, VerifyReport};
