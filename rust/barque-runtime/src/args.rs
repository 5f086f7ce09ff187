//! runc's command line, on clap's derive.
//!
//! Global options come before the command; a command's options may come before or after its
//! positional arguments, except for `exec`, whose command starts at the first argument after
//! the container id. `--flag=value` and `--flag value` are both accepted, booleans also as
//! `--flag=true|false`; so are runc's single-dash long forms (`-bundle`), which urfave/cli
//! allows and containerd or Docker may pass (see [`runc_spelling`]).
//!
//! clap only parses: the help text is [`HELP`], and a bad command line is reported as one
//! [`ArgsError`] line (cli.rs prints it, exit status 1), as before clap, not in clap's format.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

pub const DEFAULT_ROOT: &str = "/run/barque-runtime";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("{flag} needs a value")]
    NoValue { flag: String },
    #[error("{flag}: invalid value {value:?}")]
    Invalid { flag: String, value: String },
    #[error("unknown option {arg:?} for {command}")]
    Unknown { command: String, arg: String },
    #[error("{command}: unexpected argument {arg:?}")]
    Extra { command: String, arg: String },
    #[error("{command} requires a container id")]
    NoId { command: String },
    #[error("no command given (try --help)")]
    NoCommand,
    #[error("unknown command {0:?} (try --help)")]
    UnknownCommand(String),
    #[error("{0} is not supported by barque-runtime")]
    Unsupported(String),
    /// A refusal of clap's that none of the above describes (none is known to be reachable).
    #[error("{0}")]
    Other(String),
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

/// `uid[:gid]`.
pub type UserIds = (u32, Option<u32>);

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
    pub user: Option<UserIds>,
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

// ---- the command line as clap sees it -----------------------------------------------------
//
// Every `bool` field is a runc boolean: `--x`, `--x=true` or `--x=false` (see
// `runc_conventions`). Options the runtime refuses (`--systemd-cgroup`, `--no-pivot`...) are
// parsed so that the refusal names them, instead of calling them unknown.

#[derive(Parser)]
#[command(name = "barque-runtime", version, subcommand_required = true)]
struct Cli {
    #[arg(long, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    #[arg(long)]
    log: Option<PathBuf>,
    #[arg(long, default_value = "text", value_parser = log_format)]
    log_format: LogFormat,
    #[arg(long)]
    debug: bool,
    #[arg(long)]
    systemd_cgroup: bool,
    /// runc's is `--rootless true|false|auto`, a value rather than a boolean.
    #[arg(long)]
    rootless: Option<String>,
    #[command(subcommand)]
    command: Sub,
}

#[derive(Subcommand)]
enum Sub {
    Create(CreateOpts),
    Run(RunOpts),
    Start(IdOnly),
    State(IdOnly),
    Kill(KillOpts),
    Delete(DeleteOpts),
    List(ListOpts),
    Exec(ExecOpts),
    Features,
    Spec(SpecOpts),
    /// `help [anything]`: the one help text.
    Help {
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        ignored: Vec<String>,
    },
}

#[derive(Args)]
struct CreateOpts {
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    // Accepted when false, meaningless here: barque never uses a pivot-less chroot and keeps
    // no keyring of its own. Passing extra fds is not implemented.
    #[arg(long)]
    no_pivot: bool,
    #[arg(long)]
    no_new_keyring: bool,
    #[arg(long)]
    preserve_fds: Option<String>,
    id: String,
}

#[derive(Args)]
struct RunOpts {
    #[command(flatten)]
    create: CreateOpts,
    #[arg(short, long)]
    detach: bool,
}

#[derive(Args)]
struct IdOnly {
    id: String,
}

#[derive(Args)]
struct KillOpts {
    #[arg(short, long)]
    all: bool,
    /// The signal as an option, for callers that spell it so; the operand wins.
    #[arg(short = 's', long = "signal")]
    signal_option: Option<String>,
    id: String,
    /// A name or a number, never `-9`: like runc, a dash-number is an unknown option.
    signal: Option<String>,
}

