//! `create`, `start`, `run`, `state`, `kill`, `delete`: the OCI lifecycle over barque-container's
//! `spawn_with`. `create` leaves the init blocked on `<state dir>/exec.fifo` (barque-container's
//! start fd) and returns once it is ready; `start` writes one byte to the fifo and removes it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use barque_container::container::{self, SpawnOptions};
use oci_spec::runtime::Spec;

use crate::args::{CreateArgs, Global};
use crate::cgroups;
use crate::console;
use crate::error::{io, RuntimeError};
use crate::hooks;
use crate::log::Log;
use crate::signals;
use crate::state::{self, Dir, Record, Status};
use crate::validate;

/// The bundle's spec, checked for what barque-runtime does not support.
pub fn load_spec(bundle: &Path) -> Result<Spec, RuntimeError> {
    let path = bundle.join("config.json");
    let spec = Spec::load(&path).map_err(|source| RuntimeError::Spec {
        path: path.clone(),
        source,
    })?;
    validate::check(&spec)?;
    Ok(spec)
}

fn absolute(p: &Path) -> Result<PathBuf, RuntimeError> {
    std::path::absolute(p).map_err(io("resolve", p))
}

pub fn owner() -> String {
    // SAFETY: geteuid cannot fail.
    match unsafe { libc::geteuid() } {
        0 => "root".into(),
        uid => uid.to_string(),
    }
}

fn mkfifo(path: &Path) -> Result<OwnedFd, RuntimeError> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io("create", path)(std::io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(io("create the fifo", path)(std::io::Error::last_os_error()));
    }
    // O_RDWR: never blocks, and the init (which inherits it) reads until `start` writes.
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io("open the fifo", path)(std::io::Error::last_os_error()));
    }
    // SAFETY: just opened, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates (with `wait_for_start`) or runs a container; returns its record, with the state
/// directory removed again on any failure.
pub fn create(
    g: &Global,
    log: &Log,
    a: &CreateArgs,
    wait_for_start: bool,
) -> Result<Record, RuntimeError> {
    let dir = Dir::of(&g.root, &a.id)?;
    let bundle = absolute(&a.bundle)?;
    let spec = load_spec(&bundle)?;
    let process = spec.process().as_ref();
    let terminal = process.and_then(|p| p.terminal()).unwrap_or(false);
    let socket = match (terminal, &a.console_socket) {
        (true, None) => return Err(console::ConsoleError::NoSocket.into()),
        (false, Some(_)) => return Err(console::ConsoleError::NoTerminal.into()),
        (true, Some(p)) => Some((console::connect(p)?, p.clone())),
        (false, None) => None,
    };
    let linux = spec.linux().clone().unwrap_or_default();
    let cgroup = cgroups::plan(&linux, &a.id)?;

    let spec_hooks = spec.hooks().clone();
    let create_hooks = spec_hooks.as_ref().is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|l| !l.is_empty())
            || h.create_runtime().as_ref().is_some_and(|l| !l.is_empty())
    });
    // `run` with create hooks also waits on the fifo: the hooks run before the exec.
    let use_fifo = wait_for_start || create_hooks;

    dir.create(&g.root)?;
    let mut made = Vec::new();
    let result = (|| {
        made = cgroup.create()?;
        log.debug(|| format!("{}: cgroups {made:?}", a.id));
        let fifo = if use_fifo {
            Some(mkfifo(&dir.fifo())?)
        } else {
            None
        };
        if let Some(adj) = process.and_then(|p| p.oom_score_adj()) {
            // Inherited by the init across clone.
            let path = Path::new("/proc/self/oom_score_adj");
            std::fs::write(path, adj.to_string()).map_err(io("write", path))?;
        }
        let cache = g.root.join("seccomp-cache");
        std::fs::create_dir_all(&cache).map_err(io("create", &cache))?;
        let opts = SpawnOptions {
            bundle: bundle.clone(),
            stdio: [0, 1, 2],
            pid_file: a.pid_file.as_deref().map(absolute).transpose()?,
            cgroup_procs: made.iter().map(|d| d.join("cgroup.procs")).collect(),
            seccomp_cache: Some(cache),
            start_fd: fifo.as_ref().map(|f| f.as_raw_fd()),
            caller_runs_hooks: true,
        };
        let spawned = container::spawn_with(&opts)?;
        let pid = spawned.pid;
        let fail = |e: RuntimeError| {
            kill_and_wait(pid, 0, &made);
            e
        };
        if let (Some(master), Some((sock, path))) = (&spawned.pty_master, &socket) {
            console::send(sock, path, master.as_raw_fd()).map_err(|e| fail(e.into()))?;
        }
        let root_path = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_default();
        let record = Record {
            id: a.id.clone(),
            pid,
            start_time: state::proc_stat(pid).map_or(0, |s| s.1),
            bundle: bundle.clone(),
            rootfs: bundle.join(root_path),
            created: state::now_rfc3339(),
            owner: owner(),
            annotations: spec
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            cgroups: made.clone(),
            started: !wait_for_start,
            hooks: spec_hooks.clone(),
        };
        dir.save(&record).map_err(|e| fail(e.into()))?;
        if let Some(h) = &spec_hooks {
            let state = state::oci_state(&record, Status::Created).to_string();
            hooks::run("prestart", h.prestart().as_ref(), &state).map_err(|e| fail(e.into()))?;
            hooks::run("createRuntime", h.create_runtime().as_ref(), &state)
                .map_err(|e| fail(e.into()))?;
        }
        if let (Some(f), false) = (&fifo, wait_for_start) {
            // `run`: start right away.
            let mut w = std::fs::File::from(f.try_clone().map_err(io("dup", dir.fifo()))?);
            std::io::Write::write_all(&mut w, b"0")
                .map_err(|e| fail(io("write", dir.fifo())(e)))?;
            let _ = std::fs::remove_file(dir.fifo());
        }
        Ok(record)
    })();
    if result.is_err() {
        let _ = cgroups::remove(&made, std::time::Duration::from_secs(1));
        let _ = dir.remove();
    }
    result
}

