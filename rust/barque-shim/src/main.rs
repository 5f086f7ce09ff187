//! `barque-shim`: one small supervisor per container, as conmon is for Podman.
//!
//! The process the caller starts forks the supervisor and waits only for its report: one JSON
//! line on stdout (`{"pid": .., "shim_pid": ..}`, exit 0, or `{"error": .., "exit_code": ..,
//! "errno": .., "path": ..}`, exit 1). The supervisor leaves the caller's session, holds the
//! container's stdio (a pty or pipes), writes Docker's json-file log, serves the attach
//! socket, reaps the container, records `exit.json`, tells attached clients the exit code,
//! runs the exit command and exits.

// Errors are values: the supervisor must outlive anything a container or client does.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod args;
mod attach;
mod frame;
mod json;
mod jsonlog;
mod os;
mod report;
mod rotate;
mod server;
mod spawn;

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use args::Options;

/// Exit code when the shim itself could not start the container.
const EXIT_SHIM_FAILED: i32 = 125;
/// The exit code recorded if the init's status was never collected.
pub const EXIT_UNKNOWN: i32 = 255;

fn main() {
    let opts = match args::parse(std::env::args_os().skip(1)).map(absolute) {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => finish_report(&report::error(
            &format!("barque-shim: {e}"),
            EXIT_SHIM_FAILED,
            e.raw_os_error(),
            None,
        )),
        Err(e) => finish_report(&report::error(
            &format!("barque-shim: {e}"),
            EXIT_SHIM_FAILED,
            None,
            None,
        )),
    };
    let (report_r, report_w) = match os::pipe() {
        Ok(p) => p,
        Err(e) => finish_report(&report::error(
            &format!("barque-shim: cannot create a pipe: {e}"),
            EXIT_SHIM_FAILED,
            e.raw_os_error(),
            None,
        )),
    };
    // SAFETY: single-threaded here; the child continues as the supervisor.
    match unsafe { libc::fork() } {
        0 => {
            drop(report_r);
            let code = supervise(&opts, report_w);
            std::process::exit(code)
        }
        pid if pid < 0 => finish_report(&report::error(
            "barque-shim: cannot fork the supervisor",
            EXIT_SHIM_FAILED,
            std::io::Error::last_os_error().raw_os_error(),
            None,
        )),
        _ => {
            drop(report_w);
            relay(report_r)
        }
    }
}

fn absolute(mut o: Options) -> std::io::Result<Options> {
    // The supervisor works from "/".
    o.bundle = std::path::absolute(&o.bundle)?;
    o.state_dir = std::path::absolute(&o.state_dir)?;
    o.log_path = o.log_path.map(std::path::absolute).transpose()?;
    o.cgroup_procs = o
        .cgroup_procs
        .iter()
        .map(std::path::absolute)
        .collect::<Result<_, _>>()?;
    Ok(o)
}

/// Prints the report line and exits: 0 for a started container, 1 otherwise.
fn finish_report(line: &str) -> ! {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
    std::process::exit(if line.starts_with("{\"pid\"") { 0 } else { 1 })
}

/// The starting process: passes the supervisor's one line on.
fn relay(report: OwnedFd) -> ! {
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match os::read(report.as_raw_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                line.extend_from_slice(&buf[..n]);
                if line.ends_with(b"\n") {
                    break;
                }
            }
        }
    }
    if line.is_empty() {
        finish_report(&report::error(
            "barque-shim: the supervisor exited before reporting",
            EXIT_SHIM_FAILED,
            None,
            None,
        ));
    }
    finish_report(&String::from_utf8_lossy(&line))
}

