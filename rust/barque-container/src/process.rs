//! `process`: stdio, working directory, rlimits, user and groups, `no_new_privs`, environment,
//! and the exec itself.
//!
//! Everything the child needs is built here in the parent: argv and envp as NULL-terminated
//! pointer arrays into owned `CString`s, and the list of paths `execve` will try (the `PATH`
//! search of `execvp`, done without allocating in the child).

use std::ffi::{c_char, CString};
use std::os::fd::RawFd;
use std::path::Path;

use oci_spec::runtime::{PosixRlimit, PosixRlimitType, Process};

use crate::failure::{Fail, FailAt, Step};
use crate::inroot::{Create, InRootError, InRootPath};
use crate::sys::Sys;
use crate::trampoline::HelperExec;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("process.{field}: {value:?} contains a NUL byte")]
    Nul { field: &'static str, value: String },
    #[error("process.cwd: {0}")]
    Cwd(#[from] InRootError),
    #[error("rlimit {name}: soft limit {soft} is above the hard limit {hard}")]
    Rlimit { name: String, soft: u64, hard: u64 },
    #[error("cannot read the current rlimit {name}: {source}")]
    CurrentRlimit {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// `setrlimit` values: the spec's limits clamped to the current hard limit (raising a hard
/// limit needs CAP_SYS_RESOURCE, which a container engine should not rely on).
pub fn clamp(soft: u64, hard: u64, current_hard: u64) -> (u64, u64) {
    let hard = hard.min(current_hard);
    (soft.min(hard), hard)
}

fn resource(t: PosixRlimitType) -> u32 {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

fn current_hard(resource: u32, name: &str) -> Result<u64, ProcessError> {
    let mut lim = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer.
    if unsafe { libc::getrlimit64(resource as _, &mut lim) } != 0 {
        return Err(ProcessError::CurrentRlimit {
            name: name.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(lim.rlim_max)
}

/// One clamped rlimit: (resource, soft, hard, name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
    pub name: String,
}

pub fn rlimits(
    limits: &[PosixRlimit],
    current: impl Fn(u32, &str) -> Result<u64, ProcessError>,
) -> Result<Vec<Rlimit>, ProcessError> {
    limits
        .iter()
        .map(|l| {
            let name = l.typ().to_string();
            if l.soft() > l.hard() {
                return Err(ProcessError::Rlimit {
                    name,
                    soft: l.soft(),
                    hard: l.hard(),
                });
            }
            let resource = resource(l.typ());
            let (soft, hard) = clamp(l.soft(), l.hard(), current(resource, &name)?);
            Ok(Rlimit {
                resource,
                soft,
                hard,
                name,
            })
        })
        .collect()
}

/// What `execve` tries, in order: `arg0` itself when it has a slash, else each `PATH` entry.
pub fn exec_candidates(arg0: &str, env: &[String]) -> Vec<String> {
    if arg0.contains('/') {
        return vec![arg0.to_owned()];
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            format!("{}/{arg0}", dir.trim_end_matches('/'))
        })
        .collect()
}

fn cstrings(field: &'static str, v: &[String]) -> Result<Vec<CString>, ProcessError> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| ProcessError::Nul {
                field,
                value: s.clone(),
            })
        })
        .collect()
}

fn pointers(v: &[CString]) -> Vec<*const c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The process half of the plan.
#[derive(Debug)]
pub struct ProcessPlan {
    pub stdio: [RawFd; 3],
    pub cwd: InRootPath,
    pub rlimits: Vec<Rlimit>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: u32,
    pub no_new_privileges: bool,
    pub arg0: String,
    pub candidates: Vec<CString>,
    _argv: Vec<CString>,
    _env: Vec<CString>,
    env_ptrs: Vec<*const c_char>,
    /// How the command is exec'd: through the sealed trampoline (see [`trampoline`]), set by
    /// [`ProcessPlan::exec_through`] once the status pipe exists.
    ///
    /// [`trampoline`]: crate::trampoline
    pub helper: Option<HelperExec>,
}

pub fn plan(process: &Process, stdio: [RawFd; 3]) -> Result<ProcessPlan, ProcessError> {
    let args = process.args().clone().unwrap_or_default();
    let env = process.env().clone().unwrap_or_default();
    let argv = cstrings("args", &args)?;
    let env_c = cstrings("env", &env)?;
    let arg0 = args.first().cloned().unwrap_or_default();
    let candidates = cstrings("args", &exec_candidates(&arg0, &env))?;
    let user = process.user();
    let rlimits = rlimits(
        process.rlimits().as_deref().unwrap_or_default(),
        current_hard,
    )?;
    Ok(ProcessPlan {
        stdio,
        cwd: InRootPath::new(process.cwd())?,
        rlimits,
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask().unwrap_or(0o022),
        no_new_privileges: process.no_new_privileges().unwrap_or(false),
        arg0,
        env_ptrs: pointers(&env_c),
        helper: None,
        _argv: argv,
        _env: env_c,
        candidates,
    })
}

impl ProcessPlan {
    /// Child side, first thing: the caller's fds become 0, 1 and 2 (going through copies
    /// above 2 so that e.g. stdout=0 and stdin=1 do not clobber each other).
    pub fn setup_stdio<S: Sys>(&self, sys: &S) -> Result<(), Fail> {
        let mut copies = [0; 3];
        for (i, fd) in self.stdio.iter().enumerate() {
            copies[i] = sys.dup_above(*fd, 3).at(Step::Stdio, i)?;
        }
        for (i, fd) in copies.iter().enumerate() {
            sys.dup2(*fd, i as RawFd).at(Step::Stdio, i)?;
            sys.close(*fd);
        }
        Ok(())
    }

    /// Child side, after `pivot_root`: creates the working directory if missing (never
    /// following anything out of the root) and enters it.
    pub fn enter_cwd<S: Sys>(&self, sys: &S, root: RawFd) -> Result<(), Fail> {
        let fd = self.cwd.open(sys, root, Create::Dirs).on(Step::Cwd)?;
        sys.fchdir(fd.raw()).on(Step::Cwd)
    }

    pub fn set_rlimits<S: Sys>(&self, sys: &S) -> Result<(), Fail> {
        for (i, l) in self.rlimits.iter().enumerate() {
            sys.setrlimit(l.resource, l.soft, l.hard)
                .at(Step::Rlimit, i)?;
        }
        Ok(())
    }

    pub fn set_no_new_privileges<S: Sys>(&self, sys: &S) -> Result<(), Fail> {
        if self.no_new_privileges {
            sys.prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)
                .on(Step::NoNewPrivileges)?;
        }
        Ok(())
    }

    /// The command is exec'd by the trampoline of sealed copy `helper_fd`, which reports a
    /// failed exec on `report_fd` as this process would.
    pub fn exec_through(&mut self, helper_fd: RawFd, report_fd: RawFd) {
        self.helper = Some(HelperExec::new(
            helper_fd,
            report_fd,
            &self.candidates,
            &self._argv,
        ));
    }

    /// Runs the trampoline, which tries each candidate like `execvp` (a missing file moves
    /// on, a permission error is remembered, anything else stops). Returns only on failure
    /// to start the trampoline; the command's own exec failure comes from the trampoline.
    pub fn exec<S: Sys>(&self, sys: &S) -> Fail {
        match &self.helper {
            Some(helper) => helper.exec(sys, &self.env_ptrs),
            // Never exec the command from this (host) program: see `trampoline`.
            None => Fail::new(Step::ExecHelper, libc::ENOEXEC),
        }
    }

    /// Human name of exec candidate `index` (the bare command when none matched).
    pub fn describe_exec(&self, index: usize) -> (String, bool) {
        match self.candidates.get(index) {
            Some(c) => (c.to_string_lossy().into_owned(), true),
            None => (self.arg0.clone(), false),
        }
    }

    pub fn cwd_display(&self) -> &Path {
        &self.cwd.display
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    #[test]
    fn clamping() {
        assert_eq!(clamp(1024, 4096, 1 << 20), (1024, 4096));
        assert_eq!(clamp(1 << 21, 1 << 22, 1 << 20), (1 << 20, 1 << 20));
        assert_eq!(clamp(10, u64::MAX, 524288), (10, 524288));
    }

    #[test]
    fn rlimits_from_spec() {
        let limits: Vec<PosixRlimit> = serde_json::from_value(serde_json::json!([
            {"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576},
            {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}
        ]))
        .unwrap();
        let out = rlimits(&limits, |_, _| Ok(65536)).unwrap();
        assert_eq!(out[0].resource, libc::RLIMIT_NOFILE);
        assert_eq!((out[0].soft, out[0].hard), (65536, 65536));
        assert_eq!((out[1].soft, out[1].hard), (0, 0));
        let bad: Vec<PosixRlimit> = serde_json::from_value(serde_json::json!([
            {"type": "RLIMIT_NOFILE", "hard": 1, "soft": 2}
        ]))
        .unwrap();
        assert!(matches!(
            rlimits(&bad, |_, _| Ok(9)),
            Err(ProcessError::Rlimit { .. })
        ));
    }

    #[test]
    fn path_search() {
        assert_eq!(exec_candidates("/bin/sh", &[]), ["/bin/sh"]);
        assert_eq!(exec_candidates("./x", &[]), ["./x"]);
        assert_eq!(
            exec_candidates("sh", &["PATH=/usr/bin:/bin/".into()]),
            ["/usr/bin/sh", "/bin/sh"]
        );
        assert_eq!(exec_candidates("sh", &[]).len(), 6);
    }

    fn process(v: serde_json::Value) -> Process {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn exec_goes_through_the_trampoline_only() {
        let mut p = plan(
            &process(serde_json::json!({
                "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["x", "-v"], "env": ["PATH=/a:/b"]
            })),
            [0, 1, 2],
        )
        .unwrap();
        // Without a trampoline nothing is exec'd (the host program would be exposed).
        let sys = FakeSys::default();
        assert_eq!(p.exec(&sys), Fail::new(Step::ExecHelper, libc::ENOEXEC));
        assert!(sys.calls().is_empty());
        p.exec_through(7, 5);
        let sys = FakeSys::default();
        p.exec(&sys);
        assert_eq!(
            sys.calls(),
            [
                "keep_across_exec(5)",
                r#"execve_fd(7, ["barque-trampoline/1", "5", "2", "/a/x", "/b/x", "x", "-v"])"#
            ]
        );
        // The trampoline's records name the candidate, or the bare command when none matched.
        assert_eq!(p.describe_exec(1), ("/b/x".to_owned(), true));
        assert_eq!(p.describe_exec(u32::MAX as usize), ("x".to_owned(), false));
    }

    #[test]
    fn cwd_is_created_inside_the_root() {
        let p = plan(
            &process(serde_json::json!({"user": {"uid": 0, "gid": 0}, "cwd": "/work/dir", "args": ["x"]})),
            [0, 1, 2],
        )
        .unwrap();
        let sys = FakeSys::with_paths(&["work"]);
        p.enter_cwd(&sys, 3).unwrap();
        assert_eq!(sys.calls(), ["mkdirat(work/dir, 755)", "fchdir(/work/dir)"]);
        // A magic link is refused by openat2 (ELOOP), and nothing is created.
        let sys = FakeSys::with_paths(&["proc", "proc/self", "proc/self/fd"]);
        sys.fail("open_in_root(proc/self/fd/7)", libc::ELOOP);
        let p = plan(
            &process(serde_json::json!({"user": {"uid": 0, "gid": 0}, "cwd": "/proc/self/fd/7", "args": ["x"]})),
            [0, 1, 2],
        )
        .unwrap();
        assert_eq!(p.enter_cwd(&sys, 3), Err(Fail::new(Step::Cwd, libc::ELOOP)));
        assert!(sys.calls().is_empty(), "{:?}", sys.calls());
    }

    #[test]
    fn stdio_goes_through_copies() {
        let p = plan(
            &process(serde_json::json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["x"]})),
            [1, 0, 2],
        )
        .unwrap();
        let sys = FakeSys::default();
        p.setup_stdio(&sys).unwrap();
        let calls = sys.calls();
        assert_eq!(
            &calls[..3],
            ["dup_above(1, 3)", "dup_above(0, 3)", "dup_above(2, 3)"]
        );
        assert_eq!(calls[3], "dup2(dup1, 0)");
    }
}
