//! The exec trampoline: how a container's process is exec'd without exposing a host binary.
//!
//! The init (and an exec'd process) is a clone of whichever host program asked for it (the
//! Python interpreter, `barque-shim`, `barque-runtime`), so until its final exec its
//! `/proc/self/exe` is that program's file. A command that resolves to `/proc/self/exe` would
//! make the kernel run the host program inside the container, with the image's `LD_PRELOAD`,
//! and leave it an fd to a host binary it can write once nothing runs it (CVE-2019-5736).
//!
//! So the final step execs `barque-trampoline` (static, rust/barque-init) from a sealed memfd
//! copy, by fd, and the trampoline execs the command. While it runs, `/proc/self/exe` is the
//! memfd: a command that is `/proc/self/exe` reruns only the trampoline (static, so
//! `LD_PRELOAD` does nothing), which refuses an argv that is not its protocol.
//!
//! The protocol (argv of the trampoline): [`MAGIC`], the report fd, the number of exec
//! candidates, the candidates (the `PATH` search done in the parent), then the command's own
//! argv; the environment is the command's. The trampoline makes the report fd close-on-exec,
//! tries the candidates like `execvp`, and if none runs writes the [`Fail`] of
//! [`Step::Exec`] (index: the candidate, or `u32::MAX` when none was found) to the report fd,
//! exactly what the init wrote there before, and exits 127 or 126.
//!
//! The memfd is made once per host process and kept (the forkserver's children inherit it).

use std::ffi::{c_char, CString};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::failure::{Fail, Step};
use crate::sys::Sys;

/// The trampoline's file name, in `$BARQUE_LIBEXEC`, next to the running program, in the
/// Python package's `_bin` beside the scripts directory it is in, or in the `_bin` directory
/// next to the library (the Python package's layout).
pub const HELPER_NAME: &str = "barque-trampoline";

/// argv[0] of the trampoline: anything else is not barque asking.
pub const MAGIC: &str = "barque-trampoline/1";

#[derive(Debug, thiserror::Error)]
pub enum TrampolineError {
    #[error("{HELPER_NAME} not found in {}: reinstall barque (pip install) or set BARQUE_LIBEXEC", .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound { searched: Vec<PathBuf> },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl TrampolineError {
    pub fn path(&self) -> Option<&Path> {
        match self {
            TrampolineError::NotFound { searched } => searched.first().map(PathBuf::as_path),
            TrampolineError::Io { path, .. } => Some(path),
        }
    }

    pub fn errno(&self) -> Option<i32> {
        match self {
            TrampolineError::NotFound { .. } => Some(libc::ENOENT),
            TrampolineError::Io { source, .. } => source.raw_os_error(),
        }
    }
}

/// The sealed copy this process made, and what it was when made (to notice that someone closed
/// the fd and the number now names another file).
struct Sealed {
    fd: OwnedFd,
    dev: u64,
    ino: u64,
}

static SEALED: Mutex<Option<Sealed>> = Mutex::new(None);

/// A read-only fd on this process's sealed copy of the trampoline (close-on-exec), made on
/// first use. Valid while this process lives; never closed by barque.
pub fn sealed_fd() -> Result<RawFd, TrampolineError> {
    let mut cached = SEALED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(s) = cached.as_ref() {
        if still_ours(s) {
            return Ok(s.fd.as_raw_fd());
        }
        // The fd was closed behind our back (and perhaps reused): forget it, never close it.
        if let Some(stale) = cached.take() {
            std::mem::forget(stale.fd);
        }
    }
    let sealed = seal_copy(&locate()?)?;
    let fd = sealed.fd.as_raw_fd();
    *cached = Some(sealed);
    Ok(fd)
}

fn still_ours(s: &Sealed) -> bool {
    // SAFETY: fstat into a zeroed stat of our own; a closed fd only fails with EBADF.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(s.fd.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    // SAFETY: integer arguments.
    let seals = unsafe { libc::fcntl(s.fd.as_raw_fd(), libc::F_GET_SEALS) };
    st.st_dev == s.dev && st.st_ino == s.ino && seals >= 0 && seals & libc::F_SEAL_WRITE != 0
}

