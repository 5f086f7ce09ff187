//! The cgroup manager of barque's service and of `barque-runtime`: a container's cgroup
//! created with its limits and device rules before the container starts, frozen and thawed
//! (pause), read (OOM kills, usage, its processes) and removed. [`crate::cgroup`] is the
//! other half: the init joining the `cgroup.procs` files [`Cgroup::procs`] lists.
//!
//! On cgroup v1 a cgroup is one directory per mounted hierarchy the caller manages (barque's
//! service: memory, pids, cpu and cpuacct, freezer, devices); on a pure cgroup v2 host, one
//! directory of the unified tree, with the controllers enabled in each ancestor's
//! `cgroup.subtree_control`. Where the directories are follows runc's cgroupfs driver
//! ([`layout`]). Device rules go to v1's `devices.deny`/`devices.allow`; cgroup v2 has no such
//! files, so there they become a BPF device program attached to the directory
//! ([`crate::device_filter`]).
//!
//! Every file operation goes through [`fs::CgroupFs`] (the kernel's, or a fake in tests). A
//! limit whose controller is missing is refused naming the limit, never ignored.

pub mod freezer;
pub mod fs;
pub mod layout;
pub mod limits;
pub mod stats;

#[cfg(test)]
pub(crate) mod fake_fs;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::device_filter::{DeviceFilterError, DeviceRule};
use crate::error::ErrorClass;

pub use fs::{CgroupFs, KernelFs};
pub use layout::{Dir, Layout, MOUNT, UNIFIED};
pub use limits::Limits;

/// The controllers enabled for a container on cgroup v2 (the freezer and the device
/// program are part of every v2 cgroup).
pub const V2_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// How long a removal waits for a cgroup whose last tasks are still exiting, by default.
pub const REMOVE_PATIENCE: Duration = Duration::from_secs(2);
/// Between two tries of a removal the kernel refused as busy.
const REMOVE_RETRY: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("linux.cgroupsPath {0:?} is invalid (\"..\" is not allowed)")]
    InvalidPath(PathBuf),
    #[error("cannot apply the {limit} limit: the {controller} cgroup controller is not available on this host")]
    ControllerMissing {
        limit: &'static str,
        controller: &'static str,
    },
    #[error("a swap limit needs a memory limit on cgroup v2")]
    SwapWithoutMemory,
    #[error("the freezer cgroup controller is not available on this host")]
    NoFreezer,
    #[error("the cgroup {} did not reach the freezer state", .0.display())]
    FreezeTimeout(PathBuf),
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {} ({value}): {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("linux.resources.devices: {0}")]
    Devices(#[from] DeviceFilterError),
}

impl CgroupError {
    fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CgroupError {
        let path = path.to_owned();
        move |source| CgroupError::Io { op, path, source }
    }

    pub fn class(&self) -> ErrorClass<'_> {
        let os = |source: &io::Error| source.raw_os_error().unwrap_or(libc::EIO);
        match self {
            CgroupError::InvalidPath(_)
            | CgroupError::ControllerMissing { .. }
            | CgroupError::SwapWithoutMemory
            | CgroupError::NoFreezer => ErrorClass::Usage,
            CgroupError::FreezeTimeout(path) => ErrorClass::Os {
                errno: libc::ETIMEDOUT,
                path: Some(path),
            },
            CgroupError::Io { path, source, .. } | CgroupError::Write { path, source, .. } => {
                ErrorClass::Os {
                    errno: os(source),
                    path: Some(path),
                }
            }
            CgroupError::Devices(e) => e.class(),
        }
    }
}

/// One container's cgroup: its directories (one per v1 hierarchy, or the one of v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub v2: bool,
    pub dirs: Vec<Dir>,
}

/// What a new cgroup gets.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    pub limits: &'a Limits,
    /// `linux.resources.devices`, applied in order (none: the parent's, which is barque's
    /// own: every device).
    pub devices: &'a [DeviceRule],
    /// Remove a leftover of an earlier start first (a container started again).
    pub replace: bool,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            limits: &Limits::NONE,
            devices: &[],
            replace: false,
        }
    }
}

