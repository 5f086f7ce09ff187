//! `barque`, the native front end.
//!
//! A CPython start and barque's imports cost more than a whole `runc run`, so this program
//! hands the command line to barque's forkserver (python/barque/cli/forkserver.py), a warm
//! Python process that forks a ready child per command. The child runs the command with this
//! process's stdin, stdout, stderr, directory, environment and umask; this process forwards
//! its signals to it and exits with its status. When no server runs, this process starts one
//! in the background and runs the command in `barque-py` itself, as it does whenever the
//! server declines (another namespace, barque upgraded under it...).
//!
//! `BARQUE_FORKSERVER=off` always runs `barque-py`; `=require` fails (125) instead. Whenever
//! it runs `barque-py`, it says why in `BARQUE_FORKSERVER_STATUS` (for `barque info`), and an
//! unsafe forkserver directory, a misconfiguration that makes every command slow, is also
//! named on stderr.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod direct;
mod error;
mod relay;
mod request;
mod server;
mod trust;

use std::ffi::OsString;

use error::Error;

/// Exit code when barque itself fails, as Docker's.
const ENGINE_ERROR: i32 = 125;

#[derive(PartialEq, Eq, Clone, Copy)]
enum Mode {
    Auto,
    Off,
    Require,
}

impl Mode {
    fn from_env() -> Self {
        match std::env::var("BARQUE_FORKSERVER").as_deref() {
            Ok("off") | Ok("0") | Ok("no") => Mode::Off,
            Ok("require") => Mode::Require,
            _ => Mode::Auto,
        }
    }
}

fn main() {
    // Before anything else: a signal that comes while the command is being handed over is
    // held, then forwarded to it (or delivered to us again when we exec barque-py).
    let set = relay::forwarded();
    let original_mask = relay::block(&set);
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mode = Mode::from_env();
    let why_direct = if mode == Mode::Off {
        "BARQUE_FORKSERVER=off".to_string()
    } else {
        match through_server(&args, mode, &set, &original_mask) {
            Ok(status) => relay::finish(status),
            Err(e) if mode == Mode::Require => {
                eprintln!("barque: {e}");
                std::process::exit(ENGINE_ERROR);
            }
            Err(e) => {
                if matches!(e, Error::Untrusted(_)) {
                    eprintln!("barque: warning: not using the forkserver, every command starts Python: {e}");
                }
                e.to_string()
            }
        }
    };
    let err = direct::exec(&args, &original_mask, &why_direct);
    eprintln!("barque: cannot run the Python CLI: {err}");
    std::process::exit(ENGINE_ERROR);
}

/// Run the command in the forkserver; an error means nothing ran.
fn through_server(
    args: &[OsString],
    mode: Mode,
    set: &libc::sigset_t,
    original_mask: &libc::sigset_t,
) -> Result<relay::Status, Error> {
    let python_cli = direct::python_cli()?;
    let dir = server::directory(&python_cli)?;
    let conn = match server::connect(&dir) {
        Ok(conn) => conn,
        Err(e) => {
            if mode == Mode::Auto && server::not_running(&e) {
                // Best effort: this command runs without it either way.
                let _ = server::spawn(&dir, &python_cli, original_mask);
                return Err(Error::NotRunning { dir });
            }
            return Err(e);
        }
    };
    let payload = request::encode(args, &request::environment(), request::umask())?;
    request::send(&conn, &payload)?;
    match relay::await_start(&conn) {
        relay::Start::Running(pidfd) => relay::wait(&conn, &pidfd, set),
        relay::Start::Declined(reason) => Err(Error::Declined { reason }),
    }
}
