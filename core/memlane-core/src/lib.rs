//! # memlane-core
//!
//! The pure heart of memlane: embedding spaces, migration files and their hash
//! chain, lint and plan, invariant checks over plain columns, report types, and the
//! compatibility analysis between two embedding spaces ([`mod@compat`]).
//! No IO, no async runtime, no arrow or lance: it compiles to `wasm32-unknown-unknown`
//! so the browser preview runs the same logic as the CLI.

pub mod audit;
pub mod chain;
pub mod compat;
pub mod diff;
pub mod drift;
pub mod error;
pub mod index;
pub mod invariant;
pub mod migration;
pub mod plan;
pub mod report;
pub mod review;
pub mod schema;
pub mod seal;
pub mod space;
pub mod state;

pub use compat::{
    Adapter, AdapterKind, CompatMode, CompatOptions, CompatReport, FitOptions, FitReport, Gate,
    GateResult, Matrix, Neighbors, QuerySet, Verdict, compat, fit_adapters, knn, knn_queries,
};
pub use error::{ChainError, CompatError, CoreError, ErrorKind, Result, VectorError};
pub use index::{IndexKind, IndexSpec};
pub use migration::{
    CheckKind, InvariantSpec, Migration, Severity, Step, parse_folder, parse_migration,
};
pub use plan::{Effect, Finding, Level, Plan, Snapshot, plan};
pub use report::{
    ApplyReport, Approval, BackfillStats, CompatCheck, ContextLoss, EmbedderCalls, InvariantResult,
    MigrationOutcome, MigrationReport, StepReport, WorkerStats,
};
pub use review::{Review, ReviewOptions, Sample, VectorColumn, check_pair, review};
pub use schema::{FieldDef, FieldType, Value};
pub use seal::{FileDigest, Link, Seal, SealError};
pub use space::{Fingerprint, Metric, Space};
pub use state::{
    Action, AdapterRef, AppliedMigration, BranchOrigin, HistoryEntry, InFlight, PendingContract,
    ReembedCheckpoint, StoreState,
};

/// Version of memlane recorded in every history entry.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
