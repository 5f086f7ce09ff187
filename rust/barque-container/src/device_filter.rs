//! The device cgroup of cgroup v2: a `BPF_PROG_TYPE_CGROUP_DEVICE` program generated from the
//! spec's `linux.resources.devices`, loaded with `bpf(BPF_PROG_LOAD)` and attached to the
//! container's cgroup directory (`BPF_PROG_ATTACH`, `BPF_F_ALLOW_MULTI`, so programs of
//! ancestors keep their say).
//!
//! cgroup v2 has no `devices.allow`/`devices.deny` files: the kernel asks the program on every
//! open and mknod of a device node. The rules mean what they mean to cgroup v1 (which is what
//! the OCI spec describes), so they are first replayed the way v1's `devices.allow`/`deny`
//! handle them -- a default (allow or deny all) and exceptions merged per (type, major,
//! minor) -- and the program encodes that final state: an access is the default's answer
//! unless an exception matches it. The program stays attached after its descriptor is closed
//! and goes with the cgroup.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    #[error("invalid device cgroup rule {rule:?}: {reason}")]
    InvalidRule { rule: String, reason: &'static str },
    #[error("cannot open the cgroup {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot load the device filter for {}: {source}{}", path.display(), verifier(.log))]
    Load {
        path: PathBuf,
        source: io::Error,
        log: String,
    },
    #[error("cannot attach the device filter to {}: {source}", path.display())]
    Attach { path: PathBuf, source: io::Error },
}

fn verifier(log: &str) -> String {
    match log.trim() {
        "" => String::new(),
        text => format!(" (verifier: {})", text.lines().last().unwrap_or(text)),
    }
}

impl DeviceFilterError {
    pub fn class(&self) -> ErrorClass<'_> {
        match self {
            DeviceFilterError::InvalidRule { .. } => ErrorClass::Usage,
            DeviceFilterError::Open { path, source }
            | DeviceFilterError::Load { path, source, .. }
            | DeviceFilterError::Attach { path, source } => ErrorClass::Os {
                errno: source.raw_os_error().unwrap_or(libc::EIO),
                path: Some(path),
            },
        }
    }
}

/// Access bits, as the kernel encodes them for both cgroup versions (`BPF_DEVCG_ACC_*`).
pub const MKNOD: u8 = 1;
pub const READ: u8 = 2;
pub const WRITE: u8 = 4;
const ALL_ACCESS: u8 = MKNOD | READ | WRITE;

/// What a rule is about: every device (only ever a reset of the whole list, as in v1), or
/// block or char devices (`BPF_DEVCG_DEV_BLOCK` = 1, `BPF_DEVCG_DEV_CHAR` = 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    All,
    Block,
    Char,
}

impl DeviceKind {
    fn letter(self) -> char {
        match self {
            DeviceKind::All => 'a',
            DeviceKind::Block => 'b',
            DeviceKind::Char => 'c',
        }
    }

    fn bpf_code(self) -> i32 {
        match self {
            DeviceKind::All => 0,
            DeviceKind::Block => 1,
            DeviceKind::Char => 2,
        }
    }
}

/// One rule of `linux.resources.devices`; `None` numbers are wildcards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

fn access_bits(text: &str, rule: &str) -> Result<u8, DeviceFilterError> {
    let mut bits = 0;
    for c in text.chars() {
        bits |= match c {
            'm' => MKNOD,
            'r' => READ,
            'w' => WRITE,
            _ => {
                return Err(DeviceFilterError::InvalidRule {
                    rule: rule.to_owned(),
                    reason: "access is a combination of r, w and m",
                })
            }
        };
    }
    Ok(bits)
}

/// A device number of a rule: negative means any (runc's wildcard, -1); the program compares
/// 32-bit immediates, and no device number reaches 2^31.
fn number(n: Option<i64>, rule: &str) -> Result<Option<u32>, DeviceFilterError> {
    match n {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(n) => match u32::try_from(n) {
            Ok(n) if n <= i32::MAX as u32 => Ok(Some(n)),
            _ => Err(DeviceFilterError::InvalidRule {
                rule: rule.to_owned(),
                reason: "device number out of range",
            }),
        },
    }
}

