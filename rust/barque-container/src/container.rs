//! The container lifecycle: plan everything from the bundle, clone the init into its new
//! namespaces, learn over a close-on-exec pipe whether it reached `execve`, then wait or signal.
//!
//! Exit codes follow Docker: 127 when the executable is not found, 126 when it cannot be
//! executed, 125 for any other failure to start.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::capabilities::{self, CapSets, CapabilityError};
use crate::cgroup::{self, CgroupError, CgroupPlan};
use crate::child::{self, kill_and_reap, Report, SignalsBlocked};
use crate::devices::{self, DeviceError, DevicesPlan};
use crate::failure::{self, Fail, Step};
use crate::hostname::{self, HostnameError, HostnamePlan};
use crate::init;
use crate::inroot::InRootError;
use crate::masked::{self, MaskPlan};
use crate::mounts::{self, MountError, MountPlan};
use crate::namespaces::{self, NamespaceError, NamespacePlan};
use crate::process::{self, ProcessError, ProcessPlan};
use crate::rootfs::{self, RootfsError, RootfsPlan};
use crate::seccomp::{self, SeccompError, SeccompPlan};
use crate::spec::{self, SpecError};
use crate::start_wait::StartWait;
use crate::sys::Linux;
use crate::sysctl::{self, SysctlError, SysctlPlan};
use crate::terminal::{self, TerminalError, TerminalPlan};
use crate::trampoline::{self, TrampolineError};

/// Docker's exit codes for a container that could not start.
pub const EXIT_START_FAILED: i32 = 125;
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{}: {source}", bundle.display())]
    Rootfs {
        bundle: PathBuf,
        #[source]
        source: RootfsError,
    },
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("maskedPaths/readonlyPaths: {0}")]
    Mask(#[from] InRootError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Hostname(#[from] HostnameError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    #[error(transparent)]
    Trampoline(#[from] TrampolineError),
    #[error("{what} is not supported yet")]
    Unsupported { what: &'static str },
    #[error("cannot {op}{}: {source}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Io {
        op: &'static str,
        path: Option<PathBuf>,
        #[source]
        source: std::io::Error,
    },
    /// The init failed before exec; `message` names the step and the path.
    #[error("{message}")]
    Child {
        message: String,
        step: Step,
        errno: i32,
        path: Option<PathBuf>,
    },
}

impl ContainerError {
    /// Docker's exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ContainerError::Child { step, errno, .. } => failure::exit_code(*step, *errno),
            _ => EXIT_START_FAILED,
        }
    }

    pub fn errno(&self) -> Option<i32> {
        match self {
            ContainerError::Child { errno, .. } => Some(*errno),
            ContainerError::Io { source, .. } => source.raw_os_error(),
            ContainerError::Cgroup(e) => e.source.raw_os_error(),
            ContainerError::Trampoline(e) => e.errno(),
            _ => None,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            ContainerError::Child { path, .. } | ContainerError::Io { path, .. } => path.as_deref(),
            ContainerError::Spec(e) => Some(e.path()),
            ContainerError::Rootfs { source, .. } => source.path(),
            ContainerError::Cgroup(e) => Some(&e.path),
            ContainerError::Terminal(e) => e.path(),
            ContainerError::Trampoline(e) => e.path(),
            _ => None,
        }
    }
}

fn io(op: &'static str, path: Option<&Path>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let path = path.map(Path::to_owned);
    move |source| ContainerError::Io { op, path, source }
}

/// Everything the init needs, computed before clone.
pub struct Plan {
    pub namespaces: NamespacePlan,
    pub cgroups: CgroupPlan,
    pub rootfs: RootfsPlan,
    pub mounts: Vec<MountPlan>,
    pub devices: DevicesPlan,
    pub masks: MaskPlan,
    pub hostname: HostnamePlan,
    pub sysctl: SysctlPlan,
    pub process: ProcessPlan,
    pub caps: CapSets,
    pub last_cap: u32,
    pub seccomp: Option<SeccompPlan>,
    pub empty_sigset: libc::sigset_t,
    /// `process.terminal`: the init makes a pty and sends its master back.
    pub terminal: Option<TerminalPlan>,
    /// `create` without `start`: block before exec until a byte arrives.
    pub start_wait: Option<StartWait>,
    /// The socket pair on which the parent tells the init it is in its cgroups (the init's
    /// end, the parent's end; set just before clone when the parent joins any (cgroup v2),
    /// else -1).
    pub cgroup_word: [RawFd; 2],
}