/// SIGKILL to the init (and to every process of its cgroups), then wait until it is gone.
fn kill_and_wait(pid: i32, start_time: u64, cgroups: &[PathBuf]) {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for p in cgroups::pids(cgroups) {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        // Our own child (run, or a failed create) is reaped here; others by their parent.
        let mut status = 0;
        // SAFETY: valid out-pointer; WNOHANG.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        let stat = state::proc_stat(pid);
        let start = if start_time == 0 {
            stat.map_or(0, |s| s.1)
        } else {
            start_time
        };
        if state::liveness(pid, start, stat) == state::Liveness::Gone {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The spec's poststart hooks: a failure is only a warning (runtime spec).
fn poststart(log: &Log, record: &Record) {
    if let Some(h) = &record.hooks {
        let state = state::oci_state(record, Status::Running).to_string();
        if let Err(e) = hooks::run("poststart", h.poststart().as_ref(), &state) {
            log.warn(&e.to_string());
        }
    }
}

pub fn start(g: &Global, log: &Log, id: &str) -> Result<(), RuntimeError> {
    let dir = Dir::of(&g.root, id)?;
    let (record, status) = dir.current()?;
    if status != Status::Created {
        return Err(RuntimeError::WrongStatus {
            id: id.into(),
            status,
            wanted: "only a created container can be started",
        });
    }
    let fifo = dir.fifo();
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
            .map_err(io("open", &fifo))?
    };
    std::io::Write::write_all(&mut f, b"0").map_err(io("write", &fifo))?;
    std::fs::remove_file(&fifo).map_err(io("remove", &fifo))?;
    poststart(log, &record);
    Ok(())
}

pub fn state(g: &Global, id: &str) -> Result<String, RuntimeError> {
    let (record, status) = Dir::of(&g.root, id)?.current()?;
    serde_json::to_string_pretty(&state::oci_state(&record, status))
        .map_err(|e| io("encode the state of", id)(e.into()))
}

pub fn kill(g: &Global, id: &str, signal: &str, all: bool) -> Result<(), RuntimeError> {
    let sig = signals::parse(signal)?;
    let (record, status) = Dir::of(&g.root, id)?.current()?;
    if status == Status::Stopped {
        return Err(RuntimeError::WrongStatus {
            id: id.into(),
            status,
            wanted: "container not running",
        });
    }
    let targets = if all {
        cgroups::pids(&record.cgroups)
    } else {
        vec![record.pid]
    };
    for pid in targets {
        container::kill(pid, sig)?;
    }
    Ok(())
}

pub fn delete(g: &Global, log: &Log, id: &str, force: bool) -> Result<(), RuntimeError> {
    let dir = Dir::of(&g.root, id)?;
    let (record, status) = match dir.current() {
        Ok(r) => r,
        Err(state::StateError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    match status {
        Status::Running | Status::Creating if !force => {
            return Err(RuntimeError::WrongStatus {
                id: id.into(),
                status,
                wanted: "stop it first or use delete --force",
            })
        }
        // A created container was never started: deleting it is its end (as runc).
        Status::Running | Status::Creating | Status::Created => {
            kill_and_wait(record.pid, record.start_time, &record.cgroups)
        }
        Status::Stopped => {}
    }
    destroy(log, &dir, &record)
}

fn destroy(log: &Log, dir: &Dir, record: &Record) -> Result<(), RuntimeError> {
    cgroups::remove(&record.cgroups, std::time::Duration::from_secs(2))?;
    dir.remove()?;
    if let Some(h) = &record.hooks {
        let state = state::oci_state(record, Status::Stopped).to_string();
        if let Err(e) = hooks::run("poststop", h.poststop().as_ref(), &state) {
            log.warn(&e.to_string());
        }
    }
    Ok(())
}

const FORWARDED: [i32; 7] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

fn forwarded_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

/// `run`: create and start at once; in the foreground, forward signals, wait, remove the
/// container and return its exit code.
pub fn run(g: &Global, log: &Log, a: &CreateArgs) -> Result<i32, RuntimeError> {
    let set = forwarded_set();
    if !a.detach {
        // Held pending until the forwarding thread takes them (the init unblocks all).
        // SAFETY: valid set pointer.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    }
    let record = create(g, log, a, false)?;
    poststart(log, &record);
    if a.detach {
        return Ok(0);
    }
    let pid = record.pid;
    std::thread::spawn(move || loop {
        let mut sig = 0;
        // SAFETY: valid pointers; the set is blocked in every thread.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, sig) };
        }
    });
    let code = container::wait(pid)?;
    let dir = Dir::of(&g.root, &a.id)?;
    destroy(log, &dir, &record)?;
    Ok(code)
}
