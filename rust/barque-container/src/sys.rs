//! The system calls the container init makes between clone and exec, behind a trait.
//!
//! Everything here runs in a freshly cloned child of a multi-threaded process (Python), so the
//! real implementation is raw syscalls only: no allocation, no locks, no libc wrappers that keep
//! per-process state (glibc's setxid broadcast to "all threads" would wait forever on threads
//! that only exist in the parent). Arguments arrive as pre-built `CStr`s and pre-computed
//! numbers; failures are bare errno values.

use std::ffi::{c_char, CStr};
use std::os::fd::RawFd;

/// A raw errno value.
pub type Errno = i32;
pub type SysResult<T> = Result<T, Errno>;

// linux/mount.h (not in the libc crate for every target).
pub const FSOPEN_CLOEXEC: u32 = 0x1;
pub const FSCONFIG_SET_FLAG: u32 = 0;
pub const FSCONFIG_SET_STRING: u32 = 1;
pub const FSCONFIG_CMD_CREATE: u32 = 6;
pub const FSMOUNT_CLOEXEC: u32 = 0x1;
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
pub const OPEN_TREE_CLONE: u32 = 0x1;
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
// linux/openat2.h
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// What an `fstat` says about a file descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdStat {
    /// `st_mode & S_IFMT`.
    pub kind: u32,
    pub rdev: u64,
}