impl DeviceRule {
    /// The rule of an OCI `linux.resources.devices` entry (no type or "a": every device; no
    /// access: "rwm").
    pub fn from_oci(d: &LinuxDeviceCgroup) -> Result<DeviceRule, DeviceFilterError> {
        let text = d.to_string();
        let kind = match d.typ() {
            None | Some(LinuxDeviceType::A) => DeviceKind::All,
            Some(LinuxDeviceType::B) => DeviceKind::Block,
            Some(LinuxDeviceType::C | LinuxDeviceType::U) => DeviceKind::Char,
            Some(LinuxDeviceType::P) => {
                return Err(DeviceFilterError::InvalidRule {
                    rule: text,
                    reason: "the device cgroup knows types a, b and c only",
                })
            }
        };
        let access = match d.access().as_deref() {
            None | Some("") => ALL_ACCESS,
            Some(a) => access_bits(a, &text)?,
        };
        Ok(DeviceRule {
            allow: d.allow(),
            kind,
            major: number(d.major(), &text)?,
            minor: number(d.minor(), &text)?,
            access,
        })
    }

    /// A rule in cgroup v1's syntax, `TYPE MAJOR:MINOR ACCESS` (`c 1:3 rwm`, `b *:* m`, `a`).
    pub fn parse(allow: bool, text: &str) -> Result<DeviceRule, DeviceFilterError> {
        let invalid = |reason| DeviceFilterError::InvalidRule {
            rule: text.to_owned(),
            reason,
        };
        let mut fields = text.split_whitespace();
        let kind = match fields.next() {
            Some("a") => DeviceKind::All,
            Some("b") => DeviceKind::Block,
            Some("c") => DeviceKind::Char,
            _ => return Err(invalid("the type is a, b or c")),
        };
        let (major, minor) = match fields.next() {
            None => (None, None),
            Some(numbers) => {
                let (major, minor) = numbers
                    .split_once(':')
                    .ok_or_else(|| invalid("numbers are MAJOR:MINOR"))?;
                let parse = |n: &str| match n {
                    "*" => Ok(None),
                    _ => n
                        .parse::<i64>()
                        .map_err(|_| invalid("a device number is a number or *"))
                        .and_then(|n| number(Some(n), text)),
                };
                (parse(major)?, parse(minor)?)
            }
        };
        let access = fields
            .next()
            .map_or(Ok(ALL_ACCESS), |a| access_bits(a, text))?;
        Ok(DeviceRule {
            allow,
            kind,
            major,
            minor,
            access,
        })
    }

    /// The line cgroup v1's `devices.allow` or `devices.deny` takes for this rule.
    pub fn v1_line(&self) -> String {
        if self.kind == DeviceKind::All {
            return "a".to_owned();
        }
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        let mut access = String::new();
        for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        format!(
            "{} {}:{} {access}",
            self.kind.letter(),
            num(self.major),
            num(self.minor)
        )
    }
}

/// An exception to the default: accesses to the devices it names get the other answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exception {
    kind: DeviceKind,
    major: Option<u32>,
    minor: Option<u32>,
    access: u8,
}

/// The state cgroup v1 would be in after the rules: a default and its exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFilter {
    default_allow: bool,
    exceptions: Vec<Exception>,
}

