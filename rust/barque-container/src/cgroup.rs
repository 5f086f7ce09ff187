//! Joining the container's cgroups: the caller (barque's Python service) creates the cgroup
//! directories and sets their limits, and names each one's `cgroup.procs`; they are opened in
//! the parent, before clone.
//!
//! Moving a process into a cgroup through `cgroup.procs` takes the kernel's global threadgroup
//! rwsem for writing, which waits for an RCU grace period when it was idle: 7-20 ms here, on
//! every container of a fresh process. A single thread moving *itself* (writing `0` to a v1
//! hierarchy's `tasks`) skips that lock, and the init is a single thread: so on cgroup v1 the
//! init joins by itself, in a fraction of a millisecond. A cgroup v2 directory has no `tasks`
//! (thread moves there are for threaded subtrees only), so there the parent writes the init's
//! pid to `cgroup.procs` ([`CgroupPlan::join_pid`]) while the init mounts, and the init waits
//! for the parent's word ([`CgroupPlan::await_join`]) before its privileges are set and before
//! anything of the container runs. An `exec` joins from the child itself ([`CgroupPlan::join`]).
//!
//! A new cgroup namespace must be rooted at the container's cgroup, so when there are cgroups
//! to join, `CLONE_NEWCGROUP` moves from the clone flags to an `unshare` right after the join.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::failure::{Fail, FailAt, Step};
use crate::sys::Sys;

#[derive(Debug, thiserror::Error)]
#[error("cannot open {}: {source}", path.display())]
pub struct CgroupError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// One cgroup to join: the file written, opened write-only and close-on-exec in the parent.
#[derive(Debug)]
pub struct Join {
    pub path: PathBuf,
    pub fd: OwnedFd,
    /// A v1 `tasks` file the task writes `0` to itself; else a `cgroup.procs` the parent
    /// writes the pid to.
    pub by_self: bool,
}

#[derive(Debug, Default)]
pub struct CgroupPlan {
    pub joins: Vec<Join>,
    /// Unshare the cgroup namespace after joining (it was taken out of the clone flags).
    pub unshare_ns: bool,
}

/// Opens what joins each cgroup named by its `cgroup.procs` path: the `tasks` file beside it
/// on cgroup v1, else the path itself. `clone_flags` loses `CLONE_NEWCGROUP` (the init
/// unshares it after joining) when there is anything to join.
pub fn plan(paths: &[PathBuf], clone_flags: &mut u64) -> Result<CgroupPlan, CgroupError> {
    let mut plan = CgroupPlan::default();
    for path in paths {
        let tasks = path
            .file_name()
            .filter(|name| *name == "cgroup.procs")
            .and_then(|_| path.parent())
            .map(|dir| dir.join("tasks"))
            .filter(|tasks| tasks.exists());
        let by_self = tasks.is_some();
        let path = tasks.unwrap_or_else(|| path.clone());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| CgroupError {
                path: path.clone(),
                source,
            })?;
        plan.joins.push(Join {
            path,
            fd: file.into(),
            by_self,
        });
    }
    let newcgroup = libc::CLONE_NEWCGROUP as u64;
    if !plan.joins.is_empty() && *clone_flags & newcgroup != 0 {
        *clone_flags &= !newcgroup;
        plan.unshare_ns = true;
    }
    Ok(plan)
}

impl CgroupPlan {
    pub fn is_empty(&self) -> bool {
        self.joins.is_empty()
    }

    /// Whether the parent must move the init (cgroup v2), and so send its word.
    pub fn needs_parent(&self) -> bool {
        self.joins.iter().any(|j| !j.by_self)
    }

    /// The file of the `index`th join.
    pub fn path(&self, index: usize) -> Option<&Path> {
        self.joins.get(index).map(|j| j.path.as_path())
    }

    /// Moves the calling task into every cgroup, closes the descriptors, then enters a new
    /// cgroup namespace if one is wanted.
    pub fn join<S: Sys>(&self, sys: &S) -> Result<(), Fail> {
        for (i, j) in self.joins.iter().enumerate() {
            sys.write_all(j.fd.as_raw_fd(), b"0").at(Step::Cgroup, i)?;
        }
        self.joined(sys)
    }

    /// Parent side: moves the task `pid` into the cgroups it must join for it (v2). On
    /// failure, the index of the join that refused it and the errno.
    pub fn join_pid(&self, pid: libc::pid_t) -> Result<(), (usize, i32)> {
        let mut text = [0u8; 12];
        let len = decimal(pid, &mut text);
        for (i, j) in self.joins.iter().enumerate().filter(|(_, j)| !j.by_self) {
            // SAFETY: writing a buffer we own to a descriptor we own.
            let n = unsafe { libc::write(j.fd.as_raw_fd(), text.as_ptr().cast(), len) };
            if n < 0 {
                return Err((
                    i,
                    std::io::Error::last_os_error()
                        .raw_os_error()
                        .unwrap_or(libc::EIO),
                ));
            }
        }
        Ok(())
    }

