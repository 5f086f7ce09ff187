//! `exec`: one more process inside a running container (what `runc exec --process` does), with
//! the security settings the caller passes (normally the container init's own).
//!
//! The caller is multi-threaded and `setns` into a mount namespace refuses a task that shares
//! its filesystem information with other threads, so everything goes through fork-like clones:
//!
//! 1. the parent opens the container's namespaces (`/proc/<pid>/ns/*`, the ones that differ
//!    from its own) and `cgroup.procs` files, and computes argv, env, capabilities and the
//!    seccomp program, as for a container start;
//! 2. an intermediate child joins the cgroups and the namespaces (mount last: it changes what
//!    paths mean and sets the root to the container's), then clones the final process with
//!    `CLONE_PARENT`, so that it is the caller's child (waitable) and, being created after the
//!    `setns` into the pid namespace, a member of the container's pid namespace; the
//!    intermediate reports that pid and exits;
//! 3. the final process sets up stdio, the terminal, working directory, limits and privileges
//!    in the init's order and execs.
//!
//! A failure before exec in either child travels back over a close-on-exec pipe as a [`Fail`],
//! with the exit codes of a container start (127 not found, 126 cannot execute, 125 other).

use std::convert::Infallible;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, LinuxSeccomp, Process};

use crate::capabilities::{self, CapSets, CapabilityError};
use crate::cgroup::{self, CgroupError, CgroupPlan};
use crate::child::{self, fork_like, kill_and_reap, read_full, reap, Report, SignalsBlocked};
use crate::container::EXIT_START_FAILED;
use crate::failure::{self, Fail, FailAt, Step};
use crate::inroot::Create;
use crate::namespaces::{self, NamespaceError, NamespacePlan};
use crate::process::{self, ProcessError, ProcessPlan};
use crate::seccomp::{self, SeccompError, SeccompPlan};
use crate::sys::{Fd, Linux, Sys};
use crate::terminal::{self, TerminalError, TerminalPlan};
use crate::trampoline::{self, TrampolineError};

/// The namespaces an exec'd process joins, in `setns` order (mount last, see the module doc).
/// A user namespace is refused (containers have none); time namespaces are left alone.
const NAMESPACES: [(&str, LinuxNamespaceType); 6] = [
    ("ipc", LinuxNamespaceType::Ipc),
    ("uts", LinuxNamespaceType::Uts),
    ("net", LinuxNamespaceType::Network),
    ("pid", LinuxNamespaceType::Pid),
    ("cgroup", LinuxNamespaceType::Cgroup),
    ("mnt", LinuxNamespaceType::Mount),
];

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("container process {pid} is not running")]
    Gone {
        pid: libc::pid_t,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Process {
        path: PathBuf,
        #[source]
        source: ProcessError,
    },
    #[error("{}: {source}", path.display())]
    Capability {
        path: PathBuf,
        #[source]
        source: CapabilityError,
    },
    #[error("{}: {source}", path.display())]
    Seccomp {
        path: PathBuf,
        #[source]
        source: SeccompError,
    },
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    #[error(transparent)]
    Trampoline(#[from] TrampolineError),
    #[error("cannot {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A child failed before exec; `message` names the step and the path.
    #[error("{message}")]
    Child {
        message: String,
        step: Step,
        errno: i32,
        path: Option<PathBuf>,
    },
}

impl ExecError {
    /// Docker's exit code for this failure (as `ContainerError::exit_code`).
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::Child { step, errno, .. } => failure::exit_code(*step, *errno),
            _ => EXIT_START_FAILED,
        }
    }

    pub fn errno(&self) -> Option<i32> {
        match self {
            ExecError::Child { errno, .. } => Some(*errno),
            ExecError::Gone { .. } => Some(libc::ESRCH),
            ExecError::Read { source, .. } | ExecError::Io { source, .. } => source.raw_os_error(),
            ExecError::Namespace(NamespaceError::Open { source, .. }) => source.raw_os_error(),
            ExecError::Cgroup(e) => e.source.raw_os_error(),
            ExecError::Trampoline(e) => e.errno(),
            ExecError::Terminal(
                TerminalError::Socket { source } | TerminalError::Receive { source, .. },
            ) => source.raw_os_error(),
            _ => None,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            ExecError::Child { path, .. } => path.as_deref(),
            ExecError::Gone { path, .. }
            | ExecError::Read { path, .. }
            | ExecError::Parse { path, .. }
            | ExecError::Invalid { path, .. }
            | ExecError::Process { path, .. }
            | ExecError::Capability { path, .. }
            | ExecError::Seccomp { path, .. } => Some(path),
            ExecError::Namespace(NamespaceError::Open { path, .. }) => Some(path),
            ExecError::Cgroup(e) => Some(&e.path),
            ExecError::Terminal(e) => e.path(),
            ExecError::Trampoline(e) => e.path(),
            _ => None,
        }
    }
}