/// How to start a container.
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    pub bundle: PathBuf,
    /// Descriptors (in the caller) that become the init's 0, 1 and 2.
    pub stdio: [RawFd; 3],
    pub pid_file: Option<PathBuf>,
    /// `cgroup.procs` files the init is moved into, before its privileges are set and
    /// anything of the container runs.
    pub cgroup_procs: Vec<PathBuf>,
    /// Where compiled seccomp filters are kept across processes (`None`: this process only).
    pub seccomp_cache: Option<PathBuf>,
    /// The OCI `create`: the init reports ready and blocks reading one byte from this fd
    /// (inherited, close-on-exec) before exec; spawning returns once it is ready.
    pub start_fd: Option<RawFd>,
    /// The caller runs the spec's hooks itself (they are refused otherwise).
    pub caller_runs_hooks: bool,
}

impl Plan {
    pub fn build(opts: &SpawnOptions) -> Result<Plan, ContainerError> {
        let bundle =
            std::path::absolute(&opts.bundle).map_err(io("resolve", Some(&opts.bundle)))?;
        let spec = spec::load_checked(&bundle, opts.caller_runs_hooks)?;
        let process = spec.process().as_ref().ok_or(ContainerError::Unsupported {
            what: "a spec without a process",
        })?;
        let terminal = if process.terminal().unwrap_or(false) {
            // Clamped, not refused: a window is never 65536 cells tall.
            let size = process.console_size().map(|b| {
                let clamp = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
                (clamp(b.height()), clamp(b.width()))
            });
            Some(terminal::plan(process.user().uid(), size)?)
        } else {
            None
        };
        let linux = spec.linux().clone().unwrap_or_default();
        let rootfs = rootfs::plan(&spec, &bundle).map_err(|source| ContainerError::Rootfs {
            bundle: bundle.clone(),
            source,
        })?;
        rootfs.prepare().map_err(|source| ContainerError::Rootfs {
            bundle: bundle.clone(),
            source,
        })?;
        let mounts = mounts::plan(&spec, &bundle)?;
        let populate_dev = mounts.iter().any(MountPlan::is_dev_tmpfs);
        let empty: Vec<String> = Vec::new();
        let mut namespaces = namespaces::plan(linux.namespaces().as_deref().unwrap_or_default())?;
        let cgroups = cgroup::plan(&opts.cgroup_procs, &mut namespaces.clone_flags)?;
        Ok(Plan {
            namespaces,
            cgroups,
            devices: devices::plan(linux.devices().as_deref().unwrap_or_default(), populate_dev)?,
            masks: masked::plan(
                linux.masked_paths().as_deref().unwrap_or(&empty),
                linux.readonly_paths().as_deref().unwrap_or(&empty),
            )?,
            hostname: hostname::plan(spec.hostname().as_deref(), spec.domainname().as_deref())?,
            sysctl: sysctl::plan(linux.sysctl().as_ref())?,
            process: process::plan(process, opts.stdio)?,
            caps: CapSets::from_spec(process.capabilities().as_ref())?,
            last_cap: capabilities::last_cap()?,
            seccomp: linux
                .seccomp()
                .as_ref()
                .map(|s| seccomp::plan(s, opts.seccomp_cache.as_deref()))
                .transpose()?,
            rootfs,
            mounts,
            empty_sigset: child::empty_sigset(),
            terminal,
            start_wait: opts.start_fd.map(|fd| StartWait { fd, report: -1 }),
            cgroup_word: [-1, -1],
        })
    }