#[derive(Args)]
struct DeleteOpts {
    #[arg(short, long)]
    force: bool,
    id: String,
}

#[derive(Args)]
struct ListOpts {
    #[arg(short = 'f', long = "format", default_value = "table", value_parser = json_or_table)]
    json: ListJson,
    #[arg(short, long)]
    quiet: bool,
}

/// `list --format json`? (A newtype, so that clap does not take it for a boolean.)
#[derive(Clone, Copy)]
struct ListJson(bool);

#[derive(Args)]
struct ExecOpts {
    #[arg(short, long)]
    process: Option<PathBuf>,
    #[arg(short, long)]
    tty: bool,
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<String>,
    #[arg(short, long)]
    env: Vec<String>,
    #[arg(short, long, value_parser = user)]
    user: Option<UserIds>,
    #[arg(long)]
    no_new_privs: bool,
    id: String,
    /// Everything after the id (`runc_spelling` puts a `--` there, so none of it is an option).
    args: Vec<String>,
}

#[derive(Args)]
struct SpecOpts {
    #[arg(short, long)]
    bundle: Option<PathBuf>,
    #[arg(long)]
    rootless: bool,
}

fn log_format(value: &str) -> Result<LogFormat, &'static str> {
    match value {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("text or json"),
    }
}

fn json_or_table(value: &str) -> Result<ListJson, &'static str> {
    match value {
        "json" => Ok(ListJson(true)),
        "table" => Ok(ListJson(false)),
        _ => Err("table or json"),
    }
}

/// urfave/cli's booleans (Go's strconv.ParseBool, less its rarely used spellings).
fn truth(value: &str) -> Result<bool, &'static str> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("true or false"),
    }
}

fn user(value: &str) -> Result<UserIds, &'static str> {
    const WANTED: &str = "UID[:GID], numeric";
    let (u, g) = match value.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (value, None),
    };
    let uid = u.parse().map_err(|_| WANTED)?;
    let gid = g.map(|g| g.parse().map_err(|_| WANTED)).transpose()?;
    Ok((uid, gid))
}

/// What derive cannot say once for every argument, applied to the top level and to the command
/// being run (see [`runc_spelling`]):
/// - a boolean takes an optional `=value` (`--detach=false`; `--detach c` leaves `c` alone);
/// - an option's value may start with a dash, as in urfave/cli;
/// - a repeated option's last value wins, as in urfave/cli, instead of being an error;
/// - `-h`/`--help` everywhere and `-v`/`--version` at the top, runc's letters, declared here
///   because clap only adds its own (`-V`) with its help renderer, which is left out.
fn runc_conventions(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .args_override_self(true)
        .mut_args(|arg| match arg.get_action() {
            ArgAction::SetTrue => arg
                .action(ArgAction::Set)
                .num_args(0..=1)
                .require_equals(true)
                .default_value("false")
                .default_missing_value("true")
                .value_parser(truth),
            // `--log -`, `--cwd -x`: an option's value is the next argument, whatever it is.
            _ if arg.get_action().takes_values() && !arg.is_positional() => {
                arg.allow_hyphen_values(true)
            }
            _ => arg,
        })
        .arg(help_flag())
}

fn help_flag() -> Arg {
    Arg::new("help")
        .short('h')
        .long("help")
        .action(ArgAction::Help)
}

fn command() -> clap::Command {
    let version = Arg::new("version")
        .short('v')
        .long("version")
        .action(ArgAction::Version);
    runc_conventions(Cli::command()).arg(version)
}

