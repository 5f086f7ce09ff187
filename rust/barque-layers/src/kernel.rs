//! The kernel calls extraction needs, behind a trait so the unpacking logic can be tested
//! against an in-memory fake.
//!
//! Every call is relative to a directory handle and never follows a symlink in the last
//! component: the unpacker only ever hands out names it has resolved itself.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};

use crate::archive::Timestamp;

/// What lives at a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Directory,
    Regular,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Other,
}

/// Something whose metadata is being set.
pub enum Target<'a, K: Kernel + ?Sized> {
    Dir(&'a K::Dir),
    File(&'a K::File),
    /// A symlink, fifo or device node, addressed by name: opening a fifo or device would block
    /// or talk to a driver, and a symlink can't be opened without following it.
    Node {
        parent: &'a K::Dir,
        name: &'a OsStr,
        kind: NodeKind,
    },
}

impl<K: Kernel + ?Sized> Clone for Target<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: Kernel + ?Sized> Copy for Target<'_, K> {}

pub trait Kernel {
    /// An open directory.
    type Dir;
    /// A regular file open for writing.
    type File: Write;

    /// Opens the unpack root itself (a trusted, caller-provided path).
    fn open_root(&self, path: &Path) -> io::Result<Self::Dir>;
    /// Opens `parent/name` as a directory, failing on a symlink (`O_NOFOLLOW|O_DIRECTORY`).
    fn open_dir(&self, parent: &Self::Dir, name: &OsStr) -> io::Result<Self::Dir>;
    /// `lstat`: `None` when nothing is there.
    fn node_kind(&self, parent: &Self::Dir, name: &OsStr) -> io::Result<Option<NodeKind>>;
    fn make_dir(&self, parent: &Self::Dir, name: &OsStr, mode: u32) -> io::Result<()>;
    /// Creates a new regular file with permission bits `mode` less the umask
    /// (`O_CREAT|O_EXCL|O_NOFOLLOW`: never writes through whatever was there).
    fn create_file(&self, parent: &Self::Dir, name: &OsStr, mode: u32) -> io::Result<Self::File>;
    /// Who owns what this process creates, and what its umask takes away.
    fn creator(&self) -> Creator;
    fn symlink(&self, parent: &Self::Dir, name: &OsStr, target: &OsStr) -> io::Result<()>;
    /// Hard link without following a symlink at the source.
    fn hard_link(
        &self,
        from_parent: &Self::Dir,
        from_name: &OsStr,
        parent: &Self::Dir,
        name: &OsStr,
    ) -> io::Result<()>;
    /// Fifo or device node (`kind` is `Fifo`, `CharDevice` or `BlockDevice`).
    fn make_node(
        &self,
        parent: &Self::Dir,
        name: &OsStr,
        kind: NodeKind,
        major: u32,
        minor: u32,
    ) -> io::Result<()>;
    /// `unlinkat`, with `AT_REMOVEDIR` for an (empty) directory.
    fn remove(&self, parent: &Self::Dir, name: &OsStr, dir: bool) -> io::Result<()>;
    fn list_dir(&self, dir: &Self::Dir) -> io::Result<Vec<(OsString, NodeKind)>>;
    fn set_owner(&self, target: Target<'_, Self>, uid: u32, gid: u32) -> io::Result<()>;
    /// Permission bits; a no-op for symlinks, whose mode means nothing on Linux.
    fn set_mode(&self, target: Target<'_, Self>, mode: u32) -> io::Result<()>;
    fn set_xattr(&self, target: Target<'_, Self>, name: &OsStr, value: &[u8]) -> io::Result<()>;
    /// Sets atime and mtime to `time`.
    fn set_mtime(&self, target: Target<'_, Self>, time: Timestamp) -> io::Result<()>;
    /// Flushes the whole filesystem holding `dir` (one call instead of an fsync per file).
    fn sync_fs(&self, dir: &Self::Dir) -> io::Result<()>;
    /// Starts writing back `len` bytes of `file` from `offset` (`len == 0`: to the end)
    /// without waiting for them (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that a later
    /// [`Kernel::sync_fs`] finds little left to write. A hint: durability still comes from
    /// `sync_fs`.
    fn start_writeback(&self, file: &Self::File, offset: u64, len: u64) -> io::Result<()>;
}

/// The real thing, on Linux syscalls through rustix.
#[derive(Debug, Default, Clone, Copy)]
pub struct Linux;

/// The owner of a node this process creates (unless its directory is setgid, which passes
/// its group on) and the umask applied to the mode it is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Creator {
    pub uid: u32,
    pub gid: u32,
    pub umask: u32,
}

fn file_kind(ft: FileType) -> NodeKind {
    match ft {
        FileType::Directory => NodeKind::Directory,
        FileType::RegularFile => NodeKind::Regular,
        FileType::Symlink => NodeKind::Symlink,
        FileType::Fifo => NodeKind::Fifo,
        FileType::CharacterDevice => NodeKind::CharDevice,
        FileType::BlockDevice => NodeKind::BlockDevice,
        _ => NodeKind::Other,
    }
}

fn timestamps(time: Timestamp) -> Timestamps {
    let ts = Timespec {
        tv_sec: time.sec,
        tv_nsec: i64::from(time.nsec),
    };
    Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}

/// `/proc/self/fd/N/name`: reaches `name` inside the directory we hold open without
/// resolving any path we do not control; used for the calls that have no `*at` form.
fn proc_path(parent: &OwnedFd, name: &OsStr) -> PathBuf {
    use std::os::fd::AsRawFd;
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd()));
    if !name.is_empty() {
        p.push(name);
    }
    p
}

impl Linux {
    /// chmod on a fifo or device without following a symlink swapped in under us: open it
    /// `O_PATH|O_NOFOLLOW`, check it is what we made, chmod through its `/proc` magic link.
    fn chmod_node(parent: &OwnedFd, name: &OsStr, kind: NodeKind, mode: u32) -> io::Result<()> {
        let fd = rfs::openat(
            parent,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rfs::fstat(&fd)?;
        if file_kind(FileType::from_raw_mode(st.st_mode)) != kind {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        rfs::chmodat(
            rfs::CWD,
            proc_path(&fd, OsStr::new("")),
            Mode::from_raw_mode(mode),
            AtFlags::empty(),
        )?;
        Ok(())
    }
}

impl Kernel for Linux {
    type Dir = OwnedFd;
    type File = File;

    fn open_root(&self, path: &Path) -> io::Result<OwnedFd> {
        Ok(rfs::openat(
            rfs::CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }

    fn open_dir(&self, parent: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
        Ok(rfs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }

    fn node_kind(&self, parent: &OwnedFd, name: &OsStr) -> io::Result<Option<NodeKind>> {
        match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(file_kind(FileType::from_raw_mode(st.st_mode)))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn make_dir(&self, parent: &OwnedFd, name: &OsStr, mode: u32) -> io::Result<()> {
        Ok(rfs::mkdirat(parent, name, Mode::from_raw_mode(mode))?)
    }

    fn create_file(&self, parent: &OwnedFd, name: &OsStr, mode: u32) -> io::Result<File> {
        let fd = rfs::openat(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        Ok(File::from(fd))
    }

    fn creator(&self) -> Creator {
        // The umask is read from /proc (Linux 4.7+): setting it to learn it would race with
        // the caller's other threads. Unknown, it is taken as masking everything, so every
        // mode is then set explicitly.
        let umask = std::fs::read_to_string("/proc/thread-self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o777);
        Creator {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            umask,
        }
    }

    fn symlink(&self, parent: &OwnedFd, name: &OsStr, target: &OsStr) -> io::Result<()> {
        Ok(rfs::symlinkat(target, parent, name)?)
    }

    fn hard_link(
        &self,
        from_parent: &OwnedFd,
        from_name: &OsStr,
        parent: &OwnedFd,
        name: &OsStr,
    ) -> io::Result<()> {
        Ok(rfs::linkat(
            from_parent,
            from_name,
            parent,
            name,
            AtFlags::empty(),
        )?)
    }

    fn make_node(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        kind: NodeKind,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let ft = match kind {
            NodeKind::Fifo => FileType::Fifo,
            NodeKind::CharDevice => FileType::CharacterDevice,
            NodeKind::BlockDevice => FileType::BlockDevice,
            _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        };
        Ok(rfs::mknodat(
            parent,
            name,
            ft,
            Mode::empty(),
            rfs::makedev(major, minor),
        )?)
    }

    fn remove(&self, parent: &OwnedFd, name: &OsStr, dir: bool) -> io::Result<()> {
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        Ok(rfs::unlinkat(parent, name, flags)?)
    }

    fn list_dir(&self, dir: &OwnedFd) -> io::Result<Vec<(OsString, NodeKind)>> {
        let mut out = Vec::new();
        for entry in rfs::Dir::read_from(dir)? {
            let entry = entry?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                // Some filesystems don't fill d_type.
                FileType::Unknown => match self.node_kind(dir, name)? {
                    Some(kind) => kind,
                    None => continue,
                },
                ft => file_kind(ft),
            };
            out.push((name.to_owned(), kind));
        }
        Ok(out)
    }

    fn set_owner(&self, target: Target<'_, Self>, uid: u32, gid: u32) -> io::Result<()> {
        let (uid, gid) = (
            Some(rfs::Uid::from_raw_unchecked(uid)),
            Some(rfs::Gid::from_raw_unchecked(gid)),
        );
        match target {
            Target::Dir(fd) => rfs::fchown(fd, uid, gid)?,
            Target::File(file) => rfs::fchown(file.as_fd(), uid, gid)?,
            Target::Node { parent, name, .. } => {
                rfs::chownat(parent, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?
            }
        }
        Ok(())
    }

    fn set_mode(&self, target: Target<'_, Self>, mode: u32) -> io::Result<()> {
        let m = Mode::from_raw_mode(mode);
        match target {
            Target::Dir(fd) => rfs::fchmod(fd, m)?,
            Target::File(file) => rfs::fchmod(file.as_fd(), m)?,
            Target::Node {
                kind: NodeKind::Symlink,
                ..
            } => {}
            Target::Node { parent, name, kind } => Self::chmod_node(parent, name, kind, mode)?,
        }
        Ok(())
    }

    fn set_xattr(&self, target: Target<'_, Self>, name: &OsStr, value: &[u8]) -> io::Result<()> {
        match target {
            Target::Dir(fd) => rfs::fsetxattr(fd, name, value, XattrFlags::empty())?,
            Target::File(file) => rfs::fsetxattr(file.as_fd(), name, value, XattrFlags::empty())?,
            Target::Node {
                parent, name: node, ..
            } => rfs::lsetxattr(proc_path(parent, node), name, value, XattrFlags::empty())?,
        }
        Ok(())
    }

    fn set_mtime(&self, target: Target<'_, Self>, time: Timestamp) -> io::Result<()> {
        let ts = timestamps(time);
        match target {
            Target::Dir(fd) => rfs::futimens(fd, &ts)?,
            Target::File(file) => rfs::futimens(file.as_fd(), &ts)?,
            Target::Node { parent, name, .. } => {
                rfs::utimensat(parent, name, &ts, AtFlags::SYMLINK_NOFOLLOW)?
            }
        }
        Ok(())
    }

    fn sync_fs(&self, dir: &OwnedFd) -> io::Result<()> {
        Ok(rfs::syncfs(dir)?)
    }

    fn start_writeback(&self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let to_off = |v: u64| {
            libc::off64_t::try_from(v).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
        };
        // SAFETY: a plain syscall on a file descriptor we own; no memory is passed.
        let rc = unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                to_off(offset)?,
                to_off(len)?,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}