impl DeviceFilter {
    /// Replays `rules` in order from a cgroup that allows everything, as v1 does: "a" resets
    /// the list to allow or deny all; a rule agreeing with the default takes its access away
    /// from the exception of the same type and numbers, any other adds to it.
    pub fn new(rules: &[DeviceRule]) -> DeviceFilter {
        let mut filter = DeviceFilter {
            default_allow: true,
            exceptions: Vec::new(),
        };
        for rule in rules {
            if rule.kind == DeviceKind::All {
                filter.default_allow = rule.allow;
                filter.exceptions.clear();
                continue;
            }
            let same = filter.exceptions.iter().position(|e| {
                e.kind == rule.kind && e.major == rule.major && e.minor == rule.minor
            });
            if rule.allow == filter.default_allow {
                if let Some(i) = same {
                    filter.exceptions[i].access &= !rule.access;
                    if filter.exceptions[i].access == 0 {
                        filter.exceptions.remove(i);
                    }
                }
            } else if let Some(i) = same {
                filter.exceptions[i].access |= rule.access;
            } else {
                filter.exceptions.push(Exception {
                    kind: rule.kind,
                    major: rule.major,
                    minor: rule.minor,
                    access: rule.access,
                });
            }
        }
        filter
    }

    /// Whether it allows everything (then no program is needed).
    pub fn allows_all(&self) -> bool {
        self.default_allow && self.exceptions.is_empty()
    }

    /// The program. On entry r1 points at `struct bpf_cgroup_dev_ctx { u32 access_type
    /// (access << 16 | type); u32 major; u32 minor; }`; it returns 1 to allow, 0 to refuse
    /// (EPERM). One block per exception, each falling through to the next on a mismatch:
    /// under a deny default an exception must grant every bit asked for (v1's
    /// `match_exception`), under an allow default any bit in common refuses
    /// (`match_exception_partial`).
    pub fn program(&self) -> Vec<Insn> {
        let mut prog = vec![
            Insn::load_u32(ACCESS, CTX, 0),
            Insn::mov_reg(TYPE, ACCESS),
            Insn::and_imm(TYPE, 0xffff),
            Insn::rsh_imm(ACCESS, 16),
            Insn::load_u32(MAJOR, CTX, 4),
            Insn::load_u32(MINOR, CTX, 8),
        ];
        let answer = if self.default_allow { 0 } else { 1 };
        for e in &self.exceptions {
            // (instruction, whether it jumps past the block when taken)
            let mut block: Vec<(Insn, bool)> = Vec::new();
            block.push((Insn::jump_ne(TYPE, e.kind.bpf_code()), true));
            if let Some(major) = e.major {
                block.push((Insn::jump_ne(MAJOR, major as i32), true));
            }
            if let Some(minor) = e.minor {
                block.push((Insn::jump_ne(MINOR, minor as i32), true));
            }
            if self.default_allow {
                // No bit in common: not this exception.
                block.push((Insn::jump_set(ACCESS, i32::from(e.access), 1), false));
                block.push((Insn::jump(0), true));
            } else {
                let missing = ALL_ACCESS & !e.access;
                if missing != 0 {
                    // Asks for a bit the exception does not grant: not this exception.
                    block.push((Insn::jump_set(ACCESS, i32::from(missing), 0), true));
                }
            }
            block.push((Insn::mov_imm(RESULT, answer), false));
            block.push((Insn::exit(), false));
            let len = block.len();
            for (at, (mut insn, past_block)) in block.into_iter().enumerate() {
                if past_block {
                    insn.off = (len - at - 1) as i16;
                }
                prog.push(insn);
            }
        }
        prog.push(Insn::mov_imm(RESULT, i32::from(self.default_allow)));
        prog.push(Insn::exit());
        prog
    }
}

/// `struct bpf_insn`: opcode, destination and source registers (4 bits each), offset,
/// immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Registers: r0 the result, r1 the context on entry; the rest are scratch.
const RESULT: u8 = 0;
const CTX: u8 = 1;
const ACCESS: u8 = 2;
const TYPE: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;