/// Where the trampoline may be, in order.
fn search_path() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("BARQUE_LIBEXEC").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned))
    {
        dirs.push(dir.clone());
        // barque-runtime installed by pip on PATH: the package it came with is beside it.
        dirs.extend(package_bins_beside_scripts(&dir));
    }
    if let Some(dir) = library_dir() {
        dirs.push(dir.join("_bin"));
    }
    // For programs run from target/ (cargo run, cargo test): an editable install leaves the
    // static build in the source tree, rust/barque-py/build.rs in target/wheel-bins, while
    // target/release holds a dynamic one no image can run.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dirs.push(workspace.join("python/barque/_bin"));
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    dirs.push(
        workspace
            .join("target/wheel-bins/static")
            .join(triple)
            .join("release"),
    );
    dirs.into_iter().map(|d| d.join(HELPER_NAME)).collect()
}

/// `barque/_bin` of the packages installed with a scripts directory: pip's schemes put
/// `<prefix>/bin` and `<prefix>/lib[64]/pythonX.Y/{site,dist}-packages` side by side (a venv,
/// `--user`, `--prefix`, Debian's /usr/local).
fn package_bins_beside_scripts(scripts: &Path) -> Vec<PathBuf> {
    let Some(prefix) = scripts.parent() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for lib in ["lib", "lib64"] {
        let Ok(entries) = std::fs::read_dir(prefix.join(lib)) else {
            continue;
        };
        let mut pythons: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().as_bytes().starts_with(b"python3"))
            .map(|e| e.path())
            .collect();
        pythons.sort();
        for python in pythons {
            for packages in ["site-packages", "dist-packages"] {
                let bin = python.join(packages).join("barque/_bin");
                if bin.is_dir() {
                    found.push(bin);
                }
            }
        }
    }
    found
}