/// Leaves the caller's session and stdio (closing every other inherited descriptor but
/// `keep`, so no pipe of the caller stays open for the container's lifetime); ignores the
/// signals a detached process gets.
fn detach(keep: RawFd) {
    // SAFETY: plain calls with constant arguments; "/dev/null" and "/" are NUL-terminated.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        // The container's init (after the spawn helper exits) and its orphans are reaped here.
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// SIGCHLD as a readable descriptor, so the poll loop sees exits.
fn child_signals() -> std::io::Result<OwnedFd> {
    // SAFETY: valid sigset pointers; signalfd on a freshly built mask.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        libc::sigaddset(&mut mask, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &mask, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

fn fail_report(report: &OwnedFd, line: &str) -> i32 {
    let _ = os::write_all(report.as_raw_fd(), line.as_bytes());
    1
}

fn io_failure(what: &str, path: Option<&Path>, e: &std::io::Error) -> String {
    let path_text = path.map(|p| p.to_string_lossy().into_owned());
    let on = path_text
        .as_ref()
        .map(|p| format!(" {p}"))
        .unwrap_or_default();
    report::error(
        &format!("barque-shim: cannot {what}{on}: {e}"),
        EXIT_SHIM_FAILED,
        e.raw_os_error(),
        path_text.as_deref(),
    )
}

/// The supervisor: returns its exit status.
fn supervise(opts: &Options, report: OwnedFd) -> i32 {
    // A caller that started us with 0-2 closed got the report pipe there: move it above.
    let report = match report.as_raw_fd() {
        0..=2 => report.try_clone().unwrap_or(report),
        _ => report,
    };
    detach(report.as_raw_fd());
    let signals = match child_signals() {
        Ok(s) => s,
        Err(e) => return fail_report(&report, &io_failure("create a signalfd", None, &e)),
    };
    if let Err(e) = std::fs::create_dir_all(&opts.state_dir) {
        return fail_report(&report, &io_failure("create", Some(&opts.state_dir), &e));
    }
    let pid_file = opts.state_dir.join("shim.pid");
    // SAFETY: getpid cannot fail.
    let shim_pid = unsafe { libc::getpid() };
    if let Err(e) = std::fs::write(&pid_file, format!("{shim_pid}\n")) {
        return fail_report(&report, &io_failure("write", Some(&pid_file), &e));
    }
    let listener = match attach::listen(&opts.state_dir) {
        Ok(l) => l,
        Err(e) => {
            let line = report::error(
                &format!("barque-shim: {e}"),
                EXIT_SHIM_FAILED,
                e.errno(),
                Some(&e.path().to_string_lossy()),
            );
            return fail_report(&report, &line);
        }
    };
    let cleanup = |line: &str| {
        let _ = std::fs::remove_file(opts.state_dir.join(attach::SOCKET_NAME));
        fail_report(&report, line)
    };
    let log = match &opts.log_path {
        Some(path) => match rotate::LogFile::open(path, opts.log_max_size, opts.log_max_file) {
            Ok(l) => Some(l),
            Err(e) => {
                return cleanup(&report::error(
                    &format!("barque-shim: {e}"),
                    EXIT_SHIM_FAILED,
                    None,
                    Some(&path.to_string_lossy()),
                ))
            }
        },
        None => None,
    };
    let started = match spawn::start(opts) {
        Ok(s) => s,
        Err(spawn::SpawnError::Container { line }) => return cleanup(&line),
        Err(e) => {
            return cleanup(&report::error(
                &format!("barque-shim: {e}"),
                EXIT_SHIM_FAILED,
                None,
                None,
            ))
        }
    };
    let tty = matches!(started.io, spawn::ContainerIo::Tty { .. });
    if let (spawn::ContainerIo::Tty { master }, Some((rows, cols))) = (&started.io, opts.tty_size) {
        let _ = os::set_window_size(master.as_raw_fd(), rows, cols);
    }
    let init_pid = started.pid;
    let server = server::Server::new(server::Setup {
        state_dir: opts.state_dir.clone(),
        listener,
        signals,
        init_pid,
        io: started.io,
        log,
        hold_output: opts.hold_output,
    });
    let server = match server {
        Ok(s) if tty && !opts.stdin => s.without_stdin(),
        Ok(s) => s,
        Err(e) => {
            // SAFETY: our (reparented) child; it must not outlive a supervisor that gave up.
            unsafe { libc::kill(init_pid, libc::SIGKILL) };
            return cleanup(&io_failure("set up the container's stdio", None, &e));
        }
    };
    let _ = os::write_all(
        report.as_raw_fd(),
        report::started(init_pid, shim_pid).as_bytes(),
    );
    drop(report);
    // Give back what parsing the arguments and forking left on the heap: the shim idles
    // for the container's whole life.
    // SAFETY: plain call.
    unsafe { libc::malloc_trim(0) };
    os::shed_code_pages();
    // The container's code is in exit.json; the shim itself succeeded.
    server.run();
    if let Some(prog) = &opts.exit_command {
        run_exit_command(prog, &opts.exit_command_args);
    }
    0
}

/// Runs the exit command with a clean signal state and waits for it.
fn run_exit_command(prog: &OsString, args: &[OsString]) {
    let mut cmd = std::process::Command::new(PathBuf::from(prog));
    cmd.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        });
    }
    if let Ok(mut child) = cmd.spawn() {
        let _ = child.wait();
    }
}