    /// The parent's message for a child failure.
    fn explain(&self, fail: Fail) -> ContainerError {
        let i = fail.index as usize;
        let reason = failure::reason(fail.errno);
        let (what, path): (String, Option<PathBuf>) = match fail.step {
            Step::Exec => {
                let (name, found) = self.process.describe_exec(i);
                let message = if !found {
                    format!("exec: \"{name}\": executable file not found in $PATH")
                } else {
                    format!("exec {name}: {reason}")
                };
                return ContainerError::Child {
                    message,
                    step: fail.step,
                    errno: fail.errno,
                    path: Some(PathBuf::from(name)),
                };
            }
            Step::Cwd => {
                let p = self.process.cwd_display().to_owned();
                let why = if fail.errno == libc::ELOOP || fail.errno == libc::EXDEV {
                    " (it does not resolve inside the container's rootfs)"
                } else {
                    ""
                };
                // The step already says "change to working directory".
                (format!("{}{why}", p.display()), Some(p))
            }
            Step::Mount | Step::MountTarget => match self.mounts.get(i) {
                Some(m) => (
                    format!("{} on {}", m.describe, m.destination.display.display()),
                    Some(m.destination.display.clone()),
                ),
                None => (String::new(), None),
            },
            Step::Device => {
                let p = self.devices.describe(i);
                (p.display().to_string(), Some(p))
            }
            Step::MaskPath => {
                let p = MaskPlan::describe(&self.masks.masked, i);
                (p.display().to_string(), Some(p))
            }
            Step::ReadonlyPath => {
                let p = MaskPlan::describe(&self.masks.readonly, i);
                (p.display().to_string(), Some(p))
            }
            Step::Rootfs | Step::PivotRoot | Step::ReadonlyRoot => (
                self.rootfs.path.display().to_string(),
                Some(self.rootfs.path.clone()),
            ),
            Step::JoinNamespace => match self.namespaces.joins.get(i) {
                Some(j) => (j.path.display().to_string(), Some(j.path.clone())),
                None => (String::new(), None),
            },
            Step::Sysctl => (self.sysctl.describe(i), None),
            Step::Terminal => {
                let (what, path) = TerminalPlan::describe(fail.index);
                let on = path
                    .as_ref()
                    .map(|p| format!(" {}", p.display()))
                    .unwrap_or_default();
                return ContainerError::Child {
                    message: format!("cannot {what}{on}: {reason}"),
                    step: fail.step,
                    errno: fail.errno,
                    path,
                };
            }
            Step::Cgroup => {
                let what = self.cgroups.describe(i);
                return ContainerError::Child {
                    message: format!("cannot {what}: {reason}"),
                    step: fail.step,
                    errno: fail.errno,
                    path: self.cgroups.path(i).map(Path::to_path_buf),
                };
            }
            Step::Rlimit => (
                self.process
                    .rlimits
                    .get(i)
                    .map_or_else(String::new, |l| l.name.clone()),
                None,
            ),
            Step::User => (
                format!(
                    "uid {} gid {} groups {:?}",
                    self.process.uid, self.process.gid, self.process.groups
                ),
                None,
            ),
            _ => (String::new(), None),
        };
        let what = if what.is_empty() {
            String::new()
        } else {
            format!(" {what}")
        };
        ContainerError::Child {
            message: format!("cannot {}{what}: {reason}", fail.step.describe()),
            step: fail.step,
            errno: fail.errno,
            path,
        }
    }
}

/// Whether the init may start as posix_spawn starts a program: in this process's memory,
/// with this thread suspended until the init execs or exits (`CLONE_VM | CLONE_VFORK`). That
/// spares copying the page tables of a large caller (Python) and tearing the copy down again
/// at exec, about 1 ms of every container. Not when the parent must act while the init still
/// runs barque code (moving it into v2 cgroups, `create` holding it before exec), and not with
/// user namespaces, which a task sharing its memory may not enter.
fn shares_memory(plan: &Plan) -> bool {
    plan.start_wait.is_none()
        && !plan.cgroups.needs_parent()
        && !plan.namespaces.has_new(libc::CLONE_NEWUSER)
        && !plan
            .namespaces
            .joins
            .iter()
            .any(|j| j.nstype() == libc::CLONE_NEWUSER)
}

