//! `linux.seccomp` compiled to a BPF program with libseccomp, in the parent.
//!
//! The child only hands the finished program to `seccomp(SECCOMP_SET_MODE_FILTER)`; nothing of
//! libseccomp runs after clone. As in runc, syscall names this libseccomp does not know are
//! skipped (profiles list syscalls of newer kernels), rules whose action equals the default are
//! dropped, and several conditions on the same argument become separate rules (an OR).
//! [`plan`] goes through [`seccomp_cache`](crate::seccomp_cache), so a profile is
//! compiled once per machine rather than per container.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::failure::{Fail, FailAt, Step};
use crate::seccomp_cache::{self, Program, MAX_INSNS};
use crate::sys::Sys;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: {what}: {source}")]
    Lib {
        what: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("seccomp: {what} is not supported")]
    Unsupported { what: String },
    #[error("seccomp: cannot export the filter: {source}")]
    Export {
        #[source]
        source: std::io::Error,
    },
    #[error("seccomp: the compiled filter has {len} instructions, more than the kernel's 4096")]
    TooLong { len: usize },
    #[error("seccomp: cannot serialise the profile for the cache key: {source}")]
    Key {
        #[source]
        source: serde_json::Error,
    },
    #[error("seccomp: filter cache {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("seccomp: filter cache {}: {len} bytes is not a BPF program", path.display())]
    CorruptCache { path: PathBuf, len: usize },
}

/// A compiled filter, ready for `seccomp(2)`; the program is shared with the cache.
#[derive(Debug, Clone)]
pub struct SeccompPlan {
    pub program: Program,
    pub flags: u32,
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, SeccompError> {
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno.map_or(libc::EPERM, |e| e as i32))
        }
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.map_or(libc::EPERM as u16, |e| e as u16))
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Unsupported {
                what: "SCMP_ACT_NOTIFY".into(),
            })
        }
    })
}

fn arch(a: Arch) -> Option<ScmpArch> {
    Some(match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        _ => return None,
    })
}

fn compare(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // OCI: value is the mask, valueTwo the expected result.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    }
}

fn lib(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let what = what.into();
    move |source| SeccompError::Lib { what, source }
}

/// The filter for the spec's seccomp section, compiled unless this process or `cache_dir`
/// already holds it.
pub fn plan(spec: &LinuxSeccomp, cache_dir: Option<&Path>) -> Result<SeccompPlan, SeccompError> {
    // Checked before the cache so an unsupported profile fails the same way every time.
    let flags = filter_flags(spec)?;
    let (program, _) = seccomp_cache::PROCESS.get(spec, cache_dir, || compile_program(spec))?;
    Ok(SeccompPlan { program, flags })
}

/// Compiles the spec's seccomp section for this machine's architectures, bypassing the cache.
pub fn compile(spec: &LinuxSeccomp) -> Result<SeccompPlan, SeccompError> {
    Ok(SeccompPlan {
        flags: filter_flags(spec)?,
        program: compile_program(spec)?.into(),
    })
}

fn compile_program(spec: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let default = action(spec.default_action(), spec.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("create the filter"))?;
    // barque sets no_new_privs itself when the spec asks; libseccomp must not.
    ctx.set_ctl_nnp(false).map_err(lib("disable NNP"))?;
    // A binary tree of syscall numbers instead of a linear list: loading the filter makes the
    // kernel run it once per syscall number (to find the always-allowed ones), and every
    // syscall the container makes walks it. libseccomp before 2.5 lacks the option: the
    // linear program is as correct.
    let _ = ctx.set_ctl_optimize(2);
    for a in spec.architectures().iter().flatten() {
        if let Some(a) = arch(*a) {
            ctx.add_arch(a)
                .map_err(lib(format!("add architecture {a:?}")))?;
        }
    }
    for rule in spec.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        let conditions: Vec<ScmpArgCompare> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| {
                let (op, datum) = compare(a.op(), a.value(), a.value_two());
                ScmpArgCompare::new(a.index() as u32, op, datum)
            })
            .collect();
        let mut indices: Vec<usize> = rule.args().iter().flatten().map(|a| a.index()).collect();
        indices.sort_unstable();
        let repeated = indices.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let what = || format!("rule for {name}");
            if conditions.is_empty() {
                ctx.add_rule(act, sc).map_err(lib(what()))?;
            } else if repeated {
                for c in &conditions {
                    ctx.add_rule_conditional(act, sc, std::slice::from_ref(c))
                        .map_err(lib(what()))?;
                }
            } else {
                ctx.add_rule_conditional(act, sc, &conditions)
                    .map_err(lib(what()))?;
            }
        }
    }
    export(&ctx)
}

/// The `seccomp(2)` flags the spec asks for (they are not part of the program).
fn filter_flags(spec: &LinuxSeccomp) -> Result<u32, SeccompError> {
    // Refused here rather than while compiling, so a cached program cannot hide it.
    let notify = LinuxSeccompAction::ScmpActNotify;
    if spec.default_action() == notify
        || spec
            .syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == notify)
    {
        return Err(SeccompError::Unsupported {
            what: "SCMP_ACT_NOTIFY".into(),
        });
    }
    let mut flags = 0u32;
    for f in spec.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // One thread in the init: TSYNC means nothing; WAIT_KILLABLE_RECV needs a listener.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        } as u32;
    }
    Ok(flags)
}

fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    // SAFETY: memfd_create with a static name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"barque-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(SeccompError::Export {
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: fd was just created and is owned here.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file).map_err(lib("export"))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|source| SeccompError::Export { source })?;
    let program: Vec<libc::sock_filter> = bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    if program.len() > MAX_INSNS {
        return Err(SeccompError::TooLong { len: program.len() });
    }
    Ok(program)
}

impl SeccompPlan {
    pub fn load<S: Sys>(&self, sys: &S) -> Result<(), Fail> {
        sys.seccomp(self.flags, &self.program).on(Step::Seccomp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn compiles_a_small_profile() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["read", "write", "exit_group", "no_such_syscall_xyz"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ]
        }));
        let plan = compile(&p).unwrap();
        assert!(plan.program.len() > 10, "{}", plan.program.len());
        // The last instruction of a libseccomp filter is a return.
        assert_eq!(plan.program.last().unwrap().code, 0x06);
        assert_eq!(plan.flags, 0);
    }

    #[test]
    fn refuses_notify() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert!(matches!(compile(&p), Err(SeccompError::Unsupported { .. })));
    }

    /// Loads a filter in a forked child and checks the syscall is refused with the errno.
    #[test]
    fn filter_works_in_a_child() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]
        }));
        let plan = compile(&p).unwrap();
        // SAFETY: the child only makes raw syscalls and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let sys = crate::sys::Linux;
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            let code = match plan.load(&sys) {
                Err(_) => 1,
                Ok(()) => {
                    let r = unsafe { libc::syscall(libc::SYS_getpriority, 0, 0) };
                    let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                    if r == -1 && e == 42 {
                        0
                    } else {
                        2
                    }
                }
            };
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