/// runc's parser (urfave/cli, on Go's flag package) takes `-bundle` for `--bundle`, and
/// containerd's or Docker's calls may spell options so; clap would read `-b undle`. This
/// rewrites the single-dash spelling of a long option that the command in scope declares (the
/// global ones before the command name, the command's after it) and nothing else, and puts a
/// `--` after exec's container id so that none of the process's own arguments is taken for
/// an option. Returns the definition to parse with and where the command name is, if any.
fn runc_spelling(cmd: clap::Command, args: &mut Vec<String>) -> (clap::Command, Option<usize>) {
    // args[0] is the program.
    let Some(at) = respell(&cmd, args, 1, true) else {
        return (cmd, None);
    };
    let Some(name) = cmd
        .find_subcommand(&args[at])
        .map(|s| s.get_name().to_owned())
    else {
        return (cmd, None); // clap reports the unknown command
    };
    // Only the command being run is given runc's conventions: converting the other commands'
    // options too would be start-up time spent on nothing.
    let cmd = cmd.mut_subcommand(&name, runc_conventions);
    let exec = name == "exec";
    if let Some(sub) = cmd.find_subcommand(&name) {
        if let Some(id_at) = respell(sub, args, at + 1, exec).filter(|_| exec) {
            args.insert(id_at + 1, "--".to_owned());
        }
    }
    (cmd, Some(at))
}

/// Rewrites `-NAME[=V]` to `--NAME[=V]` from `args[from]` on, for the long options of `scope`,
/// skipping options' values; stops at `--`, and at the first positional argument if `stop`.
/// Returns where the first positional argument is.
fn respell(scope: &clap::Command, args: &mut [String], from: usize, stop: bool) -> Option<usize> {
    let mut first_positional = None;
    let mut i = from;
    while i < args.len() {
        let arg = args[i].as_str();
        let value_is_next = if arg == "--" {
            break;
        } else if let Some(long) = arg.strip_prefix("--") {
            !long.contains('=') && long_option(scope, long).is_some_and(value_follows)
        } else if let Some(body) = arg.strip_prefix('-').filter(|body| !body.is_empty()) {
            let (name, inline) = match body.split_once('=') {
                Some((name, _)) => (name, true),
                None => (body, false),
            };
            match long_option(scope, name).filter(|_| name.chars().nth(1).is_some()) {
                Some(option) => {
                    let value_is_next = !inline && value_follows(option);
                    args[i].insert(0, '-');
                    value_is_next
                }
                None => short_cluster_wants_next(scope, body),
            }
        } else {
            first_positional = first_positional.or(Some(i));
            if stop {
                break;
            }
            false
        };
        i += if value_is_next { 2 } else { 1 };
    }
    first_positional
}

fn long_option<'c>(scope: &'c clap::Command, name: &str) -> Option<&'c Arg> {
    scope.get_arguments().find(|a| a.get_long() == Some(name))
}

/// `--root DIR`: the option's value is the next argument unless given as `--root=DIR`.
/// (Booleans take theirs only after `=`.)
fn value_follows(option: &Arg) -> bool {
    option.get_action().takes_values() && !option.is_require_equals_set()
}

/// Does `-td`, `-e`, `-eA=1`... take the next argument as its last letter's value?
fn short_cluster_wants_next(scope: &clap::Command, letters: &str) -> bool {
    for (at, letter) in letters.char_indices() {
        match scope
            .get_arguments()
            .find(|a| a.get_short() == Some(letter))
        {
            Some(option) if value_follows(option) => {
                return at + letter.len_utf8() == letters.len()
            }
            Some(option) if option.get_action().takes_values() => return false, // `-d=false`
            Some(_) => {}
            None => return false,
        }
    }
    false
}