/// What the init's entry point gets from [`clone_sharing_memory`].
struct ChildStart<'a> {
    plan: &'a Plan,
    error_pipe: RawFd,
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the ChildStart on the suspended parent's stack, alive until
    // this child execs or exits (CLONE_VFORK).
    let start = unsafe { &*(arg as *const ChildStart<'_>) };
    run_init(start.plan, start.error_pipe)
}

/// Clones the init on its own stack in this process's memory; returns once it has exec'd or
/// exited. The init only runs raw syscalls on the prepared plan (no allocation, no locks).
fn clone_sharing_memory(plan: &Plan, error_pipe: RawFd) -> std::io::Result<libc::pid_t> {
    const STACK_SIZE: usize = 1 << 20;
    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // A guard page below the stack: an overflow faults instead of writing into our memory.
    // SAFETY: the lowest page of the mapping made above.
    unsafe { libc::mprotect(stack, 4096, libc::PROT_NONE) };
    // The init makes the memory it shares with us non-dumpable while it runs; ours again after.
    // SAFETY: prctl with integer arguments.
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    let start = ChildStart { plan, error_pipe };
    let flags = plan.namespaces.clone_flags as libc::c_int
        | libc::CLONE_VM
        | libc::CLONE_VFORK
        | libc::SIGCHLD;
    // SAFETY: the child runs `child_entry` on the new stack and never returns into this
    // frame; CLONE_VFORK keeps this thread, `start` and the stack alive until it execs or
    // exits.
    let pid = unsafe {
        libc::clone(
            child_entry,
            stack.cast::<u8>().add(STACK_SIZE).cast(),
            flags,
            std::ptr::addr_of!(start) as *mut libc::c_void,
        )
    };
    let result = if pid < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(pid)
    };
    if dumpable == 1 {
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    }
    // SAFETY: the child has exec'd (a new address space) or exited: nothing uses the stack.
    unsafe { libc::munmap(stack, STACK_SIZE) };
    result
}

/// The init's side, from the clone to its exec: never returns.
fn run_init(plan: &Plan, error_pipe: RawFd) -> ! {
    let steps = || init::run(&Linux, plan);
    let fail = match child::catch_panic(steps, Fail::new(Step::Exec, libc::EIO)) {
        Err(fail) => fail,
        Ok(never) => match never {},
    };
    // The exit status says what failed (Docker's code) to whoever waits for the container.
    child::exit_failed(error_pipe, fail, failure::exit_code(fail.step, fail.errno))
}

/// A started container: its init's host pid and, with `process.terminal`, the pty master
/// (the caller owns it; closing it hangs the container's terminal up).
#[derive(Debug)]
pub struct Spawned {
    pub pid: libc::pid_t,
    pub pty_master: Option<OwnedFd>,
}

/// Starts the container of `opts.bundle`; returns the init's host pid once it has exec'd.
/// A `process.terminal` spec needs [`spawn_with`]: someone has to hold the pty master.
pub fn spawn(opts: &SpawnOptions) -> Result<libc::pid_t, ContainerError> {
    let mut plan = Plan::build(opts)?;
    if plan.terminal.is_some() {
        return Err(ContainerError::Unsupported {
            what: "process.terminal through spawn (spawn_with returns the pty master)",
        });
    }
    start(&mut plan, opts).map(|s| s.pid)
}

/// Starts the container of `opts.bundle` once its init has exec'd; with `process.terminal`
/// the result carries the master of the pty that is the container's stdio (`opts.stdio` is
/// then not used).
pub fn spawn_with(opts: &SpawnOptions) -> Result<Spawned, ContainerError> {
    let mut plan = Plan::build(opts)?;
    start(&mut plan, opts)
}

