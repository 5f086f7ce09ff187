//! runc's command line, parsed by hand (no argument-parsing crate: start-up time matters).
//!
//! Global options come before the command; a command's options may come before or after its
//! positional arguments, except for `exec`, whose command starts at the first argument after
//! the container id. `--flag=value` and `--flag value` are both accepted; so are runc's
//! single-dash long forms (`-bundle`), which urfave/cli allows.

use std::ffi::OsString;
use std::path::PathBuf;

pub const DEFAULT_ROOT: &str = "/run/barque-runtime";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("{flag} needs a value")]
    NoValue { flag: String },
    #[error("{flag}: invalid value {value:?}")]
    Invalid { flag: String, value: String },
    #[error("unknown option {arg:?} for {command}")]
    Unknown { command: &'static str, arg: String },
    #[error("{command}: unexpected argument {arg:?}")]
    Extra { command: &'static str, arg: String },
    #[error("{command} requires a container id")]
    NoId { command: &'static str },
    #[error("no command given (try --help)")]
    NoCommand,
    #[error("unknown command {0:?} (try --help)")]
    UnknownCommand(String),
    #[error("{0} is not supported by barque-runtime")]
    Unsupported(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    pub root: PathBuf,
    pub log: Option<PathBuf>,
    pub log_format: LogFormat,
    pub debug: bool,
}

impl Default for Global {
    fn default() -> Global {
        Global {
            root: PathBuf::from(DEFAULT_ROOT),
            log: None,
            log_format: LogFormat::Text,
            debug: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateArgs {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// `run` only.
    pub detach: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecArgs {
    pub id: String,
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    /// `uid[:gid]`.
    pub user: Option<(u32, Option<u32>)>,
    pub no_new_privs: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Version,
    Create(CreateArgs),
    Run(CreateArgs),
    Start {
        id: String,
    },
    State {
        id: String,
    },
    Kill {
        id: String,
        signal: String,
        all: bool,
    },
    Delete {
        id: String,
        force: bool,
    },
    List {
        json: bool,
        quiet: bool,
    },
    Exec(ExecArgs),
    Features,
    Spec {
        bundle: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub global: Global,
    pub command: Command,
}

/// One `-x`/`--x`/`--x=v` token, split.
struct Flag {
    name: String,
    inline: Option<String>,
}

fn flag(arg: &str) -> Option<Flag> {
    if arg == "-" || arg == "--" || !arg.starts_with('-') {
        return None;
    }
    let body = arg.trim_start_matches('-');
    let (name, inline) = match body.split_once('=') {
        Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
        None => (body.to_owned(), None),
    };
    Some(Flag { name, inline })
}

struct Cursor {
    args: std::vec::IntoIter<String>,
}

impl Cursor {
    fn value(&mut self, f: &Flag) -> Result<String, ArgsError> {
        match &f.inline {
            Some(v) => Ok(v.clone()),
            None => self.args.next().ok_or_else(|| ArgsError::NoValue {
                flag: format!("--{}", f.name),
            }),
        }
    }
}

/// A boolean flag: `--x` or `--x=true|false`.
fn boolean(f: &Flag) -> Result<bool, ArgsError> {
    match f.inline.as_deref() {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(ArgsError::Invalid {
            flag: format!("--{}", f.name),
            value: v.to_owned(),
        }),
    }
}

pub fn parse(argv: Vec<OsString>) -> Result<Invocation, ArgsError> {
    let args: Vec<String> = argv
        .into_iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut c = Cursor {
        args: args.into_iter(),
    };
    let mut global = Global::default();
    let name = loop {
        let Some(arg) = c.args.next() else {
            return Err(ArgsError::NoCommand);
        };
        let Some(f) = flag(&arg) else { break arg };
        match f.name.as_str() {
            "root" => global.root = PathBuf::from(c.value(&f)?),
            "log" => global.log = Some(PathBuf::from(c.value(&f)?)),
            "log-format" => {
                global.log_format = match c.value(&f)?.as_str() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    v => {
                        return Err(ArgsError::Invalid {
                            flag: "--log-format".into(),
                            value: v.into(),
                        })
                    }
                }
            }
            "debug" => global.debug = boolean(&f)?,
            "systemd-cgroup" if boolean(&f)? => {
                return Err(ArgsError::Unsupported("--systemd-cgroup".into()))
            }
            "systemd-cgroup" => {}
            "rootless" => {
                if c.value(&f)? == "true" {
                    return Err(ArgsError::Unsupported("--rootless".into()));
                }
            }
            "h" | "help" => {
                return Ok(Invocation {
                    global,
                    command: Command::Help,
                })
            }
            "v" | "version" => {
                return Ok(Invocation {
                    global,
                    command: Command::Version,
                })
            }
            _ => {
                return Err(ArgsError::Unknown {
                    command: "barque-runtime",
                    arg,
                })
            }
        }
    };
    let command = match name.as_str() {
        "create" => Command::Create(create(&mut c, "create", false)?),
        "run" => Command::Run(create(&mut c, "run", true)?),
        "start" => Command::Start {
            id: only_id(&mut c, "start")?,
        },
        "state" => Command::State {
            id: only_id(&mut c, "state")?,
        },
        "kill" => kill(&mut c)?,
        "delete" => delete(&mut c)?,
        "list" => list(&mut c)?,
        "exec" => Command::Exec(exec(&mut c)?),
        "features" => {
            no_more(&mut c, "features")?;
            Command::Features
        }
        "spec" => spec(&mut c)?,
        "help" => Command::Help,
        _ => return Err(ArgsError::UnknownCommand(name)),
    };
    Ok(Invocation { global, command })
}

fn unknown(command: &'static str, f: &Flag) -> ArgsError {
    ArgsError::Unknown {
        command,
        arg: format!("--{}", f.name),
    }
}

fn id_or_extra(
    command: &'static str,
    id: &mut Option<String>,
    arg: String,
) -> Result<(), ArgsError> {
    if id.is_some() {
        return Err(ArgsError::Extra { command, arg });
    }
    *id = Some(arg);
    Ok(())
}

fn create(c: &mut Cursor, command: &'static str, is_run: bool) -> Result<CreateArgs, ArgsError> {
    let mut out = CreateArgs {
        bundle: PathBuf::from("."),
        ..Default::default()
    };
    let mut id = None;
    while let Some(arg) = c.args.next() {
        let Some(f) = flag(&arg) else {
            id_or_extra(command, &mut id, arg)?;
            continue;
        };
        match f.name.as_str() {
            "b" | "bundle" => out.bundle = PathBuf::from(c.value(&f)?),
            "pid-file" => out.pid_file = Some(PathBuf::from(c.value(&f)?)),
            "console-socket" => out.console_socket = Some(PathBuf::from(c.value(&f)?)),
            "d" | "detach" if is_run => out.detach = boolean(&f)?,
            // Accepted and meaningless here: barque never uses a pivot-less chroot, keeps no
            // keyring of its own and passes no extra fds.
            "no-pivot" | "no-new-keyring" if !boolean(&f)? => {}
            "no-pivot" | "no-new-keyring" | "preserve-fds" => {
                return Err(ArgsError::Unsupported(format!("--{}", f.name)))
            }
            _ => return Err(unknown(command, &f)),
        }
    }
    out.id = id.ok_or(ArgsError::NoId { command })?;
    Ok(out)
}

fn only_id(c: &mut Cursor, command: &'static str) -> Result<String, ArgsError> {
    let mut id = None;
    for arg in c.args.by_ref() {
        match flag(&arg) {
            Some(f) => return Err(unknown(command, &f)),
            None => id_or_extra(command, &mut id, arg)?,
        }
    }
    id.ok_or(ArgsError::NoId { command })
}

fn no_more(c: &mut Cursor, command: &'static str) -> Result<(), ArgsError> {
    match c.args.next() {
        Some(arg) => Err(ArgsError::Extra { command, arg }),
        None => Ok(()),
    }
}

fn kill(c: &mut Cursor) -> Result<Command, ArgsError> {
    let mut positional = Vec::new();
    let mut all = false;
    let mut signal = None;
    while let Some(arg) = c.args.next() {
        // `kill ID -9`? runc takes signals without a dash only; a dash-number is refused.
        let Some(f) = flag(&arg) else {
            positional.push(arg);
            continue;
        };
        match f.name.as_str() {
            "a" | "all" => all = boolean(&f)?,
            "s" | "signal" => signal = Some(c.value(&f)?),
            _ => return Err(unknown("kill", &f)),
        }
    }
    let mut positional = positional.into_iter();
    let id = positional
        .next()
        .ok_or(ArgsError::NoId { command: "kill" })?;
    if let Some(s) = positional.next() {
        signal = Some(s);
    }
    if let Some(arg) = positional.next() {
        return Err(ArgsError::Extra {
            command: "kill",
            arg,
        });
    }
    Ok(Command::Kill {
        id,
        signal: signal.unwrap_or_else(|| "SIGTERM".into()),
        all,
    })
}

fn delete(c: &mut Cursor) -> Result<Command, ArgsError> {
    let mut id = None;
    let mut force = false;
    for arg in c.args.by_ref() {
        match flag(&arg) {
            Some(f) if f.name == "f" || f.name == "force" => force = boolean(&f)?,
            Some(f) => return Err(unknown("delete", &f)),
            None => id_or_extra("delete", &mut id, arg)?,
        }
    }
    Ok(Command::Delete {
        id: id.ok_or(ArgsError::NoId { command: "delete" })?,
        force,
    })
}

fn list(c: &mut Cursor) -> Result<Command, ArgsError> {
    let (mut json, mut quiet) = (false, false);
    while let Some(arg) = c.args.next() {
        let Some(f) = flag(&arg) else {
            return Err(ArgsError::Extra {
                command: "list",
                arg,
            });
        };
        match f.name.as_str() {
            "f" | "format" => {
                json = match c.value(&f)?.as_str() {
                    "json" => true,
                    "table" => false,
                    v => {
                        return Err(ArgsError::Invalid {
                            flag: "--format".into(),
                            value: v.into(),
                        })
                    }
                }
            }
            "q" | "quiet" => quiet = boolean(&f)?,
            _ => return Err(unknown("list", &f)),
        }
    }
    Ok(Command::List { json, quiet })
}

fn spec(c: &mut Cursor) -> Result<Command, ArgsError> {
    let mut bundle = None;
    while let Some(arg) = c.args.next() {
        let Some(f) = flag(&arg) else {
            return Err(ArgsError::Extra {
                command: "spec",
                arg,
            });
        };
        match f.name.as_str() {
            "b" | "bundle" => bundle = Some(PathBuf::from(c.value(&f)?)),
            "rootless" if boolean(&f)? => {
                return Err(ArgsError::Unsupported("spec --rootless".into()))
            }
            "rootless" => {}
            _ => return Err(unknown("spec", &f)),
        }
    }
    Ok(Command::Spec { bundle })
}

fn user(value: &str) -> Result<(u32, Option<u32>), ArgsError> {
    let invalid = || ArgsError::Invalid {
        flag: "--user".into(),
        value: value.to_owned(),
    };
    let (u, g) = match value.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (value, None),
    };
    let uid = u.parse().map_err(|_| invalid())?;
    let gid = g.map(|g| g.parse().map_err(|_| invalid())).transpose()?;
    Ok((uid, gid))
}

fn exec(c: &mut Cursor) -> Result<ExecArgs, ArgsError> {
    let mut out = ExecArgs::default();
    let mut id = None;
    while let Some(arg) = c.args.next() {
        let Some(f) = flag(&arg) else {
            id = Some(arg);
            break;
        };
        match f.name.as_str() {
            "p" | "process" => out.process = Some(PathBuf::from(c.value(&f)?)),
            "t" | "tty" => out.tty = boolean(&f)?,
            "d" | "detach" => out.detach = boolean(&f)?,
            "console-socket" => out.console_socket = Some(PathBuf::from(c.value(&f)?)),
            "pid-file" => out.pid_file = Some(PathBuf::from(c.value(&f)?)),
            "cwd" => out.cwd = Some(c.value(&f)?),
            "e" | "env" => out.env.push(c.value(&f)?),
            "u" | "user" => out.user = Some(user(&c.value(&f)?)?),
            "no-new-privs" => out.no_new_privs = boolean(&f)?,
            _ => return Err(unknown("exec", &f)),
        }
    }
    out.id = id.ok_or(ArgsError::NoId { command: "exec" })?;
    out.args = c.args.by_ref().collect();
    if out.args.first().is_some_and(|a| a == "--") {
        out.args.remove(0);
    }
    if out.process.is_some() && !out.args.is_empty() {
        return Err(ArgsError::Extra {
            command: "exec",
            arg: out.args.join(" "),
        });
    }
    if out.process.is_none() && out.args.is_empty() {
        return Err(ArgsError::Invalid {
            flag: "exec".into(),
            value: "a command or --process is required".into(),
        });
    }
    Ok(out)
}

pub const HELP: &str = "\
barque-runtime: an OCI runtime with runc's command line, on barque's Rust core

usage: barque-runtime [global options] command [command options] [arguments...]

commands:
   create [-b DIR] [--pid-file F] [--console-socket S] ID
                   create a container (its process waits for start)
   start ID        start the process of a created container
   run [-b DIR] [-d] [--pid-file F] [--console-socket S] ID
                   create and start; without -d wait and exit with its code
   state ID        print the container's state (OCI state JSON)
   kill [--all] ID [SIGNAL]
                   send a signal (name or number; default SIGTERM)
   delete [-f] ID  delete a stopped (or, with -f, any) container
   list [--format table|json] [-q]
   exec [--process F | ARGS...] [-t] [--console-socket S] [-d] [--pid-file F]
        [--cwd D] [-e K=V] [-u UID[:GID]] ID [ARGS...]
   features        print the supported features (JSON)
   spec [-b DIR]   write a default config.json

global options:
   --root DIR              state directory (default /run/barque-runtime)
   --log FILE              append log messages to FILE (default stderr)
   --log-format text|json  log format (default text)
   --debug                 log debug messages
   --help, --version
";

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Invocation, ArgsError> {
        let mut v = vec![OsString::from("barque-runtime")];
        v.extend(args.iter().map(OsString::from));
        parse(v)
    }

    fn cmd(args: &[&str]) -> Command {
        p(args).unwrap().command
    }

    #[test]
    fn global_options_then_create() {
        let inv = p(&[
            "--root",
            "/r",
            "--log=/l",
            "--log-format",
            "json",
            "--debug",
            "create",
            "--bundle",
            "/b",
            "--pid-file=/p",
            "--console-socket",
            "/s",
            "c1",
        ])
        .unwrap();
        assert_eq!(
            inv.global,
            Global {
                root: "/r".into(),
                log: Some("/l".into()),
                log_format: LogFormat::Json,
                debug: true
            }
        );
        assert_eq!(
            inv.command,
            Command::Create(CreateArgs {
                id: "c1".into(),
                bundle: "/b".into(),
                pid_file: Some("/p".into()),
                console_socket: Some("/s".into()),
                detach: false,
            })
        );
    }

    #[test]
    fn defaults_and_short_forms() {
        let inv = p(&["run", "-d", "c", "-b", "x"]).unwrap();
        assert_eq!(inv.global.root, PathBuf::from(DEFAULT_ROOT));
        let Command::Run(r) = inv.command else {
            panic!()
        };
        assert!(r.detach);
        assert_eq!(r.bundle, PathBuf::from("x"));
        let Command::Create(c) = cmd(&["create", "c"]) else {
            panic!()
        };
        assert_eq!(c.bundle, PathBuf::from("."));
        // runc's single-dash long form.
        let Command::Create(c) = cmd(&["create", "-bundle", "/b", "c"]) else {
            panic!()
        };
        assert_eq!(c.bundle, PathBuf::from("/b"));
    }

    #[test]
    fn kill_delete_list() {
        assert_eq!(
            cmd(&["kill", "c"]),
            Command::Kill {
                id: "c".into(),
                signal: "SIGTERM".into(),
                all: false
            }
        );
        assert_eq!(
            cmd(&["kill", "--all", "c", "9"]),
            Command::Kill {
                id: "c".into(),
                signal: "9".into(),
                all: true
            }
        );
        assert_eq!(
            cmd(&["delete", "-f", "c"]),
            Command::Delete {
                id: "c".into(),
                force: true
            }
        );
        assert_eq!(
            cmd(&["list", "--format", "json"]),
            Command::List {
                json: true,
                quiet: false
            }
        );
    }

    #[test]
    fn exec_command_starts_after_the_id() {
        let Command::Exec(e) = cmd(&["exec", "-t", "-e", "A=1", "c", "sh", "-c", "ls -l"]) else {
            panic!()
        };
        assert_eq!(e.id, "c");
        assert!(e.tty);
        assert_eq!(e.env, vec!["A=1"]);
        assert_eq!(e.args, vec!["sh", "-c", "ls -l"]);
        let Command::Exec(e) = cmd(&["exec", "--process", "/p.json", "-u", "5:6", "c"]) else {
            panic!()
        };
        assert_eq!(e.process, Some(PathBuf::from("/p.json")));
        assert_eq!(e.user, Some((5, Some(6))));
        assert!(p(&["exec", "c"]).is_err());
        assert!(p(&["exec", "-p", "/p", "c", "ls"]).is_err());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(p(&[]), Err(ArgsError::NoCommand));
        assert_eq!(p(&["start"]), Err(ArgsError::NoId { command: "start" }));
        assert_eq!(
            p(&["start", "a", "b"]),
            Err(ArgsError::Extra {
                command: "start",
                arg: "b".into()
            })
        );
        assert_eq!(
            p(&["frobnicate"]),
            Err(ArgsError::UnknownCommand("frobnicate".into()))
        );
        assert!(matches!(
            p(&["--log-format", "xml", "list"]),
            Err(ArgsError::Invalid { .. })
        ));
        assert!(matches!(
            p(&["create", "--bundle"]),
            Err(ArgsError::NoValue { .. })
        ));
        assert!(matches!(
            p(&["--systemd-cgroup", "list"]),
            Err(ArgsError::Unsupported(_))
        ));
        assert!(matches!(
            p(&["create", "--frob", "c"]),
            Err(ArgsError::Unknown { .. })
        ));
        assert_eq!(cmd(&["--help"]), Command::Help);
    }
}
