//! barque's container crate: running a container from an OCI runtime bundle, one kernel/OCI
//! concept per module, the lifecycle in [`container`]. Kernel calls go through the [`sys::Sys`]
//! trait (faked in unit tests). Nothing here decodes layers: the shim and `barque-runtime`
//! link this crate without the layer crate's compression and tar code.

// Errors are values: a panic in a container's set-up would leave it half made.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod capabilities;
pub mod cgroup;
pub mod cgroups;
mod child;
pub mod container;
pub mod device_filter;
pub mod devices;
pub mod error;
pub mod exec;
pub mod failure;
pub mod hostname;
mod init;
pub mod inroot;
pub mod masked;
pub mod memory;
pub mod mount_options;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod seccomp_cache;
pub mod spec;
pub mod start_wait;
pub mod sys;
pub mod sysctl;
pub mod terminal;
pub mod trampoline;

#[cfg(test)]
mod fake_sys;
