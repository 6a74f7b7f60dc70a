//! End-to-end tests of the store and migrator on real Lance datasets.

mod common;
mod compat;
mod distributed;
mod gradual;
mod index;
mod migrate;
mod s3;
mod store;
mod validate;