/// The kernel as the container init sees it. Every method is one system call (or a short fixed
/// sequence of them) and must stay async-signal-safe in the real implementation.
pub trait Sys {
    fn close(&self, fd: RawFd);
    fn write_all(&self, fd: RawFd, buf: &[u8]) -> SysResult<()>;
    /// One `read(2)` (retried on EINTR): the number of bytes read, 0 at end of file.
    fn read(&self, fd: RawFd, buf: &mut [u8]) -> SysResult<usize>;
    /// `fcntl(F_DUPFD_CLOEXEC, min)`.
    fn dup_above(&self, fd: RawFd, min: RawFd) -> SysResult<RawFd>;
    fn dup2(&self, from: RawFd, to: RawFd) -> SysResult<()>;
    fn setns(&self, fd: RawFd, nstype: i32) -> SysResult<()>;
    fn unshare(&self, flags: i32) -> SysResult<()>;
    /// Classic `mount(2)`, used only for propagation changes on paths we do not resolve.
    fn mount(&self, target: &CStr, flags: u64) -> SysResult<()>;
    fn umount_detach(&self, target: &CStr) -> SysResult<()>;
    fn fsopen(&self, fstype: &CStr) -> SysResult<RawFd>;
    fn fsconfig_flag(&self, fs: RawFd, key: &CStr) -> SysResult<()>;
    fn fsconfig_string(&self, fs: RawFd, key: &CStr, value: &CStr) -> SysResult<()>;
    fn fsconfig_create(&self, fs: RawFd) -> SysResult<()>;
    /// `fsmount(fs, FSMOUNT_CLOEXEC, attrs)`: a detached mount.
    fn fsmount(&self, fs: RawFd, attrs: u64) -> SysResult<RawFd>;
    /// `open_tree(dirfd, path, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC [|AT_RECURSIVE])`; an empty path
    /// means `dirfd` itself (`AT_EMPTY_PATH`).
    fn open_tree(&self, dirfd: RawFd, path: &CStr, recursive: bool) -> SysResult<RawFd>;
    /// `move_mount` from a detached mount onto the object `to` refers to.
    fn move_mount(&self, from: RawFd, to: RawFd) -> SysResult<()>;
    /// `move_mount` from a detached mount onto an absolute path (the rootfs directory only).
    fn move_mount_to_path(&self, from: RawFd, to: &CStr) -> SysResult<()>;
    fn mount_setattr(
        &self,
        fd: RawFd,
        recursive: bool,
        set: u64,
        clear: u64,
        propagation: u64,
    ) -> SysResult<()>;
    /// `openat2(root, path, flags|O_CLOEXEC, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)`: `path` can
    /// never resolve outside `root`, through `..`, absolute symlinks or `/proc` magic links.
    fn open_in_root(&self, root: RawFd, path: &CStr, flags: i32) -> SysResult<RawFd>;
    /// `openat(dirfd, name, flags|O_CLOEXEC|O_NOFOLLOW, mode)`.
    fn openat(&self, dirfd: RawFd, name: &CStr, flags: i32, mode: u32) -> SysResult<RawFd>;
    fn mkdirat(&self, dirfd: RawFd, name: &CStr, mode: u32) -> SysResult<()>;
    fn mknodat(&self, dirfd: RawFd, name: &CStr, mode: u32, dev: u64) -> SysResult<()>;
    fn symlinkat(&self, target: &CStr, dirfd: RawFd, name: &CStr) -> SysResult<()>;
    /// `fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW)`.
    fn chownat(&self, dirfd: RawFd, name: &CStr, uid: u32, gid: u32) -> SysResult<()>;
    fn fstat(&self, fd: RawFd) -> SysResult<FdStat>;
    fn fchdir(&self, fd: RawFd) -> SysResult<()>;
    fn chdir(&self, path: &CStr) -> SysResult<()>;
    /// `pivot_root(".", ".")`: the old root ends up stacked on the new one.
    fn pivot_root_here(&self) -> SysResult<()>;
    fn sethostname(&self, name: &CStr) -> SysResult<()>;
    fn setdomainname(&self, name: &CStr) -> SysResult<()>;
    /// Brings the network namespace's `lo` up: `socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC)`,
    /// `SIOCGIFFLAGS`, `|= IFF_UP|IFF_RUNNING`, `SIOCSIFFLAGS`, close (needs CAP_NET_ADMIN).
    fn loopback_up(&self) -> SysResult<()>;
    fn prctl(&self, op: i32, arg2: u64, arg3: u64) -> SysResult<i32>;
    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> SysResult<()>;
    fn setgroups(&self, groups: &[u32]) -> SysResult<()>;
    fn setresgid(&self, gid: u32) -> SysResult<()>;
    fn setresuid(&self, uid: u32) -> SysResult<()>;
    fn setrlimit(&self, resource: u32, soft: u64, hard: u64) -> SysResult<()>;
    fn seccomp(&self, flags: u32, program: &[libc::sock_filter]) -> SysResult<()>;
    /// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: everything from `first` up closes at exec.
    fn cloexec_from(&self, first: u32) -> SysResult<()>;
    /// `ioctl(master, TIOCSPTLCK, &0)`: the slave of a new pty may be opened.
    fn unlock_pty(&self, master: RawFd) -> SysResult<()>;
    /// `ioctl(master, TIOCGPTPEER, O_RDWR|O_NOCTTY|O_CLOEXEC)`: the slave, opened through the
    /// master's own devpts (no path lookup a container could redirect).
    fn pty_peer(&self, master: RawFd) -> SysResult<RawFd>;
    /// `sendmsg` of one byte with `fd` as `SCM_RIGHTS` on the unix socket `socket`.
    fn send_fd(&self, socket: RawFd, fd: RawFd) -> SysResult<()>;
    /// `fchown(fd, uid, gid)`; `u32::MAX` leaves that id unchanged.
    fn fchown(&self, fd: RawFd, uid: u32, gid: u32) -> SysResult<()>;
    fn umask(&self, mask: u32);
    /// Resets every signal disposition to the default (a `SIG_IGN` would survive exec).
    fn reset_signal_dispositions(&self);
    fn set_signal_mask(&self, mask: &libc::sigset_t) -> SysResult<()>;
    /// A new session, so the process can take a controlling terminal.
    fn setsid(&self) -> SysResult<()>;
    /// `ioctl(fd, TIOCSCTTY, 0)`: `fd`'s terminal becomes the session's controlling terminal.
    fn set_controlling_tty(&self, fd: RawFd) -> SysResult<()>;
    /// `ioctl(fd, TIOCSWINSZ)`: the terminal's window size (the kernel signals SIGWINCH).
    fn set_window_size(&self, fd: RawFd, rows: u16, cols: u16) -> SysResult<()>;
    /// Returns only on failure.
    fn execve(&self, path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno;
    /// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: runs the file `fd` is open on, found by
    /// no path the container could redirect. Returns only on failure.
    fn execve_fd(&self, fd: RawFd, argv: &[*const c_char], envp: &[*const c_char]) -> Errno;
    /// Clears `FD_CLOEXEC` on `fd`, so that it survives the next exec.
    fn keep_across_exec(&self, fd: RawFd) -> SysResult<()>;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Linux;

fn errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(ret: libc::c_long) -> SysResult<libc::c_long> {
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

fn check_fd(ret: libc::c_long) -> SysResult<RawFd> {
    check(ret).map(|fd| fd as RawFd)
}

fn unit(ret: libc::c_long) -> SysResult<()> {
    check(ret).map(|_| ())
}

const EMPTY: &CStr = c"";

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct ifreq` as `SIOCGIFFLAGS`/`SIOCSIFFLAGS` use it: the name, then `ifr_flags` at the
/// start of the union (padded to the kernel's 40 bytes).
#[repr(C)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

const _: () = assert!(std::mem::size_of::<IfreqFlags>() == 40);

impl Sys for Linux {
    fn close(&self, fd: RawFd) {
        // SAFETY: closing a descriptor we own; errors (EBADF) are of no interest.
        unsafe { libc::close(fd) };
    }

    fn write_all(&self, fd: RawFd, mut buf: &[u8]) -> SysResult<()> {
        while !buf.is_empty() {
            // SAFETY: buf is a valid slice.
            let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = errno();
                if e == libc::EINTR {
                    continue;
                }
                return Err(e);
            }
            buf = buf.get(n as usize..).unwrap_or_default();
        }
        Ok(())
    }

    fn read(&self, fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
        loop {
            // SAFETY: buf is a valid, writable slice.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = errno();
            if e != libc::EINTR {
                return Err(e);
            }
        }
    }

    fn dup_above(&self, fd: RawFd, min: RawFd) -> SysResult<RawFd> {
        // SAFETY: plain fcntl.
        check_fd(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) }.into())
    }

    fn dup2(&self, from: RawFd, to: RawFd) -> SysResult<()> {
        // SAFETY: plain dup3/dup2.
        unit(unsafe { libc::dup2(from, to) }.into())
    }

    fn setns(&self, fd: RawFd, nstype: i32) -> SysResult<()> {
        // SAFETY: raw syscall with integer arguments.
        unit(unsafe { libc::syscall(libc::SYS_setns, fd, nstype) })
    }

    fn unshare(&self, flags: i32) -> SysResult<()> {
        // SAFETY: raw syscall with an integer argument.
        unit(unsafe { libc::syscall(libc::SYS_unshare, flags) })
    }

    fn mount(&self, target: &CStr, flags: u64) -> SysResult<()> {
        // SAFETY: NUL-terminated strings, NULL source/type/data as mount(2) allows for
        // propagation changes.
        unit(unsafe {
            libc::syscall(
                libc::SYS_mount,
                std::ptr::null::<c_char>(),
                target.as_ptr(),
                std::ptr::null::<c_char>(),
                flags as libc::c_ulong,
                std::ptr::null::<libc::c_void>(),
            )
        })
    }

    fn umount_detach(&self, target: &CStr) -> SysResult<()> {
        // SAFETY: NUL-terminated path.
        unit(unsafe { libc::syscall(libc::SYS_umount2, target.as_ptr(), libc::MNT_DETACH) })
    }

    fn fsopen(&self, fstype: &CStr) -> SysResult<RawFd> {
        // SAFETY: NUL-terminated string.
        check_fd(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })
    }

    fn fsconfig_flag(&self, fs: RawFd, key: &CStr) -> SysResult<()> {
        // SAFETY: NUL-terminated key, NULL value as FSCONFIG_SET_FLAG requires.
        unit(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_SET_FLAG,
                key.as_ptr(),
                std::ptr::null::<c_char>(),
                0,
            )
        })
    }

    fn fsconfig_string(&self, fs: RawFd, key: &CStr, value: &CStr) -> SysResult<()> {
        // SAFETY: NUL-terminated strings.
        unit(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        })
    }

    fn fsconfig_create(&self, fs: RawFd) -> SysResult<()> {
        // SAFETY: integer arguments only.
        unit(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<c_char>(),
                std::ptr::null::<c_char>(),
                0,
            )
        })
    }

    fn fsmount(&self, fs: RawFd, attrs: u64) -> SysResult<RawFd> {
        // SAFETY: integer arguments only.
        check_fd(unsafe { libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs as u32) })
    }

    fn open_tree(&self, dirfd: RawFd, path: &CStr, recursive: bool) -> SysResult<RawFd> {
        let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32;
        if recursive {
            flags |= libc::AT_RECURSIVE as u32;
        }
        if path.is_empty() {
            flags |= libc::AT_EMPTY_PATH as u32;
        }
        // SAFETY: NUL-terminated path.
        check_fd(unsafe { libc::syscall(libc::SYS_open_tree, dirfd, path.as_ptr(), flags) })
    }

    fn move_mount(&self, from: RawFd, to: RawFd) -> SysResult<()> {
        // SAFETY: empty NUL-terminated paths with the EMPTY_PATH flags.
        unit(unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                from,
                EMPTY.as_ptr(),
                to,
                EMPTY.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        })
    }

    fn move_mount_to_path(&self, from: RawFd, to: &CStr) -> SysResult<()> {
        // SAFETY: NUL-terminated paths.
        unit(unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                from,
                EMPTY.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        })
    }

    fn mount_setattr(
        &self,
        fd: RawFd,
        recursive: bool,
        set: u64,
        clear: u64,
        propagation: u64,
    ) -> SysResult<()> {
        let attr = MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation,
            userns_fd: 0,
        };
        let mut flags = libc::AT_EMPTY_PATH as u32;
        if recursive {
            flags |= libc::AT_RECURSIVE as u32;
        }
        // SAFETY: attr lives across the call; its size is passed.
        unit(unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd,
                EMPTY.as_ptr(),
                flags,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        })
    }

    fn open_in_root(&self, root: RawFd, path: &CStr, flags: i32) -> SysResult<RawFd> {
        let how = OpenHow {
            flags: (flags | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        loop {
            // SAFETY: how lives across the call; its size is passed.
            let r = check_fd(unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    root,
                    path.as_ptr(),
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            });
            // EAGAIN: a concurrent rename raced the lookup; retry as the man page says.
            if r != Err(libc::EAGAIN) {
                return r;
            }
        }
    }

    fn openat(&self, dirfd: RawFd, name: &CStr, flags: i32, mode: u32) -> SysResult<RawFd> {
        // SAFETY: NUL-terminated name.
        check_fd(unsafe {
            libc::syscall(
                libc::SYS_openat,
                dirfd,
                name.as_ptr(),
                flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                mode,
            )
        })
    }

    fn mkdirat(&self, dirfd: RawFd, name: &CStr, mode: u32) -> SysResult<()> {
        // SAFETY: NUL-terminated name.
        unit(unsafe { libc::syscall(libc::SYS_mkdirat, dirfd, name.as_ptr(), mode) })
    }

    fn mknodat(&self, dirfd: RawFd, name: &CStr, mode: u32, dev: u64) -> SysResult<()> {
        // SAFETY: NUL-terminated name.
        unit(unsafe { libc::syscall(libc::SYS_mknodat, dirfd, name.as_ptr(), mode, dev) })
    }

    fn symlinkat(&self, target: &CStr, dirfd: RawFd, name: &CStr) -> SysResult<()> {
        // SAFETY: NUL-terminated strings.
        unit(unsafe { libc::syscall(libc::SYS_symlinkat, target.as_ptr(), dirfd, name.as_ptr()) })
    }

    fn chownat(&self, dirfd: RawFd, name: &CStr, uid: u32, gid: u32) -> SysResult<()> {
        // SAFETY: NUL-terminated name.
        unit(unsafe {
            libc::syscall(
                libc::SYS_fchownat,
                dirfd,
                name.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    fn fstat(&self, fd: RawFd) -> SysResult<FdStat> {
        // SAFETY: zeroed stat is a valid out-buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: st is a valid out-pointer.
        unit(unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st as *mut libc::stat) })?;
        Ok(FdStat {
            kind: st.st_mode & libc::S_IFMT,
            rdev: st.st_rdev,
        })
    }

    fn fchdir(&self, fd: RawFd) -> SysResult<()> {
        // SAFETY: integer argument.
        unit(unsafe { libc::syscall(libc::SYS_fchdir, fd) })
    }

    fn chdir(&self, path: &CStr) -> SysResult<()> {
        // SAFETY: NUL-terminated path.
        unit(unsafe { libc::syscall(libc::SYS_chdir, path.as_ptr()) })
    }

    fn pivot_root_here(&self) -> SysResult<()> {
        let dot = c".";
        // SAFETY: NUL-terminated paths.
        unit(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) })
    }

    fn sethostname(&self, name: &CStr) -> SysResult<()> {
        let b = name.to_bytes();
        // SAFETY: pointer and length of a live buffer.
        unit(unsafe { libc::syscall(libc::SYS_sethostname, b.as_ptr(), b.len()) })
    }

    fn setdomainname(&self, name: &CStr) -> SysResult<()> {
        let b = name.to_bytes();
        // SAFETY: pointer and length of a live buffer.
        unit(unsafe { libc::syscall(libc::SYS_setdomainname, b.as_ptr(), b.len()) })
    }

    fn loopback_up(&self) -> SysResult<()> {
        // SAFETY: integer arguments.
        let sock = check_fd(unsafe {
            libc::syscall(
                libc::SYS_socket,
                libc::AF_INET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                0,
            )
        })?;
        let mut req = IfreqFlags {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        };
        req.name[..2].copy_from_slice(b"lo");
        let ioctl = |op: libc::c_ulong, req: &mut IfreqFlags| {
            // SAFETY: req is a live, ifreq-sized buffer for the whole call.
            unit(unsafe { libc::syscall(libc::SYS_ioctl, sock, op, req as *mut IfreqFlags) })
        };
        let result = ioctl(libc::SIOCGIFFLAGS, &mut req).and_then(|()| {
            req.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            ioctl(libc::SIOCSIFFLAGS, &mut req)
        });
        self.close(sock);
        result
    }

    fn prctl(&self, op: i32, arg2: u64, arg3: u64) -> SysResult<i32> {
        // SAFETY: integer arguments; the ops used here take no pointers.
        check(unsafe { libc::syscall(libc::SYS_prctl, op, arg2, arg3, 0u64, 0u64) })
            .map(|r| r as i32)
    }

    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> SysResult<()> {
        let header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [
            CapData {
                effective: effective as u32,
                permitted: permitted as u32,
                inheritable: inheritable as u32,
            },
            CapData {
                effective: (effective >> 32) as u32,
                permitted: (permitted >> 32) as u32,
                inheritable: (inheritable >> 32) as u32,
            },
        ];
        // SAFETY: header and the two data words of version 3 live across the call.
        unit(unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) })
    }

    fn setgroups(&self, groups: &[u32]) -> SysResult<()> {
        // SAFETY: pointer and length of a live slice (gid_t is u32).
        unit(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })
    }

    fn setresgid(&self, gid: u32) -> SysResult<()> {
        // SAFETY: integer arguments (raw syscall: this thread only, no glibc broadcast).
        unit(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })
    }

    fn setresuid(&self, uid: u32) -> SysResult<()> {
        // SAFETY: integer arguments (raw syscall: this thread only, no glibc broadcast).
        unit(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })
    }

    fn setrlimit(&self, resource: u32, soft: u64, hard: u64) -> SysResult<()> {
        let lim = libc::rlimit64 {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: lim lives across the call; old-limit pointer NULL.
        unit(unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                0,
                resource,
                &lim as *const libc::rlimit64,
                std::ptr::null_mut::<libc::rlimit64>(),
            )
        })
    }

    fn seccomp(&self, flags: u32, program: &[libc::sock_filter]) -> SysResult<()> {
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prog points at a live filter program of the given length.
        unit(unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            )
        })
    }

    fn cloexec_from(&self, first: u32) -> SysResult<()> {
        // SAFETY: integer arguments.
        unit(unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        })
    }

    fn unlock_pty(&self, master: RawFd) -> SysResult<()> {
        let unlock: libc::c_int = 0;
        // SAFETY: TIOCSPTLCK reads an int through the pointer, which lives across the call.
        unit(unsafe {
            libc::syscall(
                libc::SYS_ioctl,
                master,
                libc::TIOCSPTLCK,
                &unlock as *const libc::c_int,
            )
        })
    }

    fn pty_peer(&self, master: RawFd) -> SysResult<RawFd> {
        // SAFETY: integer arguments.
        check_fd(unsafe {
            libc::syscall(
                libc::SYS_ioctl,
                master,
                libc::TIOCGPTPEER,
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        })
    }

    fn send_fd(&self, socket: RawFd, fd: RawFd) -> SysResult<()> {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        // A cmsghdr (16 bytes) followed by one int, padded: 24 bytes, u64-aligned on the stack.
        let mut control = [0u64; 3];
        // SAFETY: msghdr is plain data; the pointers set below outlive the call, and the cmsg
        // macros stay within `control`, which is exactly CMSG_SPACE(sizeof(int)) long.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
            loop {
                let r = check(libc::syscall(
                    libc::SYS_sendmsg,
                    socket,
                    &msg as *const libc::msghdr,
                    libc::MSG_NOSIGNAL,
                ));
                if r != Err(libc::EINTR) {
                    return r.map(|_| ());
                }
            }
        }
    }

    fn fchown(&self, fd: RawFd, uid: u32, gid: u32) -> SysResult<()> {
        // SAFETY: integer arguments.
        unit(unsafe { libc::syscall(libc::SYS_fchown, fd, uid, gid) })
    }

    fn umask(&self, mask: u32) {
        // SAFETY: integer argument.
        unsafe { libc::syscall(libc::SYS_umask, mask) };
    }

    fn reset_signal_dispositions(&self) {
        for sig in 1..libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            // SAFETY: setting SIG_DFL never runs code; errors (glibc-reserved signals) ignored.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }

    fn set_signal_mask(&self, mask: &libc::sigset_t) -> SysResult<()> {
        // SAFETY: mask is a valid sigset; the kernel's sigset is 8 bytes.
        unit(unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                mask as *const libc::sigset_t,
                std::ptr::null_mut::<libc::sigset_t>(),
                8usize,
            )
        })
    }

    fn setsid(&self) -> SysResult<()> {
        // SAFETY: no arguments.
        unit(unsafe { libc::syscall(libc::SYS_setsid) })
    }

    fn set_controlling_tty(&self, fd: RawFd) -> SysResult<()> {
        // SAFETY: integer arguments; 0 means "do not steal it from another session".
        unit(unsafe { libc::syscall(libc::SYS_ioctl, fd, libc::TIOCSCTTY, 0) })
    }

    fn set_window_size(&self, fd: RawFd, rows: u16, cols: u16) -> SysResult<()> {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize through the pointer, which lives across the call.
        unit(unsafe {
            libc::syscall(
                libc::SYS_ioctl,
                fd,
                libc::TIOCSWINSZ,
                &size as *const libc::winsize,
            )
        })
    }

    fn execve(&self, path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
        // SAFETY: argv and envp are NULL-terminated arrays of live C strings built before clone.
        unsafe {
            libc::syscall(
                libc::SYS_execve,
                path.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
            )
        };
        errno()
    }

    fn execve_fd(&self, fd: RawFd, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
        // SAFETY: as in `execve`; the empty path with AT_EMPTY_PATH names `fd` itself.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                fd,
                c"".as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        errno()
    }

    fn keep_across_exec(&self, fd: RawFd) -> SysResult<()> {
        // SAFETY: integer arguments.
        unit(unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_SETFD, 0) })
    }
}

/// A descriptor the init owns, closed through the same [`Sys`] when dropped.
pub struct Fd<'a, S: Sys + ?Sized> {
    sys: &'a S,
    raw: RawFd,
}

impl<'a, S: Sys + ?Sized> Fd<'a, S> {
    pub fn new(sys: &'a S, raw: RawFd) -> Self {
        Fd { sys, raw }
    }
    pub fn raw(&self) -> RawFd {
        self.raw
    }
}

impl<S: Sys + ?Sized> Drop for Fd<'_, S> {
    fn drop(&mut self) {
        self.sys.close(self.raw);
    }
}