/// What to start, and where.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Host pid of a process of the container (its init).
    pub container_pid: libc::pid_t,
    /// An OCI `process` object (JSON): args, env, cwd, user, capabilities, noNewPrivileges,
    /// rlimits, terminal.
    pub process: PathBuf,
    /// An OCI `linux.seccomp` object (JSON), or no filter.
    pub seccomp: Option<PathBuf>,
    /// Where compiled seccomp programs are cached (as for a container start), or only in
    /// this process's memory.
    pub seccomp_cache: Option<PathBuf>,
    /// Descriptors (in the caller) that become the process's 0, 1 and 2.
    pub stdio: [RawFd; 3],
    /// `cgroup.procs` files of the container's cgroups, joined before anything else.
    pub cgroup_procs: Vec<PathBuf>,
    /// Make fd 0 (a terminal) the controlling terminal of a new session; also asked by
    /// `process.terminal`.
    pub terminal: bool,
}

/// Everything both children need, computed before the first clone.
pub struct ExecPlan {
    pub container_pid: libc::pid_t,
    pub namespaces: NamespacePlan,
    pub cgroups: CgroupPlan,
    pub process: ProcessPlan,
    pub caps: CapSets,
    pub last_cap: u32,
    pub seccomp: Option<SeccompPlan>,
    pub terminal: bool,
    /// A new pty of the container's devpts for the process ([`spawn_exec_pty`]).
    pub pty: Option<TerminalPlan>,
    pub empty_sigset: libc::sigset_t,
}

