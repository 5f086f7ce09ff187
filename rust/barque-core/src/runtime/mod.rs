//! Running a container from an OCI runtime bundle: one kernel/OCI concept per module, the
//! lifecycle in [`container`].

pub mod capabilities;
pub mod cgroup;
pub mod container;
pub mod device_filter;
pub mod devices;
pub mod exec;
pub mod failure;
pub mod hostname;
mod init;
pub mod inroot;
pub mod masked;
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
