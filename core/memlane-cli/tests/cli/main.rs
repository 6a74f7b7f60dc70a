//! The `memlane` binary end to end: every command on the example folders, exit codes
//! and JSON output (`examples`); SIGKILL and concurrent writers (`kills`); hand-tampered
//! stores (`tamper`); a store in S3 (`s3`); helpers in `common`.

mod branches;
mod bundles;
mod common;
mod diff;
mod examples;
mod index_hostile;
mod kills;
mod promote;
mod remembered;
mod s3;
mod tamper;