// Opcodes (linux/bpf_common.h, linux/bpf.h): class | operation | source.
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const ALU64_MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const ALU64_AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const ALU64_RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const JMP_JA: u8 = 0x05; // BPF_JMP | BPF_JA
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JSET_K: u8 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
    fn load_u32(dst: u8, base: u8, off: i16) -> Insn {
        Insn::new(LDX_MEM_W, dst, base, off, 0)
    }
    fn mov_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(ALU64_MOV_K, dst, 0, 0, imm)
    }
    fn mov_reg(dst: u8, src: u8) -> Insn {
        Insn::new(ALU64_MOV_X, dst, src, 0, 0)
    }
    fn and_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(ALU64_AND_K, dst, 0, 0, imm)
    }
    fn rsh_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(ALU64_RSH_K, dst, 0, 0, imm)
    }
    /// Jumps (offset patched by the caller) when `dst != imm`.
    fn jump_ne(dst: u8, imm: i32) -> Insn {
        Insn::new(JMP_JNE_K, dst, 0, 0, imm)
    }
    /// Jumps `off` instructions ahead when `dst & imm != 0`.
    fn jump_set(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(JMP_JSET_K, dst, 0, off, imm)
    }
    fn jump(off: i16) -> Insn {
        Insn::new(JMP_JA, 0, 0, off, 0)
    }
    fn exit() -> Insn {
        Insn::new(JMP_EXIT, 0, 0, 0, 0)
    }
}

/// The `bpf(2)` calls the filter needs, behind a trait so attaching can be tested without a
/// kernel.
pub trait Bpf {
    /// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program; on failure, the error and the
    /// verifier's log.
    fn load_device_program(&self, prog: &[Insn]) -> Result<OwnedFd, (io::Error, String)>;
    /// Attaches it to the cgroup open at `cgroup` (`BPF_CGROUP_DEVICE`, `BPF_F_ALLOW_MULTI`).
    fn attach_device_program(&self, cgroup: RawFd, prog: RawFd) -> io::Result<()>;
}

/// The kernel's `bpf(2)`.
pub struct KernelBpf;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The leading fields of `union bpf_attr` for `BPF_PROG_LOAD`; the kernel takes a shorter
/// attr as if the rest were zero.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_PROG_ATTACH`.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `repr(C)` prefix of `union bpf_attr` whose size
    // is passed along; every pointer in it refers to memory the caller keeps alive.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl KernelBpf {
    fn load(&self, prog: &[Insn], log: &mut [u8]) -> io::Result<OwnedFd> {
        let license = c"Apache-2.0";
        let mut name = [0u8; 16];
        name[..7].copy_from_slice(b"barque\0");
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: prog.len() as u32,
            insns: prog.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            // No buffer at all without a log: the kernel refuses a pointer with size 0.
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            prog_name: name,
            ..ProgLoadAttr::default()
        };
        let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
        // SAFETY: a new descriptor the kernel just gave us.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }
}

impl Bpf for KernelBpf {
    fn load_device_program(&self, prog: &[Insn]) -> Result<OwnedFd, (io::Error, String)> {
        match self.load(prog, &mut []) {
            Ok(fd) => Ok(fd),
            Err(first) if first.raw_os_error() == Some(libc::EINVAL) => {
                // Again with the verifier's log, to say why.
                let mut log = vec![0u8; 16 * 1024];
                match self.load(prog, &mut log) {
                    // Only a verbose load went through: use it.
                    Ok(fd) => Ok(fd),
                    Err(err) => {
                        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                        Err((err, String::from_utf8_lossy(&log[..end]).into_owned()))
                    }
                }
            }
            Err(e) => Err((e, String::new())),
        }
    }

    fn attach_device_program(&self, cgroup: RawFd, prog: RawFd) -> io::Result<()> {
        let mut attr = ProgAttachAttr {
            target_fd: cgroup as u32,
            attach_bpf_fd: prog as u32,
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: BPF_F_ALLOW_MULTI,
            ..ProgAttachAttr::default()
        };
        bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
    }
}

/// Restricts the devices of the cgroup v2 directory `dir` to what `rules` allow: loads their
/// program and attaches it (nothing when they allow everything).
pub fn attach<B: Bpf>(bpf: &B, dir: &Path, rules: &[DeviceRule]) -> Result<(), DeviceFilterError> {
    let filter = DeviceFilter::new(rules);
    if filter.allows_all() {
        return Ok(());
    }
    let cgroup = open_dir(dir)?;
    let prog = bpf
        .load_device_program(&filter.program())
        .map_err(|(source, log)| DeviceFilterError::Load {
            path: dir.to_owned(),
            source,
            log,
        })?;
    bpf.attach_device_program(cgroup.as_raw_fd(), prog.as_raw_fd())
        .map_err(|source| DeviceFilterError::Attach {
            path: dir.to_owned(),
            source,
        })
}

