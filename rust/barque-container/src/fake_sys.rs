//! An in-memory [`Sys`] for unit tests: records every call as a line of text, knows a set of
//! existing paths (relative to the root handle), and fails calls whose text starts with a
//! configured prefix.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, CStr};
use std::os::fd::RawFd;

use crate::sys::{Errno, FdStat, Sys, SysResult};

#[derive(Default)]
pub struct FakeSys {
    calls: RefCell<Vec<String>>,
    failures: RefCell<Vec<(String, Errno)>>,
    /// Existing paths relative to the root ("" is the root), with "is a directory".
    pub paths: RefCell<HashMap<String, bool>>,
    fds: RefCell<HashMap<RawFd, String>>,
    next_fd: RefCell<RawFd>,
    quiet: HashSet<&'static str>,
    /// Every `read` sees end of file.
    eof: std::cell::Cell<bool>,
}

impl FakeSys {
    /// A fake whose root holds these paths (directories unless they end in a '*').
    pub fn with_paths(paths: &[&str]) -> FakeSys {
        let f = FakeSys::quiet_opens();
        f.paths.borrow_mut().insert(String::new(), true);
        for p in paths {
            let (p, dir) = match p.strip_suffix('*') {
                Some(p) => (p, false),
                None => (*p, true),
            };
            f.paths.borrow_mut().insert(p.to_owned(), dir);
        }
        f
    }

    /// A fake that does not record `open_in_root`, `close` and `fstat` calls.
    pub fn quiet_opens() -> FakeSys {
        FakeSys {
            quiet: ["open_in_root", "close", "fstat"].into_iter().collect(),
            ..Default::default()
        }
    }

    pub fn fail(&self, prefix: &str, errno: Errno) {
        self.failures.borrow_mut().push((prefix.to_owned(), errno));
    }