fn start(plan: &mut Plan, opts: &SpawnOptions) -> Result<Spawned, ContainerError> {
    // The init sends the pty master over this socketpair before it execs.
    let console = match &mut plan.terminal {
        Some(t) => {
            let (parent, child) = terminal::socketpair()?;
            t.socket = child.as_raw_fd();
            Some((parent, child))
        }
        None => None,
    };
    let (read_end, write_end) = child::cloexec_pipe().map_err(io("create a pipe", None))?;
    if let Some(w) = &mut plan.start_wait {
        w.report = write_end.as_raw_fd();
    }
    plan.process
        .exec_through(trampoline::sealed_fd()?, write_end.as_raw_fd());
    let cgroup_word = if !plan.cgroups.needs_parent() {
        None
    } else {
        // A socket pair rather than a pipe: the word is sent with MSG_NOSIGNAL, so an init
        // that died first cannot SIGPIPE a caller that has SIGPIPE's default action.
        let mut fds = [0 as RawFd; 2];
        // SAFETY: fds is a valid out-array of two ints.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        } != 0
        {
            return Err(io("create a socket pair", None)(
                std::io::Error::last_os_error(),
            ));
        }
        plan.cgroup_word = fds;
        // SAFETY: both descriptors were just created and are owned here.
        Some(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
    };
    let plan = &*plan;

    // The init resets the signals; the parent's mask is back right after the clone.
    let blocked = SignalsBlocked::new();
    let cloned = if shares_memory(plan) {
        clone_sharing_memory(plan, write_end.as_raw_fd())
    } else {
        let cloned = child::fork_like(plan.namespaces.clone_flags)
            .map_err(std::io::Error::from_raw_os_error);
        if let Ok(0) = cloned {
            run_init(plan, write_end.as_raw_fd());
        }
        cloned
    };
    drop(blocked);
    let pid = cloned.map_err(io("clone the container init", None))?;
    drop(write_end);
    // Only the init may hold its end: recvmsg then sees EOF if it dies before sending.
    let console = console.map(|(parent, _child)| parent);
    // Into its cgroups while it mounts; no word (end of file) if that fails.
    let mut join_failure = None;
    if let Some((read, write)) = cgroup_word {
        drop(read);
        match plan.cgroups.join_pid(pid) {
            // SAFETY: one byte from a static buffer to a socket we own. An init already gone
            // makes this EPIPE (no signal), and its status pipe then says why.
            Ok(()) => unsafe {
                libc::send(
                    write.as_raw_fd(),
                    b"j".as_ptr().cast(),
                    1,
                    libc::MSG_NOSIGNAL,
                );
            },
            Err(failed) => join_failure = Some(failed),
        }
    }

    let report = match child::read_report(read_end) {
        Ok(report) => report,
        Err(e) => {
            kill_and_reap(pid);
            return Err(io("read the init's status", None)(e));
        }
    };
    if let Report::Execed | Report::Ready = report {
        let pty_master = match console.as_ref().map(terminal::receive_master).transpose() {
            Ok(m) => m,
            Err(e) => {
                kill_and_reap(pid);
                return Err(e.into());
            }
        };
        if let Some(path) = &opts.pid_file {
            if let Err(e) = std::fs::write(path, format!("{pid}")) {
                kill_and_reap(pid);
                return Err(io("write the pid file", Some(path))(e));
            }
        }
        return Ok(Spawned { pid, pty_master });
    }
    kill_and_reap(pid);
    if let Some((index, errno)) = join_failure {
        // The init saw no word and gave up: the parent's own error is the one to report.
        if errno != libc::ESRCH {
            return Err(plan.explain(Fail::at(Step::Cgroup, index, errno)));
        }
    }
    match report {
        Report::Failed(fail) => Err(plan.explain(fail)),
        _ => Err(ContainerError::Child {
            message: "the container init sent a malformed status".into(),
            step: Step::Exec,
            errno: libc::EPROTO,
            path: None,
        }),
    }
}

/// Waits for `pid` to exit: its exit code, or 128 + the signal that killed it (as a shell).
pub fn wait(pid: libc::pid_t) -> Result<i32, ContainerError> {
    let status = child::wait_status(pid).map_err(|source| ContainerError::Io {
        op: "wait for pid",
        path: Some(PathBuf::from(pid.to_string())),
        source,
    })?;
    if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Ok(128 + libc::WTERMSIG(status))
    } else {
        Ok(EXIT_START_FAILED)
    }
}

/// Sends `signal` to `pid`.
pub fn kill(pid: libc::pid_t, signal: i32) -> Result<(), ContainerError> {
    // SAFETY: plain kill(2).
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(ContainerError::Io {
            op: "signal pid",
            path: Some(PathBuf::from(pid.to_string())),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}