impl Cgroup {
    /// The cgroup as it exists now: those of `dirs` that exist (possibly none).
    pub fn existing<F: CgroupFs>(fs: &F, layout: &Layout, dirs: Vec<Dir>) -> Cgroup {
        Cgroup {
            v2: layout.v2,
            dirs: dirs.into_iter().filter(|d| fs.exists(&d.path)).collect(),
        }
    }

    /// Creates the directories `dirs` (of [`Layout::dirs`]), enabling the v2 controllers on
    /// the way, and applies `setup`; on failure nothing made stays.
    pub fn create<F: CgroupFs>(
        fs: &F,
        layout: &Layout,
        dirs: Vec<Dir>,
        setup: Setup<'_>,
    ) -> Result<Cgroup, CgroupError> {
        let writes = setup.limits.writes(layout.v2)?;
        let needs = setup.limits.needs();
        if !layout.v2 {
            require(&needs, |c| dirs.iter().any(|d| d.has(c)))?;
        }
        if setup.replace {
            remove_dirs(fs, dirs.iter().map(|d| d.path.as_path()), REMOVE_PATIENCE)?;
        }
        let cgroup = Cgroup {
            v2: layout.v2,
            dirs,
        };
        let mut made = 0;
        let result = (|| {
            for dir in &cgroup.dirs {
                if layout.v2 {
                    let enabled = enable_controllers(fs, &layout.mount, &dir.path)?;
                    require(&needs, |c| enabled.contains(&c))?;
                }
                make_dirs(fs, &dir.path)?;
                made += 1;
            }
            cgroup.configure(fs, &writes, setup.devices)
        })();
        if let Err(e) = result {
            let made = cgroup.dirs[..made].iter().map(|d| d.path.as_path());
            let _ = remove_dirs(fs, made, Duration::ZERO);
            return Err(e);
        }
        Ok(cgroup)
    }

    /// The limits' writes and the device rules (v1 files, or the v2 program).
    fn configure<F: CgroupFs>(
        &self,
        fs: &F,
        writes: &[limits::Write],
        devices: &[DeviceRule],
    ) -> Result<(), CgroupError> {
        let mut files: Vec<(PathBuf, String)> = Vec::new();
        for w in writes {
            let Some(dir) = self.dir(w.controller) else {
                // Only a write that may be skipped gets here (`require` checked the rest).
                continue;
            };
            let path = dir.join(w.file);
            if w.if_present && !fs.exists(&path) {
                continue;
            }
            files.push((path, w.value.clone()));
        }
        if let (false, Some(dir)) = (self.v2, self.dir("devices")) {
            for rule in devices {
                let file = if rule.allow {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                files.push((dir.join(file), rule.v1_line()));
            }
        }
        fs.write_in_order(&files).map_err(|(i, source)| {
            let (path, value) = files[i].clone();
            CgroupError::Write {
                path,
                value,
                source,
            }
        })?;
        if let (true, Some(dir), false) = (self.v2, self.dirs.first(), devices.is_empty()) {
            fs.attach_device_filter(&dir.path, devices)?;
        }
        Ok(())
    }

    /// The directory holding `controller`'s files: the one directory on v2.
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| self.v2 || d.has(controller))
            .map(|d| d.path.as_path())
    }

    /// The `cgroup.procs` files a process joins the cgroup by.
    pub fn procs(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.path.join("cgroup.procs"))
            .collect()
    }

    /// The host pids of every process in the cgroup.
    pub fn pids<F: CgroupFs>(&self, fs: &F) -> Vec<i32> {
        pids_of(fs, self.dirs.iter().map(|d| d.path.as_path()))
    }

    /// Removes the directories, waiting up to `patience` for each one whose last tasks are
    /// still exiting; every directory is tried, the first failure is returned.
    pub fn remove<F: CgroupFs>(&self, fs: &F, patience: Duration) -> Result<(), CgroupError> {
        remove_dirs(fs, self.dirs.iter().map(|d| d.path.as_path()), patience)
    }
}

