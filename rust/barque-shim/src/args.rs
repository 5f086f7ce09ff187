//! The command line, exactly as barque's Python supervisor writes it.

use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("{flag} is required")]
    Missing { flag: &'static str },
    #[error("{flag} needs a value")]
    NoValue { flag: String },
    #[error("{flag}: invalid value {value:?}")]
    Invalid { flag: String, value: String },
    #[error("unknown argument {arg:?}")]
    Unknown { arg: String },
    #[error("--exit-command-arg without --exit-command")]
    OrphanArg,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    pub log_path: Option<PathBuf>,
    pub log_max_size: Option<u64>,
    /// Files kept in all, the live one included (Docker's default: 1).
    pub log_max_file: u32,
    pub stdin: bool,
    pub hold_output: bool,
    /// (rows, cols).
    pub tty_size: Option<(u16, u16)>,
    pub cgroup_procs: Vec<PathBuf>,
    /// Where the container start finds (or leaves) its compiled seccomp filter.
    pub seccomp_cache: Option<PathBuf>,
    pub exit_command: Option<OsString>,
    pub exit_command_args: Vec<OsString>,
}

fn number<T: std::str::FromStr>(flag: &str, value: &OsString) -> Result<T, ArgsError> {
    value
        .to_str()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ArgsError::Invalid {
            flag: flag.to_owned(),
            value: value.to_string_lossy().into_owned(),
        })
}

fn tty_size(value: &OsString) -> Result<(u16, u16), ArgsError> {
    let invalid = || ArgsError::Invalid {
        flag: "--tty-size".into(),
        value: value.to_string_lossy().into_owned(),
    };
    let text = value.to_str().ok_or_else(invalid)?;
    let (rows, cols) = text.split_once(',').ok_or_else(invalid)?;
    Ok((
        rows.trim().parse().map_err(|_| invalid())?,
        cols.trim().parse().map_err(|_| invalid())?,
    ))
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Options, ArgsError> {
    let mut opts = Options {
        log_max_file: 1,
        ..Options::default()
    };
    let (mut bundle, mut state_dir) = (None, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        let mut value = || {
            args.next()
                .ok_or_else(|| ArgsError::NoValue { flag: flag.clone() })
        };
        match flag.as_str() {
            "--bundle" => bundle = Some(PathBuf::from(value()?)),
            "--state-dir" => state_dir = Some(PathBuf::from(value()?)),
            "--log-path" => opts.log_path = Some(PathBuf::from(value()?)),
            "--log-max-size" => opts.log_max_size = Some(number(&flag, &value()?)?),
            "--log-max-file" => opts.log_max_file = number::<u32>(&flag, &value()?)?.max(1),
            "--stdin" => opts.stdin = true,
            "--hold-output" => opts.hold_output = true,
            "--tty-size" => opts.tty_size = Some(tty_size(&value()?)?),
            "--cgroup-procs" => opts.cgroup_procs.push(PathBuf::from(value()?)),
            "--seccomp-cache" => opts.seccomp_cache = Some(PathBuf::from(value()?)),
            "--exit-command" => opts.exit_command = Some(value()?),
            "--exit-command-arg" => opts.exit_command_args.push(value()?),
            _ => return Err(ArgsError::Unknown { arg: flag }),
        }
    }
    if opts.exit_command.is_none() && !opts.exit_command_args.is_empty() {
        return Err(ArgsError::OrphanArg);
    }
    // A max-size of 0 means "no limit", as in Docker's log options.
    if opts.log_max_size == Some(0) {
        opts.log_max_size = None;
    }
    opts.bundle = bundle.ok_or(ArgsError::Missing { flag: "--bundle" })?;
    opts.state_dir = state_dir.ok_or(ArgsError::Missing {
        flag: "--state-dir",
    })?;
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Options, ArgsError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn full_command_line() {
        let o = p(&[
            "--bundle",
            "/b",
            "--state-dir",
            "/s",
            "--log-path",
            "/l",
            "--log-max-size",
            "100",
            "--log-max-file",
            "3",
            "--stdin",
            "--hold-output",
            "--tty-size",
            "24,80",
            "--cgroup-procs",
            "/c1",
            "--cgroup-procs",
            "/c2",
            "--seccomp-cache",
            "/cache",
            "--exit-command",
            "/bin/x",
            "--exit-command-arg",
            "a",
            "--exit-command-arg",
            "b",
        ])
        .unwrap();
        assert_eq!(o.log_max_size, Some(100));
        assert_eq!(o.log_max_file, 3);
        assert_eq!(o.tty_size, Some((24, 80)));
        assert_eq!(o.cgroup_procs.len(), 2);
        assert_eq!(o.seccomp_cache, Some(PathBuf::from("/cache")));
        assert_eq!(o.exit_command_args, ["a", "b"]);
        assert!(o.stdin && o.hold_output);
    }

    #[test]
    fn errors() {
        assert_eq!(
            p(&["--state-dir", "/s"]),
            Err(ArgsError::Missing { flag: "--bundle" })
        );
        assert!(matches!(p(&["--bundle"]), Err(ArgsError::NoValue { .. })));
        assert!(matches!(
            p(&["--bundle", "/b", "--state-dir", "/s", "--tty-size", "24x80"]),
            Err(ArgsError::Invalid { .. })
        ));
        assert!(matches!(p(&["--nope"]), Err(ArgsError::Unknown { .. })));
        let o = p(&["--bundle", "/b", "--state-dir", "/s"]).unwrap();
        assert_eq!((o.log_max_size, o.log_max_file), (None, 1));
    }
}