    /// Init side: joins its v1 cgroups itself, then, if the parent moves it into others,
    /// waits for the parent's word (one byte on `fd`; end of file means the parent could
    /// not); closes the descriptors, then enters a new cgroup namespace if one is wanted.
    pub fn await_join<S: Sys>(&self, sys: &S, fd: RawFd) -> Result<(), Fail> {
        for (i, j) in self.joins.iter().enumerate().filter(|(_, j)| j.by_self) {
            sys.write_all(j.fd.as_raw_fd(), b"0").at(Step::Cgroup, i)?;
        }
        if self.needs_parent() {
            let mut byte = [0u8; 1];
            if sys.read(fd, &mut byte).at(Step::Cgroup, 0)? == 0 {
                return Err(Fail::at(Step::Cgroup, 0, libc::EPIPE));
            }
            sys.close(fd);
        }
        if self.joins.is_empty() {
            return Ok(());
        }
        self.joined(sys)
    }

    /// In the cgroups: the descriptors are closed, then a new cgroup namespace is entered if
    /// one is wanted (rooted where the task now is).
    fn joined<S: Sys>(&self, sys: &S) -> Result<(), Fail> {
        for j in &self.joins {
            sys.close(j.fd.as_raw_fd());
        }
        if self.unshare_ns {
            sys.unshare(libc::CLONE_NEWCGROUP)
                .at(Step::Cgroup, self.joins.len())?;
        }
        Ok(())
    }

    /// The path of the `index`th join (or of the namespace step past the end).
    pub fn describe(&self, index: usize) -> String {
        match self.path(index) {
            Some(p) => format!("join cgroup {}", p.display()),
            None => "unshare the cgroup namespace".to_owned(),
        }
    }
}

/// `pid` in decimal into `out`; returns the length.
fn decimal(pid: libc::pid_t, out: &mut [u8; 12]) -> usize {
    let mut digits = [0u8; 12];
    let mut n = pid.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        out[i] = digits[len - 1 - i];
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

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
    fn the_parent_writes_the_pid_and_the_init_waits_for_its_word() {
        let (_dir, paths) = tmp_procs(2);
        let mut flags = libc::CLONE_NEWCGROUP as u64;
        let plan = plan(&paths, &mut flags).unwrap();
        assert!(plan.needs_parent());
        plan.join_pid(40312).unwrap();
        for p in &paths {
            assert_eq!(std::fs::read_to_string(p).unwrap(), "40312");
        }
        let sys = FakeSys::default();
        plan.await_join(&sys, 9).unwrap();
        let calls = sys.calls();
        assert_eq!(calls[0], "read(9, 1)");
        assert_eq!(calls[1], "close(9)");
        assert!(calls[2].starts_with("close(") && calls[3].starts_with("close("));
        assert_eq!(calls[4], format!("unshare({:#x})", libc::CLONE_NEWCGROUP));
    }

    #[test]
    fn no_word_from_the_parent_fails_the_init() {
        let (_dir, paths) = tmp_procs(1);
        let plan = plan(&paths, &mut 0).unwrap();
        let sys = FakeSys::default();
        sys.end_of_file();
        assert_eq!(
            plan.await_join(&sys, 9),
            Err(Fail::at(Step::Cgroup, 0, libc::EPIPE))
        );
    }

    /// A cgroup v1 directory: `cgroup.procs` and `tasks`.
    fn tmp_v1_dirs(n: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let paths = (0..n)
            .map(|i| {
                let d = dir.path().join(format!("controller{i}"));
                std::fs::create_dir(&d).unwrap();
                std::fs::write(d.join("cgroup.procs"), "").unwrap();
                std::fs::write(d.join("tasks"), "").unwrap();
                d.join("cgroup.procs")
            })
            .collect();
        (dir, paths)
    }

    #[test]
    fn on_cgroup_v1_the_init_moves_itself_through_tasks_without_the_parent() {
        let (_dir, paths) = tmp_v1_dirs(2);
        let mut flags = libc::CLONE_NEWCGROUP as u64;
        let plan = plan(&paths, &mut flags).unwrap();
        assert!(!plan.needs_parent());
        assert!(plan.describe(1).ends_with("controller1/tasks"));
        plan.join_pid(40312).unwrap();
        for p in &paths {
            assert_eq!(
                std::fs::read_to_string(p).unwrap(),
                "",
                "the parent wrote {p:?}"
            );
        }
        let sys = FakeSys::default();
        plan.await_join(&sys, -1).unwrap();
        let calls = sys.calls();
        assert!(calls[0].starts_with("write(") && calls[0].ends_with(", 0)"));
        assert!(calls[1].starts_with("write("));
        assert!(!calls.iter().any(|c| c.starts_with("read(")), "{calls:?}");
        assert_eq!(
            calls.last().unwrap(),
            &format!("unshare({:#x})", libc::CLONE_NEWCGROUP)
        );
    }

    #[test]
    fn decimal_pids() {
        let mut out = [0u8; 12];
        let n = decimal(7, &mut out);
        assert_eq!(&out[..n], b"7");
        let n = decimal(4194304, &mut out);
        assert_eq!(&out[..n], b"4194304");
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
