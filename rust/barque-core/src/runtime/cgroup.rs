//! Joining the container's cgroups: the caller (barque's Python service) creates the cgroup
//! directories and sets their limits; the parent opens each `cgroup.procs` before clone and the
//! init writes "0" (itself) to each as its first step, before anything of the container runs.
//!
//! A new cgroup namespace must be rooted at the container's cgroup, so when there are cgroups
//! to join, `CLONE_NEWCGROUP` moves from the clone flags to an `unshare` right after the join.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use crate::runtime::failure::{Fail, FailAt, Step};
use crate::runtime::sys::Sys;

#[derive(Debug, thiserror::Error)]
#[error("cannot open {}: {source}", path.display())]
pub struct CgroupError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

#[derive(Debug, Default)]
pub struct CgroupPlan {
    /// `cgroup.procs` files, opened write-only and close-on-exec in the parent.
    pub procs: Vec<(PathBuf, OwnedFd)>,
    /// Unshare the cgroup namespace after joining (it was taken out of the clone flags).
    pub unshare_ns: bool,
}

/// Opens every `cgroup.procs` path; `clone_flags` loses `CLONE_NEWCGROUP` (the init unshares it
/// after joining) when there is anything to join.
pub fn plan(paths: &[PathBuf], clone_flags: &mut u64) -> Result<CgroupPlan, CgroupError> {
    let mut plan = CgroupPlan::default();
    for path in paths {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| CgroupError {
                path: path.clone(),
                source,
            })?;
        plan.procs.push((path.clone(), file.into()));
    }
    let newcgroup = libc::CLONE_NEWCGROUP as u64;
    if !plan.procs.is_empty() && *clone_flags & newcgroup != 0 {
        *clone_flags &= !newcgroup;
        plan.unshare_ns = true;
    }
    Ok(plan)
}

impl CgroupPlan {
    /// Moves the calling task into every cgroup, closes the descriptors, then enters a new
    /// cgroup namespace if one is wanted.
    pub fn join<S: Sys>(&self, sys: &S) -> Result<(), Fail> {
        for (i, (_, fd)) in self.procs.iter().enumerate() {
            sys.write_all(fd.as_raw_fd(), b"0").at(Step::Cgroup, i)?;
        }
        for (_, fd) in &self.procs {
            sys.close(fd.as_raw_fd());
        }
        if self.unshare_ns {
            sys.unshare(libc::CLONE_NEWCGROUP)
                .at(Step::Cgroup, self.procs.len())?;
        }
        Ok(())
    }

    /// The path of the `index`th join (or of the namespace step past the end).
    pub fn describe(&self, index: usize) -> String {
        match self.procs.get(index) {
            Some((p, _)) => format!("join cgroup {}", p.display()),
            None => "unshare the cgroup namespace".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake_sys::FakeSys;

    fn tmp_procs(n: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let paths = (0..n)
            .map(|i| {
                let p = dir.path().join(format!("procs{i}"));
                std::fs::write(&p, "").unwrap();
                p
            })
            .collect();
        (dir, paths)
    }

    #[test]
    fn joins_then_unshares_the_cgroup_namespace() {
        let (_dir, paths) = tmp_procs(2);
        let mut flags = (libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP) as u64;
        let plan = plan(&paths, &mut flags).unwrap();
        assert_eq!(flags, libc::CLONE_NEWNS as u64);
        assert!(plan.unshare_ns);
        let sys = FakeSys::default();
        plan.join(&sys).unwrap();
        let calls = sys.calls();
        assert!(calls[0].starts_with("write(") && calls[0].ends_with(", 0)"));
        assert!(calls[1].starts_with("write("));
        assert!(calls[2].starts_with("close(") && calls[3].starts_with("close("));
        assert_eq!(calls[4], format!("unshare({:#x})", libc::CLONE_NEWCGROUP));
    }

    #[test]
    fn nothing_to_join_keeps_the_clone_flags() {
        let mut flags = libc::CLONE_NEWCGROUP as u64;
        let plan = plan(&[], &mut flags).unwrap();
        assert_eq!(flags, libc::CLONE_NEWCGROUP as u64);
        let sys = FakeSys::default();
        plan.join(&sys).unwrap();
        assert!(sys.calls().is_empty());
    }

    #[test]
    fn failures_name_the_cgroup() {
        let mut flags = 0;
        assert!(plan(&[PathBuf::from("/nonexistent/cgroup.procs")], &mut flags).is_err());
        let (_dir, paths) = tmp_procs(1);
        let plan = plan(&paths, &mut flags).unwrap();
        assert!(!plan.unshare_ns);
        let sys = FakeSys::default();
        sys.fail("write(", libc::EBUSY);
        assert_eq!(plan.join(&sys), Err(Fail::at(Step::Cgroup, 0, libc::EBUSY)));
        assert!(plan.describe(0).contains("procs0"));
    }
}