/// The directory of the shared object this code is in (barque._native: python/barque/).
fn library_dir() -> Option<PathBuf> {
    // SAFETY: dladdr only reads the loader's tables; a zeroed Dl_info is a valid out-value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let here = search_path as *const libc::c_void;
    if unsafe { libc::dladdr(here, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated name owned by the loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
    path.is_absolute()
        .then(|| path.parent().map(Path::to_owned))
        .flatten()
}

/// The first static trampoline of the search path.
fn locate() -> Result<PathBuf, TrampolineError> {
    let searched = search_path();
    match searched.iter().find(|p| is_static_elf(p)) {
        Some(p) => Ok(p.clone()),
        None => Err(TrampolineError::NotFound { searched }),
    }
}

/// Whether `path` is an ELF executable without a program interpreter: one that needs the
/// dynamic loader would not start in an image that has none (or would load the image's).
fn is_static_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    let read = File::open(path).and_then(|f| f.take(4096).read_to_end(&mut head));
    read.is_ok() && elf_without_interpreter(&head)
}

/// `head`: the start of a file (its program headers must be in it, as linkers put them).
fn elf_without_interpreter(head: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if head.len() < 64 || &head[..4] != b"\x7fELF" {
        return false;
    }
    let little = head[5] == 1;
    let wide = head[4] == 2;
    let int = |at: usize, len: usize| -> Option<usize> {
        let bytes = head.get(at..at + len)?;
        let mut v = 0usize;
        for i in 0..len {
            let b = if little { bytes[len - 1 - i] } else { bytes[i] };
            v = (v << 8) | usize::from(b);
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = if wide {
        (int(0x20, 8), int(0x36, 2), int(0x38, 2))
    } else {
        (int(0x1c, 4), int(0x2a, 2), int(0x2c, 2))
    };
    let (Some(phoff), Some(size), Some(count)) = (phoff, phentsize, phnum) else {
        return false;
    };
    (0..count)
        .all(|i| int(phoff + i * size, 4).is_some_and(|t| u32::try_from(t).ok() != Some(PT_INTERP)))
}

/// A sealed memfd copy of `path`, reopened read-only: exec refuses a file open for writing.
fn seal_copy(path: &Path) -> Result<Sealed, TrampolineError> {
    let io = |op: &'static str| {
        let path = path.to_owned();
        move |source| TrampolineError::Io { op, path, source }
    };
    let mut source = File::open(path).map_err(io("open"))?;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: a static name and integer flags. MFD_EXEC (kernels from 6.3) keeps the copy
    // executable where vm.memfd_noexec would otherwise make it not; older kernels refuse the
    // flag, and their memfds are executable anyway.
    let mut fd = unsafe { libc::memfd_create(c"barque-trampoline".as_ptr(), flags | MFD_EXEC) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(c"barque-trampoline".as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(io("make a memfd for")(std::io::Error::last_os_error()));
    }
    // SAFETY: a descriptor the kernel just returned, owned here.
    let mut copy = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    std::io::copy(&mut source, &mut copy).map_err(io("copy"))?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: integer arguments on our fd.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(io("seal the copy of")(std::io::Error::last_os_error()));
    }
    let reopen = format!("/proc/self/fd/{}", copy.as_raw_fd());
    let readonly = std::fs::OpenOptions::new()
        .read(true)
        .open(&reopen)
        .map_err(io("reopen the sealed copy of"))?;
    drop(copy);
    // Above stdio: the child's dup2 onto 0, 1 and 2 must not replace it.
    // SAFETY: integer arguments on our fd; the result is a new descriptor owned here.
    let high = unsafe { libc::fcntl(readonly.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if high < 0 {
        return Err(io("duplicate the sealed copy of")(
            std::io::Error::last_os_error(),
        ));
    }
    drop(readonly);
    // SAFETY: the descriptor fcntl just returned, owned here.
    let readonly = File::from(unsafe { OwnedFd::from_raw_fd(high) });
    let meta = readonly.metadata().map_err(io("stat the sealed copy of"))?;
    Ok(Sealed {
        dev: meta.dev(),
        ino: meta.ino(),
        fd: readonly.into(),
    })
}

// linux/memfd.h, not in the libc crate for every target.
const MFD_EXEC: libc::c_uint = 0x10;

/// The trampoline's argv for one process, built in the parent (the child cannot allocate).
#[derive(Debug)]
pub struct HelperExec {
    /// The sealed copy ([`sealed_fd`]).
    pub fd: RawFd,
    /// Where the trampoline reports a failed exec (the parent's close-on-exec status pipe).
    pub report_fd: RawFd,
    _strings: [CString; 3],
    argv_ptrs: Vec<*const c_char>,
}

impl HelperExec {
    /// `candidates` and `argv` are the process plan's own strings, which outlive this.
    pub fn new(fd: RawFd, report_fd: RawFd, candidates: &[CString], argv: &[CString]) -> Self {
        let number = |n: usize| CString::new(n.to_string()).unwrap_or_default();
        let strings = [
            CString::new(MAGIC).unwrap_or_default(),
            number(report_fd.max(0) as usize),
            number(candidates.len()),
        ];
        let argv_ptrs = strings
            .iter()
            .chain(candidates)
            .chain(argv)
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        HelperExec {
            fd,
            report_fd,
            _strings: strings,
            argv_ptrs,
        }
    }

    /// Child side, last step: keeps the report fd open across this one exec (the trampoline
    /// closes it on its own) and runs the trampoline. Returns only on failure.
    pub fn exec<S: Sys>(&self, sys: &S, envp: &[*const c_char]) -> Fail {
        if let Err(e) = sys.keep_across_exec(self.report_fd) {
            return Fail::new(Step::ExecHelper, e);
        }
        Fail::new(
            Step::ExecHelper,
            sys.execve_fd(self.fd, &self.argv_ptrs, envp),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    #[test]
    fn argv_is_magic_report_fd_candidates_then_the_command() {
        let c = |s: &str| CString::new(s).unwrap();
        let candidates = [c("/a/sh"), c("/b/sh")];
        let argv = [c("sh"), c("-c"), c("echo hi")];
        let helper = HelperExec::new(9, 4, &candidates, &argv);
        let sys = FakeSys::default();
        let env = [std::ptr::null()];
        let fail = helper.exec(&sys, &env);
        assert_eq!(
            sys.calls(),
            [
                "keep_across_exec(4)",
                r#"execve_fd(9, ["barque-trampoline/1", "4", "2", "/a/sh", "/b/sh", "sh", "-c", "echo hi"])"#
            ]
        );
        // The fake's exec "fails" with ENOENT: the trampoline itself did not run (125).
        assert_eq!(fail, Fail::new(Step::ExecHelper, libc::ENOENT));
    }

    #[test]
    fn a_report_fd_that_cannot_be_kept_stops_before_exec() {
        let helper = HelperExec::new(9, 4, &[CString::new("/x").unwrap()], &[]);
        let sys = FakeSys::default();
        sys.fail("keep_across_exec", libc::EBADF);
        let fail = helper.exec(&sys, &[std::ptr::null()]);
        assert_eq!(fail, Fail::new(Step::ExecHelper, libc::EBADF));
        assert_eq!(sys.calls(), ["keep_across_exec(4)"]);
    }

    #[test]
    fn the_trampolines_failure_record_is_the_exec_step() {
        // rust/barque-init/src/trampoline.rs writes step 25 and u32::MAX for "not found".
        assert_eq!(Step::Exec as u32, 25);
        let not_found = Fail::decode(&{
            let mut b = [0u8; crate::failure::FAIL_LEN];
            b[..4].copy_from_slice(&25u32.to_ne_bytes());
            b[4..8].copy_from_slice(&libc::ENOENT.to_ne_bytes());
            b[8..].copy_from_slice(&u32::MAX.to_ne_bytes());
            b
        });
        assert_eq!(
            not_found,
            Some(Fail::at(Step::Exec, u32::MAX as usize, libc::ENOENT))
        );
    }

    #[test]
    fn only_a_static_trampoline_is_used() {
        // This test program is dynamic: it has a program interpreter.
        let me = std::env::current_exe().unwrap();
        assert!(!is_static_elf(&me));
        assert!(!elf_without_interpreter(b"#!/bin/sh\n"));
        // A 64-bit little-endian header with one program header, PT_LOAD, then PT_INTERP.
        let mut elf = vec![0u8; 64 + 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20] = 64;
        elf[0x36] = 56;
        elf[0x38] = 1;
        elf[64] = 1;
        assert!(elf_without_interpreter(&elf));
        elf[64] = 3;
        assert!(!elf_without_interpreter(&elf));
        // Program headers past what was read are not taken for "none".
        elf[0x38] = 2;
        assert!(!elf_without_interpreter(&elf));
    }

    #[test]
    fn the_sealed_copy_is_read_only_sealed_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join(HELPER_NAME);
        std::fs::write(&helper, b"\x7fELF not really").unwrap();
        let sealed = seal_copy(&helper).unwrap();
        let fd = sealed.fd.as_raw_fd();
        // SAFETY: integer arguments.
        let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
        assert_eq!(seals & libc::F_SEAL_WRITE, libc::F_SEAL_WRITE);
        assert_eq!(seals & libc::F_SEAL_SEAL, libc::F_SEAL_SEAL);
        // Not writable through the fd, nor by reopening it for writing.
        // SAFETY: integer arguments.
        let mode = unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_ACCMODE;
        assert_eq!(mode, libc::O_RDONLY);
        let reopened = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{fd}"));
        if let Ok(mut f) = reopened {
            use std::io::Write;
            assert!(f.write_all(b"x").is_err());
        }
        assert_eq!(
            std::fs::read(format!("/proc/self/fd/{fd}")).unwrap(),
            b"\x7fELF not really"
        );
        assert!(still_ours(&sealed));
    }
}
