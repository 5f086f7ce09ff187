//! barque's layer crate: streaming blob ingestion and hostile-layer-safe unpacking, image
//! archives' tar streams and layer writers (gzip, zstd).
//!
//! Only the binding crate knows about Python; everything here is plain Rust.

// Errors are values: a panic reachable from layer bytes would be a bug an attacker can trigger.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod archive;
pub mod compression;
pub mod digest;
pub mod error;
pub mod ingest;
pub mod kernel;
pub mod layer_writer;
pub mod limits;
pub mod path;
pub mod resolve;
pub mod unpack;
pub mod whiteout;

#[cfg(test)]
mod fake_kernel;
#[cfg(test)]
mod test_support;