fn require(needs: &[limits::Needs], has: impl Fn(&'static str) -> bool) -> Result<(), CgroupError> {
    match needs.iter().find(|n| !has(n.controller)) {
        Some(n) => Err(CgroupError::ControllerMissing {
            limit: n.limit,
            controller: n.controller,
        }),
        None => Ok(()),
    }
}

/// `mkdir -p`: one call when the parent exists, as it does for all but a container's first.
fn make_dirs<F: CgroupFs>(fs: &F, dir: &Path) -> Result<(), CgroupError> {
    match fs.mkdir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match dir.parent() {
            Some(parent) if parent != dir => {
                make_dirs(fs, parent)?;
                make_dirs(fs, dir)
            }
            _ => Err(CgroupError::io("create", dir)(e)),
        },
        Err(e) => Err(CgroupError::io("create", dir)(e)),
    }
}

/// Enables barque's v2 controllers in `cgroup.subtree_control` of each ancestor of `dir`
/// below `mount` (creating the ancestors), as far as each has them; returns those enabled
/// for `dir`. A unified hierarchy may have none of them (a hybrid host): a limit needing one
/// is then refused.
fn enable_controllers<F: CgroupFs>(
    fs: &F,
    mount: &Path,
    dir: &Path,
) -> Result<Vec<&'static str>, CgroupError> {
    let mut enabled: Vec<&'static str> = Vec::new();
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(enabled);
    };
    let parts: Vec<_> = rel.components().collect();
    let mut at = mount.to_owned();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            make_dirs(fs, &at)?;
        }
        enabled = enable_available(fs, &at)?;
        if i + 1 < parts.len() {
            at.push(part);
        }
    }
    Ok(enabled)
}

/// Enables for the children of `at` those of [`V2_CONTROLLERS`] it has (writing only the
/// missing ones: a write takes the kernel's cgroup lock even when it changes nothing).
fn enable_available<F: CgroupFs>(fs: &F, at: &Path) -> Result<Vec<&'static str>, CgroupError> {
    let list = at.join("cgroup.controllers");
    let available = fs.read(&list).map_err(CgroupError::io("read", &list))?;
    let control = at.join("cgroup.subtree_control");
    let current = fs
        .read(&control)
        .map_err(CgroupError::io("read", &control))?;
    let has = |text: &str, c: &str| text.split_whitespace().any(|a| a == c);
    let enabled: Vec<&'static str> = V2_CONTROLLERS
        .into_iter()
        .filter(|c| has(&available, c))
        .collect();
    let missing: Vec<String> = enabled
        .iter()
        .filter(|c| !has(&current, c))
        .map(|c| format!("+{c}"))
        .collect();
    if !missing.is_empty() {
        let value = missing.join(" ");
        fs.write_in_order(&[(control.clone(), value.clone())])
            .map_err(|(_, source)| CgroupError::Write {
                path: control,
                value,
                source,
            })?;
    }
    Ok(enabled)
}

/// Removes cgroup directories (a missing one is gone already), retrying one the kernel
/// finds busy until `patience` has passed; every one is tried, the first failure returned.
pub fn remove_dirs<'a, F: CgroupFs>(
    fs: &F,
    dirs: impl IntoIterator<Item = &'a Path>,
    patience: Duration,
) -> Result<(), CgroupError> {
    let deadline = Instant::now() + patience;
    let mut first = None;
    for dir in dirs {
        loop {
            match fs.rmdir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    fs.sleep(REMOVE_RETRY)
                }
                Err(e) => {
                    first.get_or_insert_with(|| CgroupError::io("remove the cgroup", dir)(e));
                    break;
                }
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// The pids in the first of `dirs` that can be read (every hierarchy holds the same
/// processes), in order.
pub fn pids_of<'a, F: CgroupFs>(fs: &F, dirs: impl IntoIterator<Item = &'a Path>) -> Vec<i32> {
    for dir in dirs {
        if let Ok(text) = fs.read(&dir.join("cgroup.procs")) {
            let mut pids: Vec<i32> = text
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            pids.sort_unstable();
            return pids;
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests;