fn open_dir(dir: &Path) -> Result<OwnedFd, DeviceFilterError> {
    let err = |source| DeviceFilterError::Open {
        path: dir.to_owned(),
        source,
    };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| err(io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: a valid C string.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: just opened, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Runs `prog` the way the kernel would on one access: just the instructions the
    /// generator emits.
    fn run(prog: &[Insn], kind: DeviceKind, major: u32, minor: u32, access: u8) -> u64 {
        let ctx = [
            (u32::from(access) << 16) | kind.bpf_code() as u32,
            major,
            minor,
        ];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let insn = prog[pc];
            let (dst, src) = ((insn.regs & 0x0f) as usize, (insn.regs >> 4) as usize);
            let imm = insn.imm as i64 as u64;
            let jump = |taken: bool| {
                if taken {
                    pc as i64 + 1 + i64::from(insn.off)
                } else {
                    pc as i64 + 1
                }
            };
            let next = match insn.code {
                LDX_MEM_W => {
                    assert_eq!(src, CTX as usize, "loads only from the context");
                    r[dst] = u64::from(ctx[insn.off as usize / 4]);
                    pc as i64 + 1
                }
                ALU64_MOV_K => {
                    r[dst] = imm;
                    pc as i64 + 1
                }
                ALU64_MOV_X => {
                    r[dst] = r[src];
                    pc as i64 + 1
                }
                ALU64_AND_K => {
                    r[dst] &= imm;
                    pc as i64 + 1
                }
                ALU64_RSH_K => {
                    r[dst] >>= imm;
                    pc as i64 + 1
                }
                JMP_JA => jump(true),
                JMP_JNE_K => jump(r[dst] != imm),
                JMP_JSET_K => jump(r[dst] & imm != 0),
                JMP_EXIT => return r[0],
                op => panic!("unexpected opcode {op:#x}"),
            };
            pc = usize::try_from(next).unwrap();
            assert!(pc < prog.len(), "jumped out of the program");
        }
        panic!("the program does not end");
    }

    fn rules(list: &[(bool, &str)]) -> Vec<DeviceRule> {
        list.iter()
            .map(|(allow, text)| DeviceRule::parse(*allow, text).unwrap())
            .collect()
    }

    /// Docker's defaults and runc's additions, as barque's spec carries them.
    fn docker_defaults() -> Vec<DeviceRule> {
        rules(&[
            (false, "a"),
            (true, "c *:* m"),
            (true, "b *:* m"),
            (true, "c 1:3 rwm"),
            (true, "c 1:5 rwm"),
            (true, "c 1:7 rwm"),
            (true, "c 1:8 rwm"),
            (true, "c 1:9 rwm"),
            (true, "c 5:0 rwm"),
            (true, "c 5:1 rwm"),
            (true, "c 5:2 rwm"),
            (true, "c 136:* rwm"),
            (true, "c 10:200 rwm"),
        ])
    }

    use DeviceKind::{Block, Char};

    #[test]
    fn docker_defaults_allow_the_usual_nodes_and_mknod_only() {
        let prog = DeviceFilter::new(&docker_defaults()).program();
        for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
            assert_eq!(run(&prog, Char, major, minor, READ | WRITE), 1);
        }
        assert_eq!(run(&prog, Char, 136, 4, READ | WRITE), 1);
        assert_eq!(run(&prog, Char, 10, 200, READ), 1);
        // mknod of anything, but not opening it.
        assert_eq!(run(&prog, Block, 254, 0, MKNOD), 1);
        assert_eq!(run(&prog, Char, 1, 11, MKNOD), 1);
        assert_eq!(run(&prog, Block, 254, 0, READ), 0);
        assert_eq!(run(&prog, Block, 8, 0, READ | WRITE), 0);
        assert_eq!(run(&prog, Char, 1, 11, WRITE), 0); // kmsg
        assert_eq!(run(&prog, Char, 1, 1, READ), 0); // mem
        assert_eq!(run(&prog, Char, 10, 229, READ | WRITE), 0); // fuse
        assert_eq!(run(&prog, Block, 1, 3, READ), 0); // the type matters
    }

    #[test]
    fn an_exception_must_grant_every_bit_asked_for() {
        let prog = DeviceFilter::new(&rules(&[(false, "a"), (true, "c 1:3 r")])).program();
        assert_eq!(run(&prog, Char, 1, 3, READ), 1);
        assert_eq!(run(&prog, Char, 1, 3, READ | WRITE), 0);
        // Rules for the same node add up, as v1's list merges them.
        let merged = rules(&[(false, "a"), (true, "c 1:3 r"), (true, "c 1:3 w")]);
        let prog = DeviceFilter::new(&merged).program();
        assert_eq!(run(&prog, Char, 1, 3, READ | WRITE), 1);
        assert_eq!(run(&prog, Char, 1, 3, MKNOD), 0);
    }

    #[test]
    fn a_later_deny_takes_access_back_and_a_reset_clears_the_list() {
        let list = rules(&[(false, "a"), (true, "c 1:3 rwm"), (false, "c 1:3 w")]);
        let prog = DeviceFilter::new(&list).program();
        assert_eq!(run(&prog, Char, 1, 3, READ), 1);
        assert_eq!(run(&prog, Char, 1, 3, WRITE), 0);
        let list = rules(&[(false, "a"), (true, "c 1:3 rwm"), (false, "a")]);
        assert_eq!(
            run(&DeviceFilter::new(&list).program(), Char, 1, 3, READ),
            0
        );
    }

    #[test]
    fn allow_all_needs_no_program_and_deny_exceptions_refuse_any_common_bit() {
        let privileged = rules(&[(true, "a")]);
        assert!(DeviceFilter::new(&privileged).allows_all());
        assert!(DeviceFilter::new(&[]).allows_all());
        let list = rules(&[(true, "a"), (false, "b 8:* w")]);
        let filter = DeviceFilter::new(&list);
        assert!(!filter.allows_all());
        let prog = filter.program();
        assert_eq!(run(&prog, Block, 8, 1, READ), 1);
        assert_eq!(run(&prog, Block, 8, 1, READ | WRITE), 0);
        assert_eq!(run(&prog, Block, 9, 1, WRITE), 1);
        assert_eq!(run(&prog, Char, 8, 1, WRITE), 1);
    }

    #[test]
    fn program_structure() {
        let prog = DeviceFilter::new(&rules(&[(false, "a"), (true, "c 1:3 rw")])).program();
        // Prologue of 6, one block (type, major, minor, access, result, exit), epilogue.
        assert_eq!(prog.len(), 6 + 6 + 2);
        assert_eq!(prog[6], Insn::new(JMP_JNE_K, TYPE, 0, 5, 2));
        assert_eq!(
            prog[9],
            Insn::new(JMP_JSET_K, ACCESS, 0, 2, i32::from(MKNOD))
        );
        assert_eq!(&prog[12..], &[Insn::mov_imm(RESULT, 0), Insn::exit()]);
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }

    #[test]
    fn oci_rules_and_v1_lines() {
        let oci: Vec<LinuxDeviceCgroup> = serde_json::from_value(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
            {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "mr"},
            {"allow": true, "type": "c", "major": -1, "minor": -1, "access": "m"}
        ]))
        .unwrap();
        let lines: Vec<String> = oci
            .iter()
            .map(|d| DeviceRule::from_oci(d).unwrap().v1_line())
            .collect();
        assert_eq!(lines, ["a", "c 136:* rwm", "b 7:0 rm", "c *:* m"]);
        let fifo: LinuxDeviceCgroup =
            serde_json::from_value(serde_json::json!({"allow": true, "type": "p"})).unwrap();
        assert!(DeviceRule::from_oci(&fifo).is_err());
        let bad: LinuxDeviceCgroup =
            serde_json::from_value(serde_json::json!({"allow": true, "type": "c", "access": "rx"}))
                .unwrap();
        let err = DeviceRule::from_oci(&bad).unwrap_err().to_string();
        assert!(err.contains("access"), "{err}");
        assert!(DeviceRule::parse(true, "c 1").is_err());
        assert!(DeviceRule::parse(true, "x 1:3 r").is_err());
    }

    #[derive(Default)]
    struct FakeBpf {
        loaded: RefCell<Vec<Vec<Insn>>>,
        attach_error: Option<i32>,
    }

    impl Bpf for FakeBpf {
        fn load_device_program(&self, prog: &[Insn]) -> Result<OwnedFd, (io::Error, String)> {
            self.loaded.borrow_mut().push(prog.to_vec());
            Ok(std::fs::File::open("/dev/null").unwrap().into())
        }
        fn attach_device_program(&self, _cgroup: RawFd, _prog: RawFd) -> io::Result<()> {
            self.attach_error
                .map_or(Ok(()), |e| Err(io::Error::from_raw_os_error(e)))
        }
    }

    #[test]
    fn attach_loads_one_program_and_names_the_cgroup_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let bpf = FakeBpf::default();
        attach(&bpf, dir.path(), &docker_defaults()).unwrap();
        assert_eq!(bpf.loaded.borrow().len(), 1);
        attach(&bpf, dir.path(), &rules(&[(true, "a")])).unwrap();
        assert_eq!(bpf.loaded.borrow().len(), 1, "allow-all needs no program");
        let refusing = FakeBpf {
            attach_error: Some(libc::EPERM),
            ..FakeBpf::default()
        };
        let err = attach(&refusing, dir.path(), &docker_defaults()).unwrap_err();
        assert!(
            matches!(err.class(), ErrorClass::Os { errno: libc::EPERM, path: Some(p) } if p == dir.path())
        );
        let missing = dir.path().join("gone");
        let err = attach(&bpf, &missing, &docker_defaults()).unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
    }

    /// The real kernel: the verifier accepts the program, and in a cgroup v2 directory it
    /// refuses what the rules deny. Needs root and a cgroup2 mount (skipped otherwise).
    #[test]
    fn the_kernel_enforces_the_program() {
        let Some(root) = cgroup2_mount() else {
            eprintln!("skipped: no cgroup2 hierarchy mounted");
            return;
        };
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = root.join(format!("barque-device-filter-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let result = std::panic::catch_unwind(|| {
            attach(&KernelBpf, &dir, &docker_defaults()).unwrap();
            let procs =
                std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()).unwrap();
            // A child joins the cgroup, then reports what opening each node gave.
            // SAFETY: the child only makes async-signal-safe calls before _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let code = unsafe {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                    if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        libc::_exit(3);
                    }
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                    let kmsg = libc::open(c"/dev/kmsg".as_ptr(), libc::O_RDONLY);
                    let kmsg_errno = *libc::__errno_location();
                    match (null >= 0, kmsg < 0 && kmsg_errno == libc::EPERM) {
                        (true, true) => 0,
                        (false, _) => 1,
                        (true, false) => 2,
                    }
                };
                unsafe { libc::_exit(code) };
            }
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            assert!(libc::WIFEXITED(status));
            libc::WEXITSTATUS(status)
        });
        let _ = std::fs::remove_dir(&dir);
        assert_eq!(
            result.unwrap(),
            0,
            "1: /dev/null refused, 2: /dev/kmsg not refused with EPERM, 3: cannot join"
        );
    }

    fn cgroup2_mount() -> Option<PathBuf> {
        let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        text.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            (fields.get(sep + 1) == Some(&"cgroup2")).then(|| PathBuf::from(fields[4]))
        })
    }
}
