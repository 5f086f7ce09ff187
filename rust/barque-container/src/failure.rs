//! How the container init reports a failure to its parent: a fixed-size record over a
//! close-on-exec pipe (EOF on the pipe means the exec succeeded).
//!
//! The child cannot allocate, so a failure is three numbers: the step, the errno, and an index
//! into the parent's own copy of the plan (which mount, which device, which exec candidate) from
//! which the parent writes the message.

/// The step of the init sequence that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    Stdio = 1,
    Dumpable,
    JoinNamespace,
    RootPropagation,
    Rootfs,
    MountTarget,
    Mount,
    Device,
    MaskPath,
    ReadonlyPath,
    PivotRoot,
    ReadonlyRoot,
    Hostname,
    Domainname,
    Sysctl,
    Cwd,
    Rlimit,
    CapabilityBounding,
    User,
    Capabilities,
    NoNewPrivileges,
    Seccomp,
    CloseFds,
    Signals,
    Exec,
    Terminal,
    Loopback,
    Cgroup,
    StartWait,
    /// Running the sealed exec trampoline (`trampoline`), which then execs the command.
    ExecHelper,
}

const STEPS: [Step; 30] = [
    Step::Stdio,
    Step::Dumpable,
    Step::JoinNamespace,
    Step::RootPropagation,
    Step::Rootfs,
    Step::MountTarget,
    Step::Mount,
    Step::Device,
    Step::MaskPath,
    Step::ReadonlyPath,
    Step::PivotRoot,
    Step::ReadonlyRoot,
    Step::Hostname,
    Step::Domainname,
    Step::Sysctl,
    Step::Cwd,
    Step::Rlimit,
    Step::CapabilityBounding,
    Step::User,
    Step::Capabilities,
    Step::NoNewPrivileges,
    Step::Seccomp,
    Step::CloseFds,
    Step::Signals,
    Step::Exec,
    Step::Terminal,
    Step::Loopback,
    Step::Cgroup,
    Step::StartWait,
    Step::ExecHelper,
];

impl Step {
    fn from_u32(v: u32) -> Option<Step> {
        STEPS.iter().copied().find(|s| *s as u32 == v)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Step::Stdio => "set up stdio",
            Step::Dumpable => "make the init non-dumpable",
            Step::JoinNamespace => "join namespace",
            Step::RootPropagation => "make the mount tree private",
            Step::Rootfs => "mount the rootfs",
            Step::MountTarget => "create mount point",
            Step::Mount => "mount",
            Step::Device => "create device",
            Step::MaskPath => "mask path",
            Step::ReadonlyPath => "make path read-only",
            Step::PivotRoot => "pivot_root into the rootfs",
            Step::ReadonlyRoot => "make the rootfs read-only",
            Step::Hostname => "set hostname",
            Step::Domainname => "set domainname",
            Step::Sysctl => "set sysctl",
            Step::Cwd => "change to working directory",
            Step::Rlimit => "set rlimit",
            Step::CapabilityBounding => "drop capabilities from the bounding set",
            Step::User => "switch user",
            Step::Capabilities => "set capabilities",
            Step::NoNewPrivileges => "set no_new_privs",
            Step::Seccomp => "load the seccomp filter",
            Step::CloseFds => "close inherited file descriptors",
            Step::Signals => "reset signals",
            Step::Exec => "exec",
            Step::Terminal => "set up the terminal",
            Step::Loopback => "bring up the loopback interface",
            Step::Cgroup => "enter the cgroup",
            Step::StartWait => "wait for the start command",
            Step::ExecHelper => "start the exec trampoline",
        }
    }
}

/// One failure of the init: `index` says which item of the step's list (0 when there is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fail {
    pub step: Step,
    pub errno: i32,
    pub index: u32,
}

/// Bytes of an encoded [`Fail`].
pub const FAIL_LEN: usize = 12;

/// What an init told to wait for its start command writes on the status pipe once it is set
/// up and about to block (never a valid [`Fail`]: no step is numbered `u32::MAX`).
pub const READY: [u8; FAIL_LEN] = [0xff; FAIL_LEN];

impl Fail {
    pub fn new(step: Step, errno: i32) -> Fail {
        Fail {
            step,
            errno,
            index: 0,
        }
    }

    pub fn at(step: Step, index: usize, errno: i32) -> Fail {
        Fail {
            step,
            errno,
            index: index as u32,
        }
    }

    pub fn encode(&self) -> [u8; FAIL_LEN] {
        let mut out = [0u8; FAIL_LEN];
        let (a, rest) = out.split_at_mut(4);
        let (b, c) = rest.split_at_mut(4);
        a.copy_from_slice(&(self.step as u32).to_ne_bytes());
        b.copy_from_slice(&self.errno.to_ne_bytes());
        c.copy_from_slice(&self.index.to_ne_bytes());
        out
    }

    pub fn decode(buf: &[u8; FAIL_LEN]) -> Option<Fail> {
        let word = |i: usize| -> [u8; 4] {
            let mut w = [0u8; 4];
            w.copy_from_slice(&buf[i..i + 4]);
            w
        };
        Some(Fail {
            step: Step::from_u32(u32::from_ne_bytes(word(0)))?,
            errno: i32::from_ne_bytes(word(4)),
            index: u32::from_ne_bytes(word(8)),
        })
    }
}

/// Docker's exit code for a process that failed before exec at `step` with `errno`: 127 when
/// the executable is not found, 126 when it cannot be executed, 125 for anything else.
pub fn exit_code(step: Step, errno: i32) -> i32 {
    use crate::container::{EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_START_FAILED};
    match (step, errno) {
        (Step::Exec, libc::ENOENT | libc::ENOTDIR) => EXIT_NOT_FOUND,
        (Step::Exec, _) => EXIT_CANNOT_EXECUTE,
        _ => EXIT_START_FAILED,
    }
}

/// `errno` as the end of a message: `strerror`, lower-cased, without Rust's " (os error N)".
pub fn reason(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    text.rfind(" (os error ")
        .map_or(text.as_str(), |at| &text[..at])
        .to_lowercase()
}

/// Maps a child failure errno to a value for a `Result` in the child.
pub trait FailAt<T> {
    fn at(self, step: Step, index: usize) -> Result<T, Fail>;
    fn on(self, step: Step) -> Result<T, Fail>;
}

impl<T> FailAt<T> for Result<T, i32> {
    fn at(self, step: Step, index: usize) -> Result<T, Fail> {
        self.map_err(|e| Fail::at(step, index, e))
    }
    fn on(self, step: Step) -> Result<T, Fail> {
        self.map_err(|e| Fail::new(step, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for step in STEPS {
            let f = Fail::at(step, 7, libc::ENOENT);
            assert_eq!(Fail::decode(&f.encode()), Some(f));
        }
        assert_eq!(Fail::decode(&[0u8; FAIL_LEN]), None);
        assert_eq!(Fail::decode(&READY), None);
    }

    #[test]
    fn docker_exit_codes_and_reasons() {
        assert_eq!(exit_code(Step::Exec, libc::ENOENT), 127);
        assert_eq!(exit_code(Step::Exec, libc::ENOTDIR), 127);
        assert_eq!(exit_code(Step::Exec, libc::EACCES), 126);
        assert_eq!(exit_code(Step::Mount, libc::ENOENT), 125);
        assert_eq!(reason(libc::ENOENT), "no such file or directory");
    }
}