    /// Every later `read` returns 0 (end of file).
    pub fn end_of_file(&self) {
        self.eof.set(true);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn record(&self, name: &'static str, text: String) -> SysResult<()> {
        let failure = self
            .failures
            .borrow()
            .iter()
            .find(|(p, _)| text.starts_with(p.as_str()))
            .map(|(_, e)| *e);
        if !self.quiet.contains(name) {
            self.calls.borrow_mut().push(text);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn new_fd(&self, path: String) -> RawFd {
        let mut n = self.next_fd.borrow_mut();
        *n += 1;
        let fd = 100 + *n;
        self.fds.borrow_mut().insert(fd, path);
        fd
    }

    fn path_of(&self, fd: RawFd) -> String {
        self.fds
            .borrow()
            .get(&fd)
            .cloned()
            .unwrap_or_else(|| format!("fd{fd}"))
    }

    fn join(&self, dirfd: RawFd, name: &CStr) -> String {
        let base = self.path_of(dirfd);
        let name = name.to_str().unwrap();
        if base.is_empty() {
            name.to_owned()
        } else {
            format!("{base}/{name}")
        }
    }
}

fn s(c: &CStr) -> &str {
    c.to_str().unwrap()
}

impl Sys for FakeSys {
    fn close(&self, fd: RawFd) {
        let _ = self.record("close", format!("close({fd})"));
    }
    fn write_all(&self, fd: RawFd, buf: &[u8]) -> SysResult<()> {
        self.record(
            "write_all",
            format!("write({fd}, {})", String::from_utf8_lossy(buf)),
        )
    }
    fn read(&self, fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
        self.record("read", format!("read({fd}, {})", buf.len()))?;
        if self.eof.get() {
            return Ok(0);
        }
        match buf.first_mut() {
            Some(b) => {
                *b = b'1';
                Ok(1)
            }
            None => Ok(0),
        }
    }
    fn dup_above(&self, fd: RawFd, min: RawFd) -> SysResult<RawFd> {
        self.record("dup_above", format!("dup_above({fd}, {min})"))?;
        Ok(self.new_fd(format!("dup{fd}")))
    }
    fn dup2(&self, from: RawFd, to: RawFd) -> SysResult<()> {
        self.record("dup2", format!("dup2({}, {to})", self.path_of(from)))
    }
    fn setns(&self, fd: RawFd, nstype: i32) -> SysResult<()> {
        self.record("setns", format!("setns({fd}, {nstype:#x})"))
    }
    fn unshare(&self, flags: i32) -> SysResult<()> {
        self.record("unshare", format!("unshare({flags:#x})"))
    }
    fn mount(&self, target: &CStr, flags: u64) -> SysResult<()> {
        self.record("mount", format!("mount({}, {flags:#x})", s(target)))
    }
    fn umount_detach(&self, target: &CStr) -> SysResult<()> {
        self.record("umount", format!("umount_detach({})", s(target)))
    }
    fn fsopen(&self, fstype: &CStr) -> SysResult<RawFd> {
        self.record("fsopen", format!("fsopen({})", s(fstype)))?;
        Ok(self.new_fd(format!("fs:{}", s(fstype))))
    }
    fn fsconfig_flag(&self, _fs: RawFd, key: &CStr) -> SysResult<()> {
        self.record("fsconfig", format!("fsconfig_flag({})", s(key)))
    }
    fn fsconfig_string(&self, _fs: RawFd, key: &CStr, value: &CStr) -> SysResult<()> {
        self.record("fsconfig", format!("fsconfig({}={})", s(key), s(value)))
    }
    fn fsconfig_create(&self, _fs: RawFd) -> SysResult<()> {
        self.record("fsconfig", "fsconfig_create".to_owned())
    }
    fn fsmount(&self, fs: RawFd, attrs: u64) -> SysResult<RawFd> {
        self.record("fsmount", format!("fsmount({attrs:#x})"))?;
        Ok(self.new_fd(format!("mnt:{}", self.path_of(fs))))
    }
    fn open_tree(&self, dirfd: RawFd, path: &CStr, recursive: bool) -> SysResult<RawFd> {
        let what = if path.is_empty() {
            self.path_of(dirfd)
        } else {
            s(path).to_owned()
        };
        self.record(
            "open_tree",
            format!("open_tree({what}, recursive={recursive})"),
        )?;
        Ok(self.new_fd(format!("tree:{what}")))
    }
    fn move_mount(&self, from: RawFd, to: RawFd) -> SysResult<()> {
        self.record(
            "move_mount",
            format!(
                "move_mount({} -> /{})",
                self.path_of(from),
                self.path_of(to)
            ),
        )
    }
    fn move_mount_to_path(&self, from: RawFd, to: &CStr) -> SysResult<()> {
        self.record(
            "move_mount",
            format!("move_mount({} -> {})", self.path_of(from), s(to)),
        )
    }
    fn mount_setattr(
        &self,
        fd: RawFd,
        recursive: bool,
        set: u64,
        clear: u64,
        propagation: u64,
    ) -> SysResult<()> {
        self.record(
            "mount_setattr",
            format!(
                "mount_setattr({}, recursive={recursive}, set={set:#x}, clear={clear:#x}, propagation={propagation:#x})",
                self.path_of(fd)
            ),
        )
    }
    fn open_in_root(&self, _root: RawFd, path: &CStr, _flags: i32) -> SysResult<RawFd> {
        let p = match s(path) {
            "." => "",
            p => p,
        };
        self.record("open_in_root", format!("open_in_root({p})"))?;
        if self.paths.borrow().contains_key(p) {
            Ok(self.new_fd(p.to_owned()))
        } else {
            Err(libc::ENOENT)
        }
    }
    fn openat(&self, dirfd: RawFd, name: &CStr, flags: i32, mode: u32) -> SysResult<RawFd> {
        let p = self.join(dirfd, name);
        self.record("openat", format!("openat({p}, {flags:#x}, {mode:o})"))?;
        if flags & libc::O_CREAT != 0 {
            self.paths.borrow_mut().insert(p.clone(), false);
        }
        Ok(self.new_fd(p))
    }
    fn mkdirat(&self, dirfd: RawFd, name: &CStr, mode: u32) -> SysResult<()> {
        let p = self.join(dirfd, name);
        self.record("mkdirat", format!("mkdirat({p}, {mode:o})"))?;
        self.paths.borrow_mut().insert(p, true);
        Ok(())
    }
    fn mknodat(&self, dirfd: RawFd, name: &CStr, mode: u32, dev: u64) -> SysResult<()> {
        let p = self.join(dirfd, name);
        self.record("mknodat", format!("mknodat({p}, {mode:o}, {dev:#x})"))
    }
    fn symlinkat(&self, target: &CStr, dirfd: RawFd, name: &CStr) -> SysResult<()> {
        let p = self.join(dirfd, name);
        self.record("symlinkat", format!("symlinkat({p} -> {})", s(target)))
    }
    fn chownat(&self, dirfd: RawFd, name: &CStr, uid: u32, gid: u32) -> SysResult<()> {
        let p = self.join(dirfd, name);
        self.record("chownat", format!("chownat({p}, {uid}, {gid})"))
    }
    fn fstat(&self, fd: RawFd) -> SysResult<FdStat> {
        let p = self.path_of(fd);
        self.record("fstat", format!("fstat({p})"))?;
        if p == "tree:/dev/null" {
            return Ok(FdStat {
                kind: libc::S_IFCHR,
                rdev: libc::makedev(1, 3),
            });
        }
        let dir = self.paths.borrow().get(&p).copied().unwrap_or(true);
        Ok(FdStat {
            kind: if dir { libc::S_IFDIR } else { libc::S_IFREG },
            rdev: 0,
        })
    }
    fn fchdir(&self, fd: RawFd) -> SysResult<()> {
        self.record("fchdir", format!("fchdir(/{})", self.path_of(fd)))
    }
    fn chdir(&self, path: &CStr) -> SysResult<()> {
        self.record("chdir", format!("chdir({})", s(path)))
    }
    fn pivot_root_here(&self) -> SysResult<()> {
        self.record("pivot_root", "pivot_root(., .)".to_owned())
    }
    fn sethostname(&self, name: &CStr) -> SysResult<()> {
        self.record("sethostname", format!("sethostname({})", s(name)))
    }
    fn setdomainname(&self, name: &CStr) -> SysResult<()> {
        self.record("setdomainname", format!("setdomainname({})", s(name)))
    }
    fn loopback_up(&self) -> SysResult<()> {
        self.record("loopback_up", "loopback_up".to_owned())
    }
    fn prctl(&self, op: i32, arg2: u64, arg3: u64) -> SysResult<i32> {
        self.record("prctl", format!("prctl({op}, {arg2}, {arg3})"))?;
        Ok(0)
    }
    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> SysResult<()> {
        self.record(
            "capset",
            format!("capset({effective:#x}, {permitted:#x}, {inheritable:#x})"),
        )
    }
    fn setgroups(&self, groups: &[u32]) -> SysResult<()> {
        self.record("setgroups", format!("setgroups({groups:?})"))
    }
    fn setresgid(&self, gid: u32) -> SysResult<()> {
        self.record("setresgid", format!("setresgid({gid})"))
    }
    fn setresuid(&self, uid: u32) -> SysResult<()> {
        self.record("setresuid", format!("setresuid({uid})"))
    }
    fn setrlimit(&self, resource: u32, soft: u64, hard: u64) -> SysResult<()> {
        self.record(
            "setrlimit",
            format!("setrlimit({resource}, {soft}, {hard})"),
        )
    }
    fn seccomp(&self, flags: u32, program: &[libc::sock_filter]) -> SysResult<()> {
        self.record(
            "seccomp",
            format!("seccomp({flags}, {} insns)", program.len()),
        )
    }
    fn cloexec_from(&self, first: u32) -> SysResult<()> {
        self.record("cloexec_from", format!("cloexec_from({first})"))
    }
    fn unlock_pty(&self, master: RawFd) -> SysResult<()> {
        self.record(
            "unlock_pty",
            format!("unlock_pty({})", self.path_of(master)),
        )
    }
    fn pty_peer(&self, master: RawFd) -> SysResult<RawFd> {
        let p = self.path_of(master);
        self.record("pty_peer", format!("pty_peer({p})"))?;
        Ok(self.new_fd(format!("pts:{p}")))
    }
    fn send_fd(&self, socket: RawFd, fd: RawFd) -> SysResult<()> {
        self.record(
            "send_fd",
            format!("send_fd({socket}, {})", self.path_of(fd)),
        )
    }
    fn fchown(&self, fd: RawFd, uid: u32, gid: u32) -> SysResult<()> {
        self.record(
            "fchown",
            format!("fchown({}, {uid}, {gid})", self.path_of(fd)),
        )
    }
    fn umask(&self, mask: u32) {
        let _ = self.record("umask", format!("umask({mask:o})"));
    }
    fn reset_signal_dispositions(&self) {
        let _ = self.record("signals", "reset_signal_dispositions".to_owned());
    }
    fn set_signal_mask(&self, _mask: &libc::sigset_t) -> SysResult<()> {
        self.record("signals", "set_signal_mask".to_owned())
    }
    fn setsid(&self) -> SysResult<()> {
        self.record("setsid", "setsid".to_owned())
    }
    fn set_controlling_tty(&self, fd: RawFd) -> SysResult<()> {
        self.record("tty", format!("set_controlling_tty({fd})"))
    }
    fn set_window_size(&self, fd: RawFd, rows: u16, cols: u16) -> SysResult<()> {
        self.record("winsize", format!("set_window_size({fd}, {rows}x{cols})"))
    }
    fn execve(&self, path: &CStr, _argv: &[*const c_char], _envp: &[*const c_char]) -> Errno {
        match self.record("execve", format!("execve({})", s(path))) {
            Err(e) => e,
            Ok(()) => libc::ENOENT,
        }
    }
    /// Records the argv too: it is the trampoline's protocol.
    fn execve_fd(&self, fd: RawFd, argv: &[*const c_char], _envp: &[*const c_char]) -> Errno {
        let args: Vec<String> = argv
            .iter()
            .take_while(|p| !p.is_null())
            // SAFETY: a NULL-terminated array of live C strings (as for the real call).
            .map(|p| unsafe { CStr::from_ptr(*p) }.to_string_lossy().into_owned())
            .collect();
        match self.record("execve_fd", format!("execve_fd({fd}, {args:?})")) {
            Err(e) => e,
            Ok(()) => libc::ENOENT,
        }
    }
    fn keep_across_exec(&self, fd: RawFd) -> SysResult<()> {
        self.record("keep_across_exec", format!("keep_across_exec({fd})"))
    }
}
