//! The bottom layer: what memlane needs from Lance, knowing nothing of the `Store` facade.
//!
//! - [`commit`]: every memlane commit (state, entry and seal as transaction properties),
//!   conflict classification and the retry policy for retryable conflicts;
//! - [`record`]: reading memlane's record of a version back (state, entry, seal) and
//!   walking the sealed chain;
//! - [`scan`]: streaming scans and evenly spread samples of a version;
//! - [`files`]: the data files a transaction adds and their digests, read through
//!   Lance's object store.
//!
//! Modules above (`store`, `gradual`, `migrate`, `verify`) call into these; these never
//! name a module above them.

pub(crate) mod commit;
pub(crate) mod files;
pub(crate) mod record;
pub(crate) mod scan;