pub fn parse(argv: Vec<OsString>) -> Result<Invocation, ArgsError> {
    // Arguments are text, as before clap: a byte that is not UTF-8 becomes U+FFFD.
    let mut args: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.is_empty() {
        args.push("barque-runtime".to_owned());
    }
    let (mut cmd, command_at) = runc_spelling(command(), &mut args);
    let parsed = cmd
        .try_get_matches_from_mut(&args)
        .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let command = match e.kind() {
                ErrorKind::DisplayHelp => Command::Help,
                ErrorKind::DisplayVersion => Command::Version,
                _ => return Err(refusal(&e, &args, command_at)),
            };
            return Ok(Invocation {
                global: Global::default(),
                command,
            });
        }
    };
    if cli.systemd_cgroup {
        return Err(ArgsError::Unsupported("--systemd-cgroup".into()));
    }
    if cli.rootless.as_deref() == Some("true") {
        return Err(ArgsError::Unsupported("--rootless".into()));
    }
    let global = Global {
        root: cli.root,
        log: cli.log,
        log_format: cli.log_format,
        debug: cli.debug,
    };
    let command = match cli.command {
        Sub::Create(o) => Command::Create(create(o, false)?),
        Sub::Run(o) => Command::Run(create(o.create, o.detach)?),
        Sub::Start(o) => Command::Start { id: o.id },
        Sub::State(o) => Command::State { id: o.id },
        Sub::Kill(o) => Command::Kill {
            id: o.id,
            signal: (o.signal.or(o.signal_option)).unwrap_or_else(|| "SIGTERM".into()),
            all: o.all,
        },
        Sub::Delete(o) => Command::Delete {
            id: o.id,
            force: o.force,
        },
        Sub::List(o) => Command::List {
            json: o.json.0,
            quiet: o.quiet,
        },
        Sub::Exec(o) => Command::Exec(exec(o)?),
        Sub::Features => Command::Features,
        Sub::Spec(o) if o.rootless => return Err(ArgsError::Unsupported("spec --rootless".into())),
        Sub::Spec(o) => Command::Spec { bundle: o.bundle },
        Sub::Help { .. } => Command::Help,
    };
    Ok(Invocation { global, command })
}

fn create(o: CreateOpts, detach: bool) -> Result<CreateArgs, ArgsError> {
    let refused = [
        (o.no_pivot, "--no-pivot"),
        (o.no_new_keyring, "--no-new-keyring"),
        (o.preserve_fds.is_some(), "--preserve-fds"),
    ];
    if let Some((_, flag)) = refused.into_iter().find(|(given, _)| *given) {
        return Err(ArgsError::Unsupported(flag.into()));
    }
    Ok(CreateArgs {
        id: o.id,
        bundle: o.bundle,
        pid_file: o.pid_file,
        console_socket: o.console_socket,
        detach,
    })
}

fn exec(o: ExecOpts) -> Result<ExecArgs, ArgsError> {
    let mut args = o.args;
    // `exec ID -- CMD...`: the `--` is the caller's separator, not the command.
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if o.process.is_some() && !args.is_empty() {
        return Err(ArgsError::Extra {
            command: "exec".into(),
            arg: args.join(" "),
        });
    }
    if o.process.is_none() && args.is_empty() {
        return Err(ArgsError::Invalid {
            flag: "exec".into(),
            value: "a command or --process is required".into(),
        });
    }
    Ok(ExecArgs {
        id: o.id,
        process: o.process,
        args,
        tty: o.tty,
        console_socket: o.console_socket,
        detach: o.detach,
        pid_file: o.pid_file,
        cwd: o.cwd,
        env: o.env,
        user: o.user,
        no_new_privs: o.no_new_privs,
    })
}

