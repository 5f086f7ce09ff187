//! Dispatch: parse, run one command, map errors to runc's exit status (1).

use std::io::Write;

use crate::args::{self, Command};
use crate::error::{io, RuntimeError};
use crate::log::Log;
use crate::{cgroups, defaults, exec_cmd, lifecycle, list};

fn print(text: &str) -> Result<(), RuntimeError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(io("write to", "stdout"))
}

fn dispatch(inv: args::Invocation, log: &Log) -> Result<i32, RuntimeError> {
    let g = &inv.global;
    match inv.command {
        Command::Help => print(args::HELP)?,
        Command::Version => print(&format!(
            "barque-runtime version {}\nspec: {}\n",
            env!("CARGO_PKG_VERSION"),
            crate::state::OCI_VERSION
        ))?,
        Command::Create(a) => {
            lifecycle::create(g, log, &a, true)?;
        }
        Command::Run(a) => return lifecycle::run(g, log, &a),
        Command::Start { id } => lifecycle::start(g, log, &id)?,
        Command::State { id } => print(&(lifecycle::state(g, &id)? + "\n"))?,
        Command::Kill { id, signal, all } => lifecycle::kill(g, &id, &signal, all)?,
        Command::Delete { id, force } => lifecycle::delete(g, log, &id, force)?,
        Command::List { json, quiet } => {
            let rows = list::rows(g)?;
            if json {
                print(&(list::json(&rows) + "\n"))?
            } else {
                print(&list::table(&rows, quiet))?
            }
        }
        Command::Exec(a) => return exec_cmd::exec(g, &a),
        Command::Features => {
            let v2 = std::path::Path::new(cgroups::MOUNT)
                .join("cgroup.controllers")
                .exists();
            let text = serde_json::to_string_pretty(&defaults::features(v2))
                .map_err(|e| io("encode", "features")(e.into()))?;
            print(&(text + "\n"))?
        }
        Command::Spec { bundle } => {
            let path = bundle.unwrap_or_default().join("config.json");
            if path.exists() {
                return Err(io("write", &path)(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "File config.json exists. Remove it first",
                )));
            }
            let text = serde_json::to_string_pretty(&defaults::spec())
                .map_err(|e| io("encode", &path)(e.into()))?;
            std::fs::write(&path, text).map_err(io("write", &path))?;
        }
    }
    Ok(0)
}

pub fn main() -> i32 {
    let inv = match args::parse(std::env::args_os().collect()) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("barque-runtime: {e}");
            return 1;
        }
    };
    let log = Log::new(&inv.global);
    log.debug(|| format!("{:?}", inv.command));
    match dispatch(inv, &log) {
        Ok(code) => code,
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            // Module errors carry their cause in the message already; add deeper ones.
            while let Some(s) = source {
                let text = s.to_string();
                if !msg.contains(&text) {
                    msg = format!("{msg}: {text}");
                }
                source = s.source();
            }
            log.error(&msg);
            1
        }
    }
}