fn read(path: &Path) -> Result<Vec<u8>, ExecError> {
    std::fs::read(path).map_err(|source| ExecError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse_error(path: &Path) -> impl FnOnce(serde_json::Error) -> ExecError {
    let path = path.to_owned();
    move |source| ExecError::Parse { path, source }
}

/// Refuses what a container start would refuse in a process section.
fn validate(p: &Process, path: &Path) -> Result<(), ExecError> {
    let invalid = |reason: &str| ExecError::Invalid {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(invalid("args is empty"));
    }
    if !p.cwd().is_absolute() {
        return Err(invalid("cwd is not absolute"));
    }
    if p.command_line().is_some() {
        return Err(invalid("commandLine is not supported"));
    }
    Ok(())
}

/// ESRCH/ENOENT about the container's process mean it has exited; anything else is reported
/// as it is.
fn gone(pid: libc::pid_t, path: PathBuf) -> impl FnOnce(std::io::Error) -> ExecError {
    move |source| match source.raw_os_error() {
        Some(libc::ESRCH | libc::ENOENT) => ExecError::Gone { pid, path, source },
        _ => ExecError::Read { path, source },
    }
}

/// A pidfd on `pid`: fails with [`ExecError::Gone`] when there is no such process.
fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd, ExecError> {
    // SAFETY: integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(gone(pid, PathBuf::from(format!("/proc/{pid}")))(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: a descriptor the kernel just returned, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The container's namespaces that are not already ours (e.g. the network of `--network host`).
fn namespaces_of(pid: libc::pid_t) -> Result<Vec<LinuxNamespace>, ExecError> {
    let ns_dir = PathBuf::from(format!("/proc/{pid}/ns"));
    let differs = |name: &str| -> Result<bool, ExecError> {
        let theirs = ns_dir.join(name);
        let t = std::fs::metadata(&theirs).map_err(gone(pid, theirs))?;
        let ours = Path::new("/proc/self/ns").join(name);
        let o =
            std::fs::metadata(&ours).map_err(|source| ExecError::Read { path: ours, source })?;
        Ok((t.dev(), t.ino()) != (o.dev(), o.ino()))
    };
    if differs("user")? {
        return Err(ExecError::Invalid {
            path: ns_dir.join("user"),
            reason: "the container has its own user namespace, which barque does not join".into(),
        });
    }
    let mut out = Vec::new();
    for (name, typ) in NAMESPACES {
        if differs(name)? {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            ns.set_path(Some(ns_dir.join(name)));
            out.push(ns);
        }
    }
    Ok(out)
}

impl ExecPlan {
    pub fn build(opts: &ExecOptions) -> Result<ExecPlan, ExecError> {
        let pid = opts.container_pid;
        if pid <= 0 {
            return Err(ExecError::Invalid {
                path: PathBuf::from(format!("/proc/{pid}")),
                reason: "not a process id".into(),
            });
        }
        // Held while planning, to tell "still running" from "exited, pid reused".
        let pidfd = pidfd_open(pid)?;
        let spec: Process =
            serde_json::from_slice(&read(&opts.process)?).map_err(parse_error(&opts.process))?;
        validate(&spec, &opts.process)?;
        let in_process = |source| ExecError::Process {
            path: opts.process.clone(),
            source,
        };
        let process = process::plan(&spec, opts.stdio).map_err(in_process)?;
        let caps = CapSets::from_spec(spec.capabilities().as_ref()).map_err(|source| {
            ExecError::Capability {
                path: opts.process.clone(),
                source,
            }
        })?;
        let last_cap = capabilities::last_cap().map_err(|source| ExecError::Capability {
            path: PathBuf::from("/proc/sys/kernel/cap_last_cap"),
            source,
        })?;
        let seccomp = match &opts.seccomp {
            None => None,
            Some(path) => {
                let profile: LinuxSeccomp =
                    serde_json::from_slice(&read(path)?).map_err(parse_error(path))?;
                Some(
                    seccomp::plan(&profile, opts.seccomp_cache.as_deref()).map_err(|source| {
                        ExecError::Seccomp {
                            path: path.clone(),
                            source,
                        }
                    })?,
                )
            }
        };
        let joins = namespaces_of(pid)?;
        let namespaces = namespaces::plan(&joins).map_err(|e| match e {
            // The process exited between the check and the open.
            NamespaceError::Open { path, source } => gone(pid, path)(source),
            e => e.into(),
        })?;
        // No clone flags: cgroup.procs are only opened, never followed by a new namespace.
        let cgroups = cgroup::plan(&opts.cgroup_procs, &mut 0)?;
        // The namespaces opened above belong to `pid` only if it is still the process the
        // pidfd holds (not an exited one whose pid was reused meanwhile).
        // SAFETY: signal 0 on a pidfd we own checks liveness only.
        if unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                0,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        } != 0
        {
            return Err(gone(pid, PathBuf::from(format!("/proc/{pid}")))(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(ExecPlan {
            container_pid: pid,
            namespaces,
            cgroups,
            process,
            caps,
            last_cap,
            seccomp,
            terminal: opts.terminal || spec.terminal().unwrap_or(false),
            pty: None,
            empty_sigset: child::empty_sigset(),
        })
    }

    /// The parent's message for a child failure.
    fn explain(&self, fail: Fail) -> ExecError {
        let i = fail.index as usize;
        let reason = failure::reason(fail.errno);
        let child = |message: String, path: Option<PathBuf>| ExecError::Child {
            message,
            step: fail.step,
            errno: fail.errno,
            path,
        };
        match fail.step {
            Step::Exec => {
                let (name, found) = self.process.describe_exec(i);
                let message = if found {
                    format!("exec {name}: {reason}")
                } else {
                    format!("exec: \"{name}\": executable file not found in $PATH")
                };
                child(message, Some(PathBuf::from(name)))
            }
            Step::Cwd => {
                let p = self.process.cwd_display().to_owned();
                let why = if fail.errno == libc::ELOOP || fail.errno == libc::EXDEV {
                    " (it does not resolve inside the container's rootfs)"
                } else {
                    ""
                };
                child(
                    format!("cannot change to working directory {}{why}: {reason}", p.display()),
                    Some(p),
                )
            }
            Step::JoinNamespace => match self.namespaces.joins.get(i) {
                Some(j) => child(
                    format!("cannot join namespace {}: {reason}", j.path.display()),
                    Some(j.path.clone()),
                ),
                // Past the joins: the clone into them (ENOMEM once the pid namespace's init
                // has exited).
                None => child(
                    format!(
                        "cannot start a process in the namespaces of container process {}: {reason}",
                        self.container_pid
                    ),
                    Some(PathBuf::from(format!("/proc/{}", self.container_pid))),
                ),
            },
            Step::Cgroup => child(
                format!("cannot {}: {reason}", self.cgroups.describe(i)),
                self.cgroups.path(i).map(Path::to_path_buf),
            ),
            Step::Rlimit => {
                let name = self.process.rlimits.get(i).map_or("", |l| l.name.as_str());
                child(format!("cannot set rlimit {name}: {reason}"), None)
            }
            Step::Terminal if self.pty.is_some() => {
                let (what, path) = TerminalPlan::describe(fail.index);
                let on = path
                    .as_ref()
                    .map(|p| format!(" {}", p.display()))
                    .unwrap_or_default();
                child(format!("cannot {what}{on}: {reason}"), path)
            }
            Step::User => child(
                format!(
                    "cannot switch user to uid {} gid {} groups {:?}: {reason}",
                    self.process.uid, self.process.gid, self.process.groups
                ),
                None,
            ),
            step => child(format!("cannot {}: {reason}", step.describe()), None),
        }
    }
}

/// The intermediate child, before it clones: into the container's cgroups and namespaces.
pub(crate) fn enter<S: Sys>(sys: &S, plan: &ExecPlan) -> Result<(), Fail> {
    // From here on this task holds the caller's memory inside the container's namespaces:
    // nothing in there may ptrace it or open its /proc/<pid>/exe, fds or mem (CVE-2019-5736).
    // The final process inherits this; execve resets it.
    sys.prctl(libc::PR_SET_DUMPABLE, 0, 0).on(Step::Dumpable)?;
    plan.cgroups.join(sys)?;
    plan.namespaces.join(sys)
}

/// The final process, inside every namespace: everything up to exec, in the init's order.
pub(crate) fn run<S: Sys>(sys: &S, plan: &ExecPlan) -> Result<Infallible, Fail> {
    // Signals arrive blocked; drop the caller's handlers and ignores before they can matter.
    sys.reset_signal_dispositions();
    let process = &plan.process;
    if let Some(pty) = &plan.pty {
        // The pty's slave becomes 0, 1 and 2: the caller's stdio is not used (may be closed).
        // After the setns into the mount namespace "/" is the container's: its devpts.
        let root = Fd::new(
            sys,
            sys.openat(libc::AT_FDCWD, c"/", libc::O_PATH | libc::O_DIRECTORY, 0)
                .on(Step::Terminal)?,
        );
        pty.setup(sys, root.raw())?;
    } else {
        process.setup_stdio(sys)?;
        if plan.terminal {
            sys.setsid().on(Step::Terminal)?;
            sys.set_controlling_tty(0).on(Step::Terminal)?;
        }
    }
    // After the setns into the mount namespace "/" is the container's root. The working
    // directory is resolved inside it and must exist (unlike the init's, it is not created:
    // nothing of a running container's tree is changed by an exec).
    {
        let root = Fd::new(
            sys,
            sys.openat(libc::AT_FDCWD, c"/", libc::O_PATH | libc::O_DIRECTORY, 0)
                .on(Step::Cwd)?,
        );
        let cwd = process
            .cwd
            .open(sys, root.raw(), Create::Nothing)
            .on(Step::Cwd)?;
        sys.fchdir(cwd.raw()).on(Step::Cwd)?;
    }

    process.set_rlimits(sys)?;
    capabilities::drop_bounding(sys, &plan.caps, plan.last_cap)?;
    // As in the init: without no_new_privs the filter needs CAP_SYS_ADMIN, so load it first.
    if !process.no_new_privileges {
        if let Some(s) = &plan.seccomp {
            s.load(sys)?;
        }
    }
    capabilities::switch_user_and_set(sys, &plan.caps, process.uid, process.gid, &process.groups)?;
    process.set_no_new_privileges(sys)?;
    sys.umask(process.umask);
    sys.cloexec_from(3).on(Step::CloseFds)?;
    if process.no_new_privileges {
        if let Some(s) = &plan.seccomp {
            s.load(sys)?;
        }
    }
    sys.set_signal_mask(&plan.empty_sigset).on(Step::Signals)?;
    Err(process.exec(sys))
}

/// The intermediate's side: never returns.
fn intermediate(plan: &ExecPlan, error_pipe: RawFd, pid_pipe: RawFd) -> ! {
    let steps = || {
        enter(&Linux, plan)?;
        match fork_like(libc::CLONE_PARENT as u64) {
            Ok(0) => final_process(plan, error_pipe),
            Ok(pid) => {
                // Nothing to do if the parent is gone: the final process reports to it too.
                let _ = Linux.write_all(pid_pipe, &pid.to_ne_bytes());
                Ok(())
            }
            Err(e) => Err(Fail::at(
                Step::JoinNamespace,
                plan.namespaces.joins.len(),
                e,
            )),
        }
    };
    match child::catch_panic(steps, Fail::new(Step::JoinNamespace, libc::EIO)) {
        // SAFETY: leave without running atexit handlers or destructors of the caller's state.
        Ok(()) => unsafe { libc::_exit(0) },
        Err(fail) => child::exit_failed(error_pipe, fail, EXIT_START_FAILED),
    }
}

/// The final process's side: execs or exits.
fn final_process(plan: &ExecPlan, error_pipe: RawFd) -> ! {
    let steps = || run(&Linux, plan);
    let fail = match child::catch_panic(steps, Fail::new(Step::Exec, libc::EIO)) {
        Err(fail) => fail,
        Ok(never) => match never {},
    };
    child::exit_failed(error_pipe, fail, EXIT_START_FAILED)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ExecError> {
    child::cloexec_pipe().map_err(|source| ExecError::Io {
        op: "create a pipe",
        source,
    })
}

/// Starts `opts.process` in the container of `opts.container_pid`; returns its host pid once it
/// has exec'd. The caller owns the child: wait for it with [`container::wait`].
///
/// [`container::wait`]: crate::container::wait
pub fn spawn_exec(opts: &ExecOptions) -> Result<libc::pid_t, ExecError> {
    start(&mut ExecPlan::build(opts)?)
}

/// As [`spawn_exec`], on a new pty the process opens in the container's own devpts (so that
/// `tty` inside names it, as for `run -t`), of `size` (rows, cols) from the start; it is the
/// process's controlling terminal and its 0, 1 and 2. Returns the pid and the pty's master
/// (close-on-exec), which the caller relays and resizes.
pub fn spawn_exec_pty(
    opts: &ExecOptions,
    size: Option<(u16, u16)>,
) -> Result<(libc::pid_t, OwnedFd), ExecError> {
    let mut plan = ExecPlan::build(opts)?;
    let (ours, theirs) = terminal::socketpair()?;
    let mut pty = terminal::plan_exec(plan.process.uid, size);
    pty.socket = theirs.as_raw_fd();
    plan.pty = Some(pty);
    let pid = start(&mut plan)?;
    drop(theirs);
    // Sent before the process exec'd, so it is waiting in the socket.
    match terminal::receive_master(&ours) {
        Ok(master) => Ok((pid, master)),
        Err(e) => {
            kill_and_reap(pid);
            Err(e.into())
        }
    }
}

/// Clones the helper that starts `plan`'s process; its pid once it has exec'd.
fn start(plan: &mut ExecPlan) -> Result<libc::pid_t, ExecError> {
    let (error_read, error_write) = pipe()?;
    let (pid_read, pid_write) = pipe()?;
    plan.process
        .exec_through(trampoline::sealed_fd()?, error_write.as_raw_fd());
    let plan = &*plan;

    // The final process resets the signals; the caller's mask is back right after the clone.
    let blocked = SignalsBlocked::new();
    let cloned = fork_like(0);
    if let Ok(0) = cloned {
        intermediate(plan, error_write.as_raw_fd(), pid_write.as_raw_fd());
    }
    drop(blocked);
    let middle = cloned.map_err(|e| ExecError::Io {
        op: "clone the exec helper",
        source: std::io::Error::from_raw_os_error(e),
    })?;
    drop(error_write);
    drop(pid_write);

    // The pid arrives before the intermediate exits; EOF without it means it failed.
    let mut pid_buf = [0u8; 4];
    let pid_got = read_full(pid_read, &mut pid_buf);
    reap(middle);
    let pid = match pid_got {
        Ok(4) => Some(libc::pid_t::from_ne_bytes(pid_buf)),
        _ => None,
    };
    // EOF once the final process has exec'd (or both children are gone).
    let report = child::read_report(error_read);
    if let (Ok(Report::Execed), Some(pid)) = (&report, pid) {
        return Ok(pid);
    }
    if let Some(pid) = pid {
        kill_and_reap(pid);
    }
    match report {
        Ok(Report::Failed(fail)) => Err(plan.explain(fail)),
        Err(source) => Err(ExecError::Io {
            op: "read the exec status",
            source,
        }),
        Ok(_) => Err(ExecError::Child {
            message: "the exec helper sent a malformed status".into(),
            step: Step::Exec,
            errno: libc::EPROTO,
            path: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND};
    use crate::fake_sys::FakeSys;

    fn write(dir: &Path, name: &str, v: serde_json::Value) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    }

    fn options(dir: &Path, process: serde_json::Value) -> ExecOptions {
        ExecOptions {
            // Our own pid: every namespace is ours, so nothing is joined.
            container_pid: std::process::id() as libc::pid_t,
            process: write(dir, "process.json", process),
            seccomp: None,
            seccomp_cache: None,
            stdio: [0, 1, 2],
            cgroup_procs: Vec::new(),
            terminal: false,
        }
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "args": ["sh"], "cwd": "/work", "env": ["PATH=/bin"],
            "user": {"uid": 1000, "gid": 100, "additionalGids": [5]},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 64, "soft": 64}],
            "noNewPrivileges": true
        })
    }

    #[test]
    fn plans_from_process_json() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path(), base());
        let plan = ExecPlan::build(&opts).unwrap();
        // Nothing to join in our own namespaces.
        assert!(plan.namespaces.joins.is_empty());
        assert_eq!(plan.namespaces.clone_flags, 0);
        assert_eq!((plan.process.uid, plan.process.gid), (1000, 100));
        assert_eq!(plan.caps.effective, 1 << 5);
        assert!(plan.process.no_new_privileges && !plan.terminal);

        let mut p = base();
        p["terminal"] = true.into();
        assert!(ExecPlan::build(&options(dir.path(), p)).unwrap().terminal);

        let mut p = base();
        p["args"] = serde_json::json!([]);
        let e = ExecPlan::build(&options(dir.path(), p)).err().unwrap();
        assert!(matches!(e, ExecError::Invalid { .. }), "{e}");
        assert_eq!(e.exit_code(), EXIT_START_FAILED);
        assert!(e.path().unwrap().ends_with("process.json"));

        let mut opts = options(dir.path(), base());
        opts.seccomp = Some(dir.path().join("missing.json"));
        let e = ExecPlan::build(&opts).err().unwrap();
        assert!(matches!(e, ExecError::Read { .. }));
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }

    #[test]
    fn a_gone_container_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path(), base());
        // Reaped child: its pid is free (and not reused this quickly).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        opts.container_pid = child.id() as libc::pid_t;
        let e = ExecPlan::build(&opts).err().unwrap();
        assert!(matches!(e, ExecError::Gone { .. }), "{e}");
        assert!(e.to_string().contains(&child.id().to_string()), "{e}");
        assert_eq!(e.errno(), Some(libc::ESRCH));
        assert_eq!(e.exit_code(), EXIT_START_FAILED);
    }

    #[test]
    fn joins_cgroups_then_namespaces_mount_last() {
        let dir = tempfile::tempdir().unwrap();
        let procs = dir.path().join("cgroup.procs");
        std::fs::write(&procs, "").unwrap();
        let mut opts = options(dir.path(), base());
        opts.cgroup_procs = vec![procs];
        let mut plan = ExecPlan::build(&opts).unwrap();
        // Stand-ins for another process's namespaces (the ones listed, in NAMESPACES order).
        let joins: Vec<LinuxNamespace> = ["pid", "mnt", "net"]
            .iter()
            .map(|n| {
                let (_, typ) = NAMESPACES.iter().find(|(name, _)| name == n).unwrap();
                let mut ns = LinuxNamespace::default();
                ns.set_typ(*typ);
                ns.set_path(Some(PathBuf::from(format!("/proc/self/ns/{n}"))));
                ns
            })
            .collect();
        plan.namespaces = namespaces::plan(&joins).unwrap();
        let sys = FakeSys::default();
        enter(&sys, &plan).unwrap();
        let calls = sys.calls();
        assert_eq!(calls[0], "prctl(4, 0, 0)"); // PR_SET_DUMPABLE
        assert!(calls[1].starts_with("write(") && calls[1].ends_with(", 0)"));
        assert!(calls[2].starts_with("close("));
        let setns: Vec<&str> = calls[3..]
            .iter()
            .map(|c| c.rsplit(", ").next().unwrap())
            .collect();
        let flag = |f: i32| format!("{f:#x})");
        assert_eq!(
            setns,
            [
                flag(libc::CLONE_NEWPID),
                flag(libc::CLONE_NEWNET),
                flag(libc::CLONE_NEWNS)
            ]
        );

        let sys = FakeSys::default();
        sys.fail("setns", libc::EPERM);
        let fail = enter(&sys, &plan).unwrap_err();
        assert_eq!(fail, Fail::at(Step::JoinNamespace, 0, libc::EPERM));
        let e = plan.explain(fail);
        assert!(e.to_string().contains("/proc/self/ns/pid"), "{e}");
    }

    #[test]
    fn final_process_steps_in_the_inits_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = base();
        p["terminal"] = true.into();
        let mut plan = ExecPlan::build(&options(dir.path(), p)).unwrap();
        plan.seccomp = Some(SeccompPlan {
            program: vec![libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            }]
            .into(),
            flags: 0,
        });
        plan.process.exec_through(40, 41);
        let sys = FakeSys::with_paths(&["work"]);
        let fail = run(&sys, &plan).unwrap_err();
        assert_eq!(fail.step, Step::ExecHelper);
        let calls = sys.calls();
        let at = |prefix: &str| {
            calls
                .iter()
                .position(|c| c.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {calls:?}"))
        };
        let order = [
            "reset_signal_dispositions",
            "dup_above(0, 3)",
            "setsid",
            "set_controlling_tty(0)",
            "openat(",
            "fchdir(/work)",
            "setrlimit(7, 64, 64)",
            "prctl(24, 0, 0)", // bounding: CAP_CHOWN dropped
            "setgroups([5])",
            "setresgid(100)",
            "setresuid(1000)",
            "capset(0x20, 0x20, 0x0)",
            "prctl(38, 1, 0)", // PR_SET_NO_NEW_PRIVS
            "umask(22)",
            "cloexec_from(3)",
            "seccomp(0, 1 insns)",
            "set_signal_mask",
            "keep_across_exec(41)",
            r#"execve_fd(40, ["barque-trampoline/1", "41", "1", "/bin/sh", "sh"])"#,
        ];
        let positions: Vec<usize> = order.iter().map(|p| at(p)).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "{order:?} at {positions:?} in {calls:?}"
        );
        // Nothing is created for the working directory.
        assert!(!calls.iter().any(|c| c.starts_with("mkdirat")));

        // Without no_new_privs the filter goes in before the user switch (CAP_SYS_ADMIN).
        plan.process.no_new_privileges = false;
        let sys = FakeSys::with_paths(&["work"]);
        run(&sys, &plan).unwrap_err();
        let calls = sys.calls();
        let seccomp = calls.iter().position(|c| c.starts_with("seccomp")).unwrap();
        let setresuid = calls
            .iter()
            .position(|c| c.starts_with("setresuid"))
            .unwrap();
        assert!(seccomp < setresuid, "{calls:?}");
        assert!(!calls.iter().any(|c| c.starts_with("prctl(38")));
    }

    #[test]
    fn a_pty_is_opened_in_the_containers_devpts_before_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = ExecPlan::build(&options(dir.path(), base())).unwrap();
        let mut pty = terminal::plan_exec(1000, Some((21, 77)));
        pty.socket = 9;
        plan.pty = Some(pty);
        let sys = FakeSys::with_paths(&["work", "dev", "dev/pts", "dev/pts/ptmx*"]);
        // Reached the exec (no trampoline in a plan that was never started).
        assert_eq!(run(&sys, &plan).unwrap_err().step, Step::ExecHelper);
        let calls = sys.calls();
        let at = |prefix: &str| {
            calls
                .iter()
                .position(|c| c.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {calls:?}"))
        };
        assert!(at("send_fd(9, dev/pts/ptmx)") < at("setsid"));
        assert!(at("dup2(pts:dev/pts/ptmx, 2)") < at("fchdir(/work)"));
        // The caller's stdio is not used: the pty's slave is the terminal and the stdio.
        assert!(
            !calls
                .iter()
                .any(|c| c.starts_with("dup_above") || c == "set_controlling_tty(0)"),
            "{calls:?}"
        );

        let sys = FakeSys::with_paths(&["work"]);
        let e = plan.explain(run(&sys, &plan).unwrap_err());
        assert_eq!(e.exit_code(), EXIT_START_FAILED);
        assert_eq!(e.path(), Some(Path::new("/dev/pts/ptmx")));
        assert!(
            e.to_string().starts_with("cannot open /dev/pts/ptmx: "),
            "{e}"
        );
    }

    #[test]
    fn failures_map_to_docker_codes() {
        let dir = tempfile::tempdir().unwrap();
        let plan = ExecPlan::build(&options(dir.path(), base())).unwrap();
        // A missing working directory is not created.
        let sys = FakeSys::with_paths(&[]);
        let fail = run(&sys, &plan).unwrap_err();
        assert_eq!(fail, Fail::new(Step::Cwd, libc::ENOENT));
        let e = plan.explain(fail);
        assert_eq!(e.exit_code(), EXIT_START_FAILED);
        assert_eq!(e.path(), Some(Path::new("/work")));
        assert!(e.to_string().contains("working directory /work"), "{e}");

        // Missing everywhere on PATH (the trampoline's record): 127 with Docker's message.
        let e = plan.explain(Fail::at(Step::Exec, u32::MAX as usize, libc::ENOENT));
        assert_eq!(e.exit_code(), EXIT_NOT_FOUND);
        assert_eq!(
            e.to_string(),
            "exec: \"sh\": executable file not found in $PATH"
        );

        let e = plan.explain(Fail::at(Step::Exec, 0, libc::EACCES));
        assert_eq!(e.exit_code(), EXIT_CANNOT_EXECUTE);
        assert_eq!(e.path(), Some(Path::new("/bin/sh")));

        // The clone into the namespaces, past the last join.
        let e = plan.explain(Fail::at(Step::JoinNamespace, 0, libc::ENOMEM));
        assert!(e
            .to_string()
            .contains(&format!("container process {}", plan.container_pid)));
    }
}