/// clap's refusal as barque-runtime has always worded it.
fn refusal(e: &clap::Error, args: &[String], command_at: Option<usize>) -> ArgsError {
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(" "),
        _ => String::new(),
    };
    let command = || {
        command_at
            .map_or("barque-runtime", |at| &args[at])
            .to_owned()
    };
    // clap names an option with its value placeholder (`--bundle <BUNDLE>`).
    let flag = || {
        let arg = context(ContextKind::InvalidArg);
        let end = arg.find([' ', '=', '[']).unwrap_or(arg.len());
        arg[..end].to_owned()
    };
    match e.kind() {
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            ArgsError::NoCommand
        }
        ErrorKind::InvalidSubcommand => {
            ArgsError::UnknownCommand(context(ContextKind::InvalidSubcommand))
        }
        // A command's one required argument is its container id.
        ErrorKind::MissingRequiredArgument => ArgsError::NoId { command: command() },
        ErrorKind::UnknownArgument => {
            let arg = context(ContextKind::InvalidArg);
            if !arg.starts_with('-') {
                return ArgsError::Extra {
                    command: command(),
                    arg,
                };
            }
            // clap names the first letter of an unknown `-frob`, and `--frob=1` whole: say
            // the option as it was typed, without its value, and whose option it is not.
            let typed = args
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, a)| a.starts_with(&arg));
            let (at, typed) = typed.map_or((usize::MAX, arg.as_str()), |(at, a)| (at, a));
            let typed = typed.split('=').next().unwrap_or(typed).to_owned();
            match command_at {
                Some(command_at) if at > command_at => ArgsError::Unknown {
                    command: command(),
                    arg: typed,
                },
                _ => ArgsError::Unknown {
                    command: "barque-runtime".into(),
                    arg: typed,
                },
            }
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            match context(ContextKind::InvalidValue) {
                value if value.is_empty() => ArgsError::NoValue { flag: flag() },
                value => ArgsError::Invalid {
                    flag: flag(),
                    value,
                },
            }
        }
        kind => ArgsError::Other(format!("{kind}: {}", context(ContextKind::InvalidArg))),
    }
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

    fn create_args(args: &[&str]) -> CreateArgs {
        match cmd(args) {
            Command::Create(c) | Command::Run(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn exec_args(args: &[&str]) -> ExecArgs {
        match cmd(args) {
            Command::Exec(e) => e,
            other => panic!("{other:?}"),
        }
    }

    fn unknown(command: &str, arg: &str) -> Result<Invocation, ArgsError> {
        Err(ArgsError::Unknown {
            command: command.into(),
            arg: arg.into(),
        })
    }

    fn extra(command: &str, arg: &str) -> Result<Invocation, ArgsError> {
        Err(ArgsError::Extra {
            command: command.into(),
            arg: arg.into(),
        })
    }

    fn invalid(flag: &str, value: &str) -> Result<Invocation, ArgsError> {
        Err(ArgsError::Invalid {
            flag: flag.into(),
            value: value.into(),
        })
    }

    #[test]
    fn clap_accepts_the_definition() {
        // clap checks its definition (clashing letters, misplaced positionals) in debug builds.
        command().mut_subcommands(runc_conventions).debug_assert();
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
    fn containerds_command_lines() {
        let inv = p(&[
            "--root",
            "/run/containerd/runc/default",
            "--log",
            "/b/log.json",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/b/init.pid",
            "--console-socket",
            "/tmp/pty.sock",
            "c1",
        ])
        .unwrap();
        assert_eq!(inv.global.log_format, LogFormat::Json);
        assert_eq!(inv.global.log, Some("/b/log.json".into()));
        let Command::Create(c) = inv.command else {
            panic!()
        };
        assert_eq!(c.pid_file, Some("/b/init.pid".into()));
        let e = exec_args(&[
            "exec",
            "--process",
            "/tmp/p.json",
            "--detach",
            "--pid-file",
            "/b/exec.pid",
            "c1",
        ]);
        assert!(e.detach && e.args.is_empty());
        assert_eq!(e.process, Some("/tmp/p.json".into()));
        assert_eq!(e.pid_file, Some("/b/exec.pid".into()));
        assert_eq!(
            cmd(&["kill", "--all", "c1", "9"]),
            Command::Kill {
                id: "c1".into(),
                signal: "9".into(),
                all: true
            }
        );
        assert_eq!(
            cmd(&["delete", "--force", "c1"]),
            Command::Delete {
                id: "c1".into(),
                force: true
            }
        );
        assert_eq!(cmd(&["start", "c1"]), Command::Start { id: "c1".into() });
        assert_eq!(cmd(&["state", "c1"]), Command::State { id: "c1".into() });
        assert_eq!(cmd(&["features"]), Command::Features);
    }

    #[test]
    fn defaults_and_short_forms() {
        let inv = p(&["run", "-d", "c", "-b", "x"]).unwrap();
        assert_eq!(inv.global, Global::default());
        assert_eq!(inv.global.root, PathBuf::from(DEFAULT_ROOT));
        let Command::Run(r) = inv.command else {
            panic!()
        };
        assert!(r.detach);
        assert_eq!(r.bundle, PathBuf::from("x"));
        assert_eq!(create_args(&["create", "c"]).bundle, PathBuf::from("."));
        assert_eq!(
            create_args(&["create", "-b=/b", "c"]).bundle,
            PathBuf::from("/b")
        );
        assert_eq!(
            create_args(&["create", "-b/b", "c"]).bundle,
            PathBuf::from("/b")
        );
        assert!(create_args(&["run", "-d=true", "c"]).detach);
        assert_eq!(
            cmd(&["list", "-f", "json", "-q"]),
            Command::List {
                json: true,
                quiet: true
            }
        );
    }

    #[test]
    fn runcs_single_dash_long_options() {
        let inv = p(&[
            "-root",
            "/r",
            "-log=/l",
            "-log-format",
            "json",
            "-debug",
            "create",
            "-bundle",
            "/b",
            "-pid-file=/p",
            "-console-socket",
            "/s",
            "c",
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
        let Command::Create(c) = inv.command else {
            panic!()
        };
        assert_eq!(
            (c.bundle, c.pid_file, c.console_socket),
            ("/b".into(), Some("/p".into()), Some("/s".into()))
        );
        let e = exec_args(&[
            "exec",
            "-process",
            "/p.json",
            "-detach",
            "-pid-file",
            "/f",
            "c",
        ]);
        assert_eq!(e.process, Some("/p.json".into()));
        assert!(e.detach);
        assert_eq!(
            cmd(&["delete", "-force", "c"]),
            Command::Delete {
                id: "c".into(),
                force: true
            }
        );
        assert_eq!(cmd(&["-help"]), Command::Help);
        assert_eq!(cmd(&["-version"]), Command::Version);
        // Only names the command declares: `-frob` stays the unknown option it is, and a
        // global name is not rewritten after the command name.
        assert_eq!(p(&["create", "-frob", "c"]), unknown("create", "-frob"));
        assert_eq!(
            p(&["create", "-root", "/r", "c"]),
            unknown("create", "-root")
        );
    }

    #[test]
    fn booleans_take_an_optional_value() {
        assert!(!p(&["--debug=false", "list"]).unwrap().global.debug);
        assert!(p(&["--debug=1", "list"]).unwrap().global.debug);
        assert!(!create_args(&["run", "--detach=0", "c"]).detach);
        // Without `=`, the next argument is not the boolean's: here it is the id.
        let r = create_args(&["run", "--detach", "c"]);
        assert!(r.detach);
        assert_eq!(r.id, "c");
        assert_eq!(p(&["--debug=maybe", "list"]), invalid("--debug", "maybe"));
        assert!(
            create_args(&["create", "--no-pivot=false", "--no-new-keyring=false", "c"])
                .id
                .eq("c")
        );
        assert!(p(&["--systemd-cgroup=false", "list"]).is_ok());
        assert!(p(&["--rootless", "false", "list"]).is_ok());
        assert!(p(&["spec", "--rootless=false"]).is_ok());
    }

    #[test]
    fn a_repeated_option_keeps_its_last_value() {
        assert_eq!(
            p(&["--root", "/a", "--root", "/b", "list"])
                .unwrap()
                .global
                .root,
            PathBuf::from("/b")
        );
        assert_eq!(
            create_args(&["create", "-b", "/a", "-b", "/b", "c"]).bundle,
            PathBuf::from("/b")
        );
        // Except --env, which adds.
        assert_eq!(
            exec_args(&["exec", "-e", "A=1", "--env=B=2", "c", "env"]).env,
            ["A=1", "B=2"]
        );
    }

    #[test]
    fn a_value_may_start_with_a_dash() {
        assert_eq!(
            p(&["--log", "-", "list"]).unwrap().global.log,
            Some("-".into())
        );
        assert_eq!(
            exec_args(&["exec", "--cwd", "-x", "c", "ls"])
                .cwd
                .as_deref(),
            Some("-x")
        );
    }

    #[test]
    fn kill_delete_list_spec() {
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
            cmd(&["kill", "-s", "KILL", "-a", "c"]),
            Command::Kill {
                id: "c".into(),
                signal: "KILL".into(),
                all: true
            }
        );
        // The operand wins over --signal.
        assert_eq!(
            cmd(&["kill", "--signal=HUP", "c", "TERM"]),
            Command::Kill {
                id: "c".into(),
                signal: "TERM".into(),
                all: false
            }
        );
        assert_eq!(p(&["kill", "c", "-9"]), unknown("kill", "-9"));
        assert_eq!(p(&["kill", "c", "9", "x"]), extra("kill", "x"));
        assert_eq!(
            cmd(&["delete", "-f", "c"]),
            Command::Delete {
                id: "c".into(),
                force: true
            }
        );
        assert_eq!(
            cmd(&["delete", "c"]),
            Command::Delete {
                id: "c".into(),
                force: false
            }
        );
        assert_eq!(
            cmd(&["list", "--format", "json"]),
            Command::List {
                json: true,
                quiet: false
            }
        );
        assert_eq!(
            cmd(&["list", "--format=table"]),
            Command::List {
                json: false,
                quiet: false
            }
        );
        assert_eq!(
            p(&["list", "--format", "yaml"]),
            invalid("--format", "yaml")
        );
        assert_eq!(p(&["list", "x"]), extra("list", "x"));
        assert_eq!(cmd(&["spec"]), Command::Spec { bundle: None });
        assert_eq!(
            cmd(&["spec", "-b", "/d"]),
            Command::Spec {
                bundle: Some("/d".into())
            }
        );
        assert_eq!(p(&["spec", "x"]), extra("spec", "x"));
        assert_eq!(p(&["features", "x"]), extra("features", "x"));
    }

    #[test]
    fn exec_command_starts_after_the_id() {
        let e = exec_args(&["exec", "-t", "-e", "A=1", "c", "sh", "-c", "ls -l"]);
        assert_eq!(e.id, "c");
        assert!(e.tty);
        assert_eq!(e.env, vec!["A=1"]);
        assert_eq!(e.args, vec!["sh", "-c", "ls -l"]);
        let e = exec_args(&["exec", "--process", "/p.json", "-u", "5:6", "c"]);
        assert_eq!(e.process, Some(PathBuf::from("/p.json")));
        assert_eq!(e.user, Some((5, Some(6))));
        assert_eq!(
            exec_args(&["exec", "--user=7", "c", "id"]).user,
            Some((7, None))
        );
        // Options after the id, the process's own, even barque-runtime's names.
        let e = exec_args(&["exec", "c", "ls", "-t", "--help", "-bundle", "-d"]);
        assert!(!e.tty && !e.detach);
        assert_eq!(e.args, ["ls", "-t", "--help", "-bundle", "-d"]);
        assert_eq!(
            exec_args(&["exec", "c", "--", "ls", "--", "x"]).args,
            ["ls", "--", "x"]
        );
        assert_eq!(exec_args(&["exec", "c", "-t"]).args, ["-t"]);
        let e = exec_args(&[
            "exec",
            "--cwd=/w",
            "--no-new-privs",
            "--console-socket",
            "/s",
            "c",
            "true",
        ]);
        assert_eq!((e.cwd.as_deref(), e.no_new_privs), (Some("/w"), true));
        assert_eq!(e.console_socket, Some("/s".into()));
        assert_eq!(
            p(&["exec", "c"]),
            invalid("exec", "a command or --process is required")
        );
        assert_eq!(
            p(&["exec", "-p", "/p", "c", "ls", "-l"]),
            extra("exec", "ls -l")
        );
        assert_eq!(
            p(&["exec", "-u", "root", "c", "id"]),
            invalid("--user", "root")
        );
        assert_eq!(
            p(&["exec", "-u", "1:x", "c", "id"]),
            invalid("--user", "1:x")
        );
        assert_eq!(
            p(&["exec"]),
            Err(ArgsError::NoId {
                command: "exec".into()
            })
        );
    }

    #[test]
    fn help_and_version() {
        for help in [
            &["--help"][..],
            &["-h"],
            &["help"],
            &["help", "create"],
            &["create", "--help"],
            &["--help", "frobnicate"],
        ] {
            assert_eq!(cmd(help), Command::Help, "{help:?}");
        }
        for version in [&["--version"][..], &["-v"], &["--root", "/r", "-v"]] {
            assert_eq!(cmd(version), Command::Version, "{version:?}");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(p(&[]), Err(ArgsError::NoCommand));
        assert_eq!(p(&["--root", "/r"]), Err(ArgsError::NoCommand));
        assert_eq!(
            p(&["start"]),
            Err(ArgsError::NoId {
                command: "start".into()
            })
        );
        assert_eq!(
            p(&["-debug", "delete", "-f"]),
            Err(ArgsError::NoId {
                command: "delete".into()
            })
        );
        assert_eq!(p(&["start", "a", "b"]), extra("start", "b"));
        assert_eq!(p(&["create", "a", "b"]), extra("create", "b"));
        assert_eq!(
            p(&["frobnicate"]),
            Err(ArgsError::UnknownCommand("frobnicate".into()))
        );
        assert_eq!(
            p(&["--log-format", "xml", "list"]),
            invalid("--log-format", "xml")
        );
        assert_eq!(
            p(&["create", "--bundle"]),
            Err(ArgsError::NoValue {
                flag: "--bundle".into()
            })
        );
        assert_eq!(
            p(&["--root"]),
            Err(ArgsError::NoValue {
                flag: "--root".into()
            })
        );
        assert_eq!(p(&["create", "--frob", "c"]), unknown("create", "--frob"));
        assert_eq!(p(&["create", "--frob=1", "c"]), unknown("create", "--frob"));
        assert_eq!(p(&["state", "--all", "c"]), unknown("state", "--all"));
        assert_eq!(p(&["--frob", "list"]), unknown("barque-runtime", "--frob"));
        assert_eq!(p(&["create", "-d", "c"]), unknown("create", "-d"));
        assert_eq!(
            p(&["create", "--bundle", "/b", "c"]).unwrap().command,
            Command::Create(CreateArgs {
                id: "c".into(),
                bundle: "/b".into(),
                ..Default::default()
            })
        );
    }

    #[test]
    fn refused_options_are_named() {
        let unsupported = |what: &str| Err(ArgsError::Unsupported(what.into()));
        assert_eq!(
            p(&["--systemd-cgroup", "list"]),
            unsupported("--systemd-cgroup")
        );
        assert_eq!(
            p(&["--rootless", "true", "list"]),
            unsupported("--rootless")
        );
        assert_eq!(p(&["create", "--no-pivot", "c"]), unsupported("--no-pivot"));
        assert_eq!(
            p(&["create", "--no-new-keyring", "c"]),
            unsupported("--no-new-keyring")
        );
        assert_eq!(
            p(&["run", "--preserve-fds", "2", "c"]),
            unsupported("--preserve-fds")
        );
        assert_eq!(p(&["spec", "--rootless"]), unsupported("spec --rootless"));
    }

    #[test]
    fn messages() {
        let message = |args: &[&str]| p(args).unwrap_err().to_string();
        assert_eq!(message(&["start"]), "start requires a container id");
        assert_eq!(
            message(&["create", "--frob", "c"]),
            r#"unknown option "--frob" for create"#
        );
        assert_eq!(message(&["create", "--bundle"]), "--bundle needs a value");
        assert_eq!(
            message(&["list", "-f", "xml"]),
            r#"--format: invalid value "xml""#
        );
        assert_eq!(message(&["frob"]), r#"unknown command "frob" (try --help)"#);
        assert_eq!(message(&[]), "no command given (try --help)");
        assert_eq!(
            message(&["--systemd-cgroup", "list"]),
            "--systemd-cgroup is not supported by barque-runtime"
        );
    }
}
