//! Applying tar entries to a directory: safe extraction plus OCI -> overlayfs whiteouts.
//!
//! Every path is resolved component by component from a handle on the unpack root (see
//! [`crate::resolve`]); a parent that is a symlink is refused, and whatever already sits at an
//! entry's name is removed, never written through, before the new node is created.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::archive::{Archive, ArchiveError, Entry, EntryKind, Timestamp};
use crate::error::{os_class, stream_error_class, ErrorClass};
use crate::kernel::{Creator, Kernel, NodeKind, Target};
use crate::limits::{LimitError, Limits};
use crate::path::{EntryPath, PathError};
use crate::resolve::{remove_all, DirHandle, ResolveError, Resolver};
use crate::whiteout::{self, Whiteout, WhiteoutError};

/// Copy buffer for file contents.
const COPY_BUFFER: usize = 256 << 10;
/// With writeback on (see [`Unpacker::with_writeback`]), files at least this big start their
/// writeback as soon as their data is written, so the final syncfs finds little left to do;
/// smaller ones are left to the flusher, which batches them better than one request per file.
pub const WRITEBACK_MIN: u64 = 64 << 10;
/// Directories are created private and get their real mode once they exist.
const NEW_DIR_MODE: u32 = 0o700;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Whiteout(#[from] WhiteoutError),
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("entry {entry:?}: {source}")]
    Resolve {
        entry: String,
        #[source]
        source: ResolveError,
    },
    #[error("entry {entry:?}: hard link target {target:?} {reason}")]
    HardLink {
        entry: String,
        target: String,
        reason: &'static str,
    },
    #[error("entry {entry:?}: forbidden extended attribute {name:?}")]
    ForbiddenXattr { entry: String, name: String },
    #[error("entry {entry:?}: the layer root can only be a directory")]
    RootNotDir { entry: String },
    #[error("entry {entry:?}: empty symlink target")]
    EmptySymlink { entry: String },
    #[error("entry {entry:?}: cannot {op} {}: {source}", path.display())]
    Io {
        entry: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    pub fn class(&self) -> ErrorClass<'_> {
        match self {
            UnpackError::Archive(ArchiveError::Read { source, .. }) => {
                stream_error_class(source, None)
            }
            UnpackError::Resolve { source, .. } => source.class(),
            UnpackError::Io { path, source, .. } => os_class(source, path),
            _ => ErrorClass::Layer,
        }
    }
}

/// What an unpack did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackSummary {
    /// Tar entries processed (extension headers not counted).
    pub entries: u64,
    /// Sum of regular file sizes written.
    pub unpacked_bytes: u64,
}

/// Extended attributes a layer may carry. `trusted.*` is refused outright: overlayfs keeps
/// its own state there (`trusted.overlay.opaque`, `.redirect`, `.metacopy`...), so a layer
/// that could set it could reshape the merged view; opacity comes only from `.wh..wh..opq`.
pub fn xattr_allowed(name: &[u8]) -> bool {
    let namespaced = |prefix: &[u8]| name.len() > prefix.len() && name.starts_with(prefix);
    (namespaced(b"user.")
        || namespaced(b"security.")
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default")
        && !name.contains(&0)
}

/// How the node whose metadata is being applied came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    /// It was there already (a directory kept, the layer root, a device node).
    Before,
    /// Created just now by this process, with an unknown mode.
    Now,
    /// Created just now with these permission bits (before the umask).
    WithMode(u32),
}

/// Extracts entries into one directory.
pub struct Unpacker<K: Kernel> {
    resolver: Resolver<K>,
    ctx: Context<K>,
}

/// Everything but the resolver, so entry handlers can borrow both at once.
struct Context<K: Kernel> {
    kernel: K,
    root_path: PathBuf,
    limits: Limits,
    chown: bool,
    writeback: bool,
    entries: u64,
    unpacked_bytes: u64,
    /// Directory times are applied at the end, since creating children changes them.
    dir_times: HashMap<EntryPath, Timestamp>,
    /// Non-directories this layer made: the only valid hard-link targets.
    made: HashSet<Vec<u8>>,
    /// Who owns what this process creates, and its umask: a new file that already has the
    /// entry's owner and mode is not chowned or chmodded (two of its ~6 syscalls).
    creator: Creator,
    /// Directories set setgid by this layer (`""` is the root): what is created under them
    /// takes their group, so its owner is always set.
    setgid_dirs: HashSet<Vec<u8>>,
    buf: Vec<u8>,
}

impl<K: Kernel> Unpacker<K> {
    /// `chown` applies the entries' ownership (only root may); `root_path` is for messages.
    pub fn new(kernel: K, root: K::Dir, root_path: &Path, limits: Limits, chown: bool) -> Self {
        let creator = kernel.creator();
        Unpacker {
            resolver: Resolver::new(root, root_path),
            ctx: Context {
                kernel,
                root_path: root_path.to_owned(),
                limits,
                chown,
                writeback: false,
                entries: 0,
                unpacked_bytes: 0,
                dir_times: HashMap::new(),
                made: HashSet::new(),
                creator,
                setgid_dirs: HashSet::new(),
                buf: Vec::new(),
            },
        }
    }

    /// Starts the writeback of each large file as soon as it is written. Only worth it when
    /// the caller syncs the tree right after: otherwise it puts the disk writes, and a later
    /// flush's wait for them, on the unpack's critical path, where the kernel's flusher would
    /// have written the data in the background anyway.
    pub fn with_writeback(mut self, on: bool) -> Self {
        self.ctx.writeback = on;
        self
    }

    /// Applies every entry up to the end-of-archive marker.
    pub fn unpack<R: Read>(&mut self, archive: &mut Archive<R>) -> Result<(), UnpackError> {
        while let Some(entry) = archive.next_entry()? {
            self.apply(&entry, archive)?;
        }
        Ok(())
    }

    /// Applies one entry whose data (if any) is next in `archive`.
    pub fn apply<R: Read>(
        &mut self,
        entry: &Entry,
        archive: &mut Archive<R>,
    ) -> Result<(), UnpackError> {
        let ctx = &mut self.ctx;
        let name = entry.name();
        ctx.entries += 1;
        if ctx.entries > ctx.limits.max_entries {
            return Err(LimitError::Entries {
                entry: name,
                limit: ctx.limits.max_entries,
            }
            .into());
        }
        let path = EntryPath::parse(&entry.path)?;
        whiteout::check_parents(path.parent(), &name)?;
        // Refuse before creating anything.
        for (xattr, _) in &entry.xattrs {
            if !xattr_allowed(xattr) {
                let name = String::from_utf8_lossy(xattr).into_owned();
                return Err(UnpackError::ForbiddenXattr {
                    entry: entry.name(),
                    name,
                });
            }
        }
        let Some(file_name) = path.file_name() else {
            return self.apply_root(entry, &name);
        };
        let file_name = file_name.to_owned();
        let kind = match whiteout::parse(&file_name, &name)? {
            Some(Whiteout::Meta) => return Ok(()),
            Some(Whiteout::Opaque) => {
                let ctx = &self.ctx;
                let dir = self
                    .resolver
                    .dir(&ctx.kernel, path.parent(), true)
                    .map_err(resolve_err(&name))?;
                return ctx
                    .kernel
                    .set_xattr(
                        Target::Dir(&*dir),
                        OsStr::new(whiteout::OPAQUE_XATTR),
                        whiteout::OPAQUE_VALUE,
                    )
                    .map_err(ctx.io(&name, "set opaque xattr on", path.parent()));
            }
            Some(Whiteout::Remove(target)) => {
                let hidden = path.sibling(&target);
                let removed_dir = {
                    let dir = self
                        .resolver
                        .dir(&self.ctx.kernel, path.parent(), true)
                        .map_err(resolve_err(&name))?;
                    self.ctx.whiteout(&dir, &hidden, entry, &name)?
                };
                self.after(removed_dir);
                return Ok(());
            }
            None => entry.kind,
        };
        let removed_dir = match kind {
            EntryKind::HardLink => self.hard_link(&path, entry, &name)?,
            _ => {
                let dir = self
                    .resolver
                    .dir(&self.ctx.kernel, path.parent(), true)
                    .map_err(resolve_err(&name))?;
                let ctx = &mut self.ctx;
                match kind {
                    EntryKind::Directory => ctx.directory(&dir, &path, entry, &name)?,
                    EntryKind::Regular => ctx.regular(&dir, &path, entry, &name, archive)?,
                    EntryKind::Symlink => ctx.symlink(&dir, &path, entry, &name)?,
                    EntryKind::Fifo => ctx.node(&dir, &path, entry, &name, NodeKind::Fifo)?,
                    EntryKind::CharDevice => {
                        ctx.node(&dir, &path, entry, &name, NodeKind::CharDevice)?
                    }
                    EntryKind::BlockDevice => {
                        ctx.node(&dir, &path, entry, &name, NodeKind::BlockDevice)?
                    }
                    EntryKind::HardLink => false,
                }
            }
        };
        self.after(removed_dir);
        Ok(())
    }

    /// Applies directory times (deepest first) and reports what was done.
    pub fn finish(mut self) -> Result<UnpackSummary, UnpackError> {
        let mut dirs: Vec<(EntryPath, Timestamp)> = self.ctx.dir_times.drain().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().len()));
        let ctx = &self.ctx;
        for (path, time) in dirs {
            let name = path.display();
            let dir = match self.resolver.existing_dir(&ctx.kernel, path.components()) {
                Ok(dir) => dir,
                Err(e @ ResolveError::Io { .. }) => return Err(resolve_err(&name)(e)),
                // Replaced or removed by a later entry: nothing to date.
                Err(_) => continue,
            };
            ctx.kernel
                .set_mtime(Target::Dir(&*dir), time)
                .map_err(ctx.io(&name, "set times of", path.components()))?;
        }
        Ok(UnpackSummary {
            entries: self.ctx.entries,
            unpacked_bytes: self.ctx.unpacked_bytes,
        })
    }

    pub fn kernel(&self) -> &K {
        &self.ctx.kernel
    }

    pub fn root(&self) -> &K::Dir {
        self.resolver.root()
    }

    fn parent(
        &mut self,
        path: &EntryPath,
        name: &str,
    ) -> Result<DirHandle<'_, K::Dir>, UnpackError> {
        self.resolver
            .dir(&self.ctx.kernel, path.parent(), true)
            .map_err(resolve_err(name))
    }

    /// Cached directory handles may point at removed directories.
    fn after(&mut self, removed_dir: bool) {
        if removed_dir {
            self.resolver.invalidate();
        }
    }

    /// `./` in the tar: the layer root's own metadata.
    fn apply_root(&mut self, entry: &Entry, name: &str) -> Result<(), UnpackError> {
        if entry.kind != EntryKind::Directory {
            return Err(UnpackError::RootNotDir {
                entry: name.to_owned(),
            });
        }
        let root = EntryPath::default();
        self.ctx.meta(
            Target::Dir(self.resolver.root()),
            entry,
            name,
            &root,
            Made::Before,
        )?;
        self.ctx.note_setgid(&root, entry);
        self.ctx.dir_times.insert(root, entry.mtime);
        Ok(())
    }

    fn hard_link(
        &mut self,
        path: &EntryPath,
        entry: &Entry,
        name: &str,
    ) -> Result<bool, UnpackError> {
        let shown = String::from_utf8_lossy(&entry.link).into_owned();
        let refuse = |reason| UnpackError::HardLink {
            entry: name.to_owned(),
            target: shown.clone(),
            reason,
        };
        let target = EntryPath::parse(&entry.link).map_err(|_| refuse("escapes the layer"))?;
        let Some(target_name) = target.file_name() else {
            return Err(refuse("is the layer root"));
        };
        if !self.ctx.made.contains(&target.to_bytes()) {
            return Err(refuse("is not a file earlier in this layer"));
        }
        if &target == path {
            return Ok(false);
        }
        let Some(file_name) = path.file_name() else {
            return Err(UnpackError::RootNotDir {
                entry: name.to_owned(),
            });
        };
        // Create the parents first, then hold both directories without the cache.
        drop(self.parent(path, name)?);
        let ctx = &mut self.ctx;
        let from = self
            .resolver
            .existing_dir(&ctx.kernel, target.parent())
            .map_err(|_| refuse("is not a file earlier in this layer"))?;
        let dir = self
            .resolver
            .existing_dir(&ctx.kernel, path.parent())
            .map_err(resolve_err(name))?;
        let mut removed_dir = false;
        let mut attempt = ctx.kernel.hard_link(&from, target_name, &dir, file_name);
        if errno(&attempt) == Some(libc::EEXIST) {
            removed_dir = ctx.clear(&dir, path, name)?;
            attempt = ctx.kernel.hard_link(&from, target_name, &dir, file_name);
        }
        match attempt {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT)) => {
                return Err(refuse("no longer exists"))
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM)) => {
                return Err(refuse("is a directory"))
            }
            Err(e) => return Err(ctx.io(name, "hard link", path.components())(e)),
        }
        ctx.made.insert(path.to_bytes());
        Ok(removed_dir)
    }
}

fn errno<T>(r: &io::Result<T>) -> Option<i32> {
    r.as_ref().err().and_then(io::Error::raw_os_error)
}

fn resolve_err(name: &str) -> impl Fn(ResolveError) -> UnpackError + '_ {
    move |source| UnpackError::Resolve {
        entry: name.to_owned(),
        source,
    }
}

impl<K: Kernel> Context<K> {
    fn io<'a>(
        &'a self,
        entry: &'a str,
        op: &'static str,
        parts: &'a [std::ffi::OsString],
    ) -> impl Fn(io::Error) -> UnpackError + 'a {
        move |source| {
            let mut path = self.root_path.clone();
            path.extend(parts);
            UnpackError::Io {
                entry: entry.to_owned(),
                op,
                path,
                source,
            }
        }
    }

    /// Removes whatever is at `path` (recursively for a directory, never following symlinks).
    /// Returns whether a directory went away.
    fn clear(&mut self, dir: &K::Dir, path: &EntryPath, entry: &str) -> Result<bool, UnpackError> {
        let Some(name) = path.file_name() else {
            return Ok(false);
        };
        let parts = path.components();
        let k = &self.kernel;
        let removed_dir = match k
            .node_kind(dir, name)
            .map_err(self.io(entry, "inspect", parts))?
        {
            None => false,
            Some(NodeKind::Directory) => {
                remove_all(k, dir, name).map_err(self.io(entry, "remove", parts))?;
                true
            }
            Some(_) => {
                k.remove(dir, name, false)
                    .map_err(self.io(entry, "remove", parts))?;
                false
            }
        };
        self.made.remove(&path.to_bytes());
        Ok(removed_dir)
    }

    /// Ownership, then mode (chown clears setuid/setgid), then xattrs (chown also drops
    /// `security.capability`), then times. What a node `made` just now already has is not
    /// set again.
    fn meta(
        &self,
        target: Target<'_, K>,
        entry: &Entry,
        name: &str,
        path: &EntryPath,
        made: Made,
    ) -> Result<(), UnpackError> {
        let k = &self.kernel;
        let parts = path.components();
        let fresh = made != Made::Before;
        let c = self.creator;
        let owned = fresh && entry.uid == c.uid && entry.gid == c.gid && !self.under_setgid(path);
        if self.chown && !owned {
            k.set_owner(target, entry.uid, entry.gid)
                .map_err(self.io(name, "chown", parts))?;
        }
        let moded = match made {
            Made::WithMode(bits) => bits & !c.umask == entry.mode & 0o7777,
            _ => false,
        };
        if !moded {
            k.set_mode(target, entry.mode)
                .map_err(self.io(name, "chmod", parts))?;
        }
        for (xattr, value) in &entry.xattrs {
            k.set_xattr(target, OsStr::from_bytes(xattr), value)
                .map_err(self.io(name, "set xattr on", parts))?;
        }
        if entry.kind != EntryKind::Directory {
            k.set_mtime(target, entry.mtime)
                .map_err(self.io(name, "set times of", parts))?;
        }
        Ok(())
    }

    /// Whether a directory above `path` was made setgid by this layer (conservative: one
    /// that was setgid once counts, and so does what it holds).
    fn under_setgid(&self, path: &EntryPath) -> bool {
        if self.setgid_dirs.is_empty() {
            return false;
        }
        let bytes = path.to_bytes();
        self.setgid_dirs.contains(&b""[..])
            || bytes
                .iter()
                .enumerate()
                .any(|(i, &b)| b == b'/' && self.setgid_dirs.contains(&bytes[..i]))
    }

    fn note_setgid(&mut self, path: &EntryPath, entry: &Entry) {
        if entry.mode & 0o2000 != 0 {
            self.setgid_dirs.insert(path.to_bytes());
        }
    }

    fn directory(
        &mut self,
        dir: &K::Dir,
        path: &EntryPath,
        entry: &Entry,
        name: &str,
    ) -> Result<bool, UnpackError> {
        let Some(file_name) = path.file_name() else {
            return Ok(false);
        };
        let parts = path.components();
        let mut removed_dir = false;
        let made = self.kernel.make_dir(dir, file_name, NEW_DIR_MODE);
        let mut fresh = Made::Now;
        if errno(&made) == Some(libc::EEXIST) {
            let existing = self
                .kernel
                .node_kind(dir, file_name)
                .map_err(self.io(name, "inspect", parts))?;
            // Directory over directory keeps the content and only updates metadata.
            fresh = Made::Before;
            if existing != Some(NodeKind::Directory) {
                fresh = Made::Now;
                removed_dir = self.clear(dir, path, name)?;
                self.kernel
                    .make_dir(dir, file_name, NEW_DIR_MODE)
                    .map_err(self.io(name, "create directory", parts))?;
            }
        } else {
            made.map_err(self.io(name, "create directory", parts))?;
        }
        let opened =
            self.kernel
                .open_dir(dir, file_name)
                .map_err(self.io(name, "open directory", parts))?;
        self.meta(Target::Dir(&opened), entry, name, path, fresh)?;
        self.note_setgid(path, entry);
        self.dir_times.insert(path.clone(), entry.mtime);
        Ok(removed_dir)
    }

    fn regular<R: Read>(
        &mut self,
        dir: &K::Dir,
        path: &EntryPath,
        entry: &Entry,
        name: &str,
        archive: &mut Archive<R>,
    ) -> Result<bool, UnpackError> {
        let Some(file_name) = path.file_name() else {
            return Ok(false);
        };
        let parts = path.components();
        let mut removed_dir = false;
        // O_EXCL|O_NOFOLLOW: an existing node (maybe a symlink pointing out) is removed, never
        // opened. Created with its final permission bits, unless it has special ones, which
        // are set after the owner (chown clears them).
        let bits = if entry.mode & 0o7000 == 0 {
            entry.mode & 0o777
        } else {
            0o600
        };
        let mut created = self.kernel.create_file(dir, file_name, bits);
        if errno(&created) == Some(libc::EEXIST) {
            removed_dir = self.clear(dir, path, name)?;
            created = self.kernel.create_file(dir, file_name, bits);
        }
        let mut file = created.map_err(self.io(name, "create", parts))?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(COPY_BUFFER, 0);
        let copied = loop {
            let n = match archive.read_data(&mut buf) {
                Ok(n) => n,
                Err(e) => break Err(UnpackError::from(e)),
            };
            if n == 0 {
                break Ok(());
            }
            if let Err(e) = file.write_all(&buf[..n]) {
                break Err(self.io(name, "write", parts)(e));
            }
        };
        self.buf = buf;
        copied?;
        if self.writeback && entry.size >= WRITEBACK_MIN {
            // Only a hint: a failure here shows up, if it matters, in the final syncfs.
            let _ = self.kernel.start_writeback(&file, 0, 0);
        }
        self.unpacked_bytes += entry.size;
        self.meta(Target::File(&file), entry, name, path, Made::WithMode(bits))?;
        self.made.insert(path.to_bytes());
        Ok(removed_dir)
    }

    fn symlink(
        &mut self,
        dir: &K::Dir,
        path: &EntryPath,
        entry: &Entry,
        name: &str,
    ) -> Result<bool, UnpackError> {
        let Some(file_name) = path.file_name() else {
            return Ok(false);
        };
        if entry.link.is_empty() {
            return Err(UnpackError::EmptySymlink {
                entry: name.to_owned(),
            });
        }
        // The target is stored as-is: it is never followed while unpacking.
        let target = OsStr::from_bytes(&entry.link);
        let mut removed_dir = false;
        let mut made = self.kernel.symlink(dir, file_name, target);
        if errno(&made) == Some(libc::EEXIST) {
            removed_dir = self.clear(dir, path, name)?;
            made = self.kernel.symlink(dir, file_name, target);
        }
        made.map_err(self.io(name, "create symlink", path.components()))?;
        let node = Target::Node {
            parent: dir,
            name: file_name,
            kind: NodeKind::Symlink,
        };
        self.meta(node, entry, name, path, Made::Now)?;
        self.made.insert(path.to_bytes());
        Ok(removed_dir)
    }

    fn node(
        &mut self,
        dir: &K::Dir,
        path: &EntryPath,
        entry: &Entry,
        name: &str,
        kind: NodeKind,
    ) -> Result<bool, UnpackError> {
        let Some(file_name) = path.file_name() else {
            return Ok(false);
        };
        let mut removed_dir = false;
        let (major, minor) = (entry.dev_major, entry.dev_minor);
        let mut made = self.kernel.make_node(dir, file_name, kind, major, minor);
        if errno(&made) == Some(libc::EEXIST) {
            removed_dir = self.clear(dir, path, name)?;
            made = self.kernel.make_node(dir, file_name, kind, major, minor);
        }
        made.map_err(self.io(name, "create node", path.components()))?;
        self.meta(
            Target::Node {
                parent: dir,
                name: file_name,
                kind,
            },
            entry,
            name,
            path,
            Made::Before,
        )?;
        self.made.insert(path.to_bytes());
        Ok(removed_dir)
    }

    /// `.wh.NAME`: overlayfs reads a 0:0 character device as "deleted".
    fn whiteout(
        &mut self,
        dir: &K::Dir,
        hidden: &EntryPath,
        entry: &Entry,
        name: &str,
    ) -> Result<bool, UnpackError> {
        let Some(file_name) = hidden.file_name() else {
            return Ok(false);
        };
        let parts = hidden.components();
        let removed_dir = self.clear(dir, hidden, name)?;
        self.kernel
            .make_node(dir, file_name, NodeKind::CharDevice, 0, 0)
            .map_err(self.io(name, "create whiteout", parts))?;
        if self.chown {
            let node = Target::Node {
                parent: dir,
                name: file_name,
                kind: NodeKind::CharDevice,
            };
            self.kernel
                .set_owner(node, entry.uid, entry.gid)
                .map_err(self.io(name, "chown", parts))?;
        }
        Ok(removed_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_kernel::FakeKernel;
    use crate::test_support::{raw_header, raw_link, raw_tar, TarBuilder, MTIME};

    fn unpack_with(
        k: &FakeKernel,
        tar: &[u8],
        limits: Limits,
    ) -> Result<UnpackSummary, UnpackError> {
        let root = k.open_root(Path::new("/")).unwrap();
        let mut u = Unpacker::new(k.clone(), root, Path::new("/layer"), limits, true);
        let mut archive = Archive::new(tar);
        u.unpack(&mut archive)?;
        u.finish()
    }

    fn unpack(k: &FakeKernel, tar: &[u8]) -> Result<UnpackSummary, UnpackError> {
        unpack_with(k, tar, Limits::default())
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
        let mut h = TarBuilder::header(kind, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h
    }

    #[test]
    fn round_trip_preserves_everything() {
        let mut b = TarBuilder::new();
        b.add(
            header(tar::EntryType::Directory, 0o750, 1000, 1000),
            "srv/",
            b"",
        );
        b.pax(&[("SCHILY.xattr.user.note", &b"hello"[..])]);
        b.add(
            header(tar::EntryType::Regular, 0o4755, 0, 0),
            "srv/setuid",
            b"secret",
        );
        b.symlink("srv/link", "../etc/passwd");
        b.hardlink("srv/hard", "srv/setuid");
        let mut fifo = header(tar::EntryType::Fifo, 0o600, 0, 0);
        fifo.set_device_major(0).unwrap();
        b.add(fifo, "srv/fifo", b"");
        let mut dev = header(tar::EntryType::Char, 0o666, 0, 0);
        dev.set_device_major(1).unwrap();
        dev.set_device_minor(3).unwrap();
        b.add(dev, "dev/null", b"");
        let tar = b.finish();

        let k = FakeKernel::new();
        let summary = unpack(&k, &tar).unwrap();
        assert_eq!(
            summary,
            UnpackSummary {
                entries: 6,
                unpacked_bytes: 6
            }
        );

        let srv = k.inode("srv").unwrap();
        assert_eq!((srv.mode, srv.uid, srv.gid), (0o750, 1000, 1000));
        let f = k.inode("srv/setuid").unwrap();
        assert_eq!(
            f.mode, 0o4755,
            "chmod must come after chown, which clears setuid"
        );
        assert_eq!(f.content, b"secret");
        assert_eq!(f.xattrs.get(OsStr::new("user.note")).unwrap(), b"hello");
        assert_eq!(
            f.mtime,
            Some(Timestamp {
                sec: MTIME as i64,
                nsec: 0
            })
        );
        assert_eq!(k.inode("srv/hard").unwrap().ino, f.ino);
        let link = k.inode("srv/link").unwrap();
        assert_eq!(
            (link.kind, link.link.to_str().unwrap()),
            (NodeKind::Symlink, "../etc/passwd")
        );
        assert_eq!(k.kind("srv/fifo"), Some(NodeKind::Fifo));
        assert_eq!(k.mode("srv/fifo"), Some(0o600));
        let null = k.inode("dev/null").unwrap();
        assert_eq!(
            (null.kind, null.dev, null.mode),
            (NodeKind::CharDevice, (1, 3), 0o666)
        );
        assert_eq!(k.mode("dev"), Some(0o755), "implicit parents are 0755");
        assert_eq!(
            srv.mtime,
            Some(Timestamp {
                sec: MTIME as i64,
                nsec: 0
            })
        );
        let ops = k.ops();
        let dated = ops.iter().position(|o| o == "mtime srv").unwrap();
        let last_child = ops
            .iter()
            .rposition(|o| o.starts_with("mknod srv/") || o.starts_with("link srv/"))
            .unwrap();
        assert!(
            dated > last_child,
            "directory times are applied after its children: {ops:?}"
        );
    }

    #[test]
    fn chown_then_chmod_then_xattrs_then_times() {
        let mut b = TarBuilder::new();
        b.pax(&[("SCHILY.xattr.security.capability", &b"\x01\x00\x00\x02"[..])]);
        b.add(
            header(tar::EntryType::Regular, 0o2755, 5, 5),
            "bin/ping",
            b"x",
        );
        let k = FakeKernel::new();
        unpack(&k, &b.finish()).unwrap();
        let ops: Vec<String> = k.ops().into_iter().filter(|o| o.contains("ino")).collect();
        let verbs: Vec<&str> = ops.iter().map(|o| o.split(' ').next().unwrap()).collect();
        assert_eq!(verbs, ["chown", "chmod", "xattr", "mtime"]);
        let ping = k.inode("bin/ping").unwrap();
        assert_eq!(ping.mode, 0o2755);
        assert!(ping.xattrs.contains_key(OsStr::new("security.capability")));
    }

    /// The metadata calls made on `path`'s inode, by verb.
    fn verbs_on(k: &FakeKernel, path: &str) -> Vec<String> {
        let ino = format!("ino{}", k.inode(path).unwrap().ino);
        k.ops()
            .into_iter()
            .filter(|o| o.split(' ').nth(1) == Some(ino.as_str()))
            .map(|o| o.split(' ').next().unwrap().to_owned())
            .collect()
    }

    /// A layer of the given (kind, mode, uid, gid, path) entries, each with one byte.
    fn layer(entries: &[(tar::EntryType, u32, u64, u64, &str)]) -> Vec<u8> {
        let mut b = TarBuilder::new();
        for &(kind, mode, uid, gid, path) in entries {
            let data: &[u8] = if kind == tar::EntryType::Directory {
                b""
            } else {
                b"x"
            };
            b.add(header(kind, mode, uid, gid), path, data);
        }
        b.finish()
    }

    #[test]
    fn a_new_file_that_already_has_its_owner_and_mode_is_not_chowned_or_chmodded() {
        use tar::EntryType::Regular;
        let tar = layer(&[
            (Regular, 0o644, 0, 0, "etc/motd"),
            (Regular, 0o664, 0, 0, "etc/shared"),
            (Regular, 0o640, 0, 42, "etc/shadow"),
        ]);
        let k = FakeKernel::new();
        unpack(&k, &tar).unwrap();
        assert_eq!(verbs_on(&k, "etc/motd"), ["mtime"]);
        // The umask (022) took a bit the entry has: set explicitly.
        assert_eq!(verbs_on(&k, "etc/shared"), ["chmod", "mtime"]);
        assert_eq!(verbs_on(&k, "etc/shadow"), ["chown", "mtime"]);
        for (path, mode, gid) in [
            ("etc/motd", 0o644, 0),
            ("etc/shared", 0o664, 0),
            ("etc/shadow", 0o640, 42),
        ] {
            let i = k.inode(path).unwrap();
            assert_eq!((i.mode, i.uid, i.gid), (mode, 0, gid), "{path}");
        }
    }

    #[test]
    fn what_a_setgid_directory_holds_gets_its_owner_set() {
        use tar::EntryType::{Directory, Regular};
        let tar = layer(&[
            (Directory, 0o2775, 0, 8, "var/mail/"),
            (Regular, 0o644, 0, 0, "var/mail/root"),
            (Regular, 0o644, 0, 0, "var/mail/deep/er"),
            (Regular, 0o644, 0, 0, "var/other"),
        ]);
        let k = FakeKernel::new();
        unpack(&k, &tar).unwrap();
        for path in ["var/mail/root", "var/mail/deep/er"] {
            assert_eq!(
                k.inode(path).unwrap().gid,
                0,
                "{path} kept the directory's group"
            );
            assert!(verbs_on(&k, path).contains(&"chown".to_owned()), "{path}");
        }
        assert_eq!(verbs_on(&k, "var/other"), ["mtime"]);
        assert_eq!(k.inode("var/mail").unwrap().mode, 0o2775);
    }

    #[test]
    fn refuses_paths_through_symlinks() {
        let k = FakeKernel::new();
        k.add_dir("outside");
        let tar = raw_tar(&[
            &raw_link("evil", b'2', "/outside"),
            &raw_header("evil/file", b'0', 0, 0o644),
        ]);
        let err = unpack(&k, &tar).unwrap_err();
        assert!(
            matches!(
                err,
                UnpackError::Resolve {
                    source: ResolveError::Symlink { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("evil/file"), "{err}");
        assert_eq!(k.class_of(&err), ErrorClass::Layer);
        assert_eq!(k.paths(), ["", "evil", "outside"]);
    }

    #[test]
    fn replaces_a_symlink_instead_of_writing_through_it() {
        let k = FakeKernel::new();
        k.add_file("sentinel", b"keep");
        let mut b = TarBuilder::new();
        b.symlink("x", "../sentinel");
        b.file("x", 0o777, b"new");
        b.symlink("d", "../sentinel");
        b.add(header(tar::EntryType::Directory, 0o777, 1, 1), "d", b"");
        unpack(&k, &b.finish()).unwrap();
        assert_eq!(k.kind("x"), Some(NodeKind::Regular));
        assert_eq!(k.inode("x").unwrap().content, b"new");
        assert_eq!(k.kind("d"), Some(NodeKind::Directory));
        let s = k.inode("sentinel").unwrap();
        assert_eq!(
            (s.mode, s.uid, s.content.as_slice(), s.mtime),
            (0o644, 0, &b"keep"[..], None)
        );
    }

    #[test]
    fn replacement_rules() {
        let k = FakeKernel::new();
        let mut b = TarBuilder::new();
        b.dir("d", 0o755);
        b.file("d/inner", 0o644, b"1");
        b.dir("d", 0o700); // dir over dir: keeps content
        b.dir("gone", 0o755);
        b.file("gone/f", 0o644, b"2");
        b.file("gone", 0o644, b"now a file"); // dir replaced by file
        b.file("f", 0o644, b"old");
        b.dir("f", 0o755); // file replaced by dir
        b.file("f/x", 0o644, b"x"); // and the cache must see the new dir
        unpack(&k, &b.finish()).unwrap();
        assert_eq!(k.mode("d"), Some(0o700));
        assert_eq!(k.inode("d/inner").unwrap().content, b"1");
        assert_eq!(k.kind("gone"), Some(NodeKind::Regular));
        assert_eq!(k.kind("gone/f"), None);
        assert_eq!(k.kind("f"), Some(NodeKind::Directory));
        assert_eq!(k.kind("f/x"), Some(NodeKind::Regular));
    }

    #[test]
    fn whiteouts_become_overlay_markers() {
        let k = FakeKernel::new();
        let mut b = TarBuilder::new();
        b.dir("a", 0o755);
        b.file("a/.wh..wh..opq", 0o644, b"");
        b.file("b/.wh..wh..opq", 0o644, b""); // marker before its directory
        b.dir("b", 0o711);
        b.dir("c", 0o755);
        b.file("c/victim", 0o644, b"x");
        b.file("c/.wh.victim", 0o644, b"");
        b.file(".wh.c", 0o644, b""); // whiteout replacing a whole directory
        b.file("e/.wh.never-existed", 0o644, b"");
        b.file("e/.wh..wh.plnk", 0o644, b"");
        unpack(&k, &b.finish()).unwrap();
        for dir in ["a", "b"] {
            let i = k.inode(dir).unwrap();
            assert_eq!(
                i.xattrs
                    .get(OsStr::new("trusted.overlay.opaque"))
                    .map(Vec::as_slice),
                Some(&b"y"[..]),
                "{dir}"
            );
        }
        assert_eq!(k.mode("b"), Some(0o711));
        let c = k.inode("c").unwrap();
        assert_eq!((c.kind, c.dev), (NodeKind::CharDevice, (0, 0)));
        assert_eq!(k.kind("c/victim"), None);
        assert_eq!(k.kind("e/never-existed"), Some(NodeKind::CharDevice));
        assert!(
            k.paths().iter().all(|p| !p.contains(".wh.")),
            "{:?}",
            k.paths()
        );
    }

    #[test]
    fn refuses_whiteouts_of_self_or_parent() {
        for name in ["dir/.wh..", "dir/.wh.", "dir/.wh...", ".wh..", ".wh.x/y"] {
            let k = FakeKernel::new();
            let tar = raw_tar(&[&raw_header(name, b'0', 0, 0o644)]);
            let err = unpack(&k, &tar).unwrap_err();
            assert!(matches!(err, UnpackError::Whiteout(_)), "{name}: {err}");
            assert!(err.to_string().contains(name), "{err}");
            assert_eq!(k.paths(), [""], "{name}");
        }
    }

    #[test]
    fn refuses_escaping_names() {
        for name in ["../x", "a/../../x", "/etc/passwd", "./../x"] {
            let k = FakeKernel::new();
            let tar = raw_tar(&[&raw_header(name, b'0', 0, 0o644)]);
            let err = unpack(&k, &tar).unwrap_err();
            assert!(matches!(err, UnpackError::Path(_)), "{name}: {err}");
            assert!(err.to_string().contains(name), "{err}");
            assert_eq!(k.paths(), [""]);
        }
    }

    #[test]
    fn refuses_bad_hard_links() {
        for target in ["/etc/passwd", "../x", "absent", "dir", ""] {
            let k = FakeKernel::new();
            let tar = raw_tar(&[
                &raw_header("dir/", b'5', 0, 0o755),
                &raw_link("dir/link", b'1', target),
            ]);
            let err = unpack(&k, &tar).unwrap_err();
            assert!(
                matches!(err, UnpackError::HardLink { .. }),
                "{target}: {err}"
            );
            assert!(err.to_string().contains("dir/link"), "{err}");
            assert_eq!(k.kind("dir/link"), None);
        }
    }

    #[test]
    fn hard_link_target_removed_later_is_refused() {
        let k = FakeKernel::new();
        let mut b = TarBuilder::new();
        b.file("a", 0o644, b"x");
        b.file(".wh.a", 0o644, b"");
        b.hardlink("b", "a");
        let err = unpack(&k, &b.finish()).unwrap_err();
        assert!(matches!(err, UnpackError::HardLink { .. }), "{err}");
    }

    #[test]
    fn refuses_trusted_xattrs() {
        for name in [
            "trusted.overlay.opaque",
            "trusted.overlay.redirect",
            "trusted.x",
            "system.foo",
            "user.",
        ] {
            let k = FakeKernel::new();
            let mut b = TarBuilder::new();
            b.pax(&[(format!("SCHILY.xattr.{name}").as_str(), &b"y"[..])]);
            b.dir("d", 0o755);
            let err = unpack(&k, &b.finish()).unwrap_err();
            assert!(
                matches!(err, UnpackError::ForbiddenXattr { .. }),
                "{name}: {err}"
            );
            assert!(err.to_string().contains("\"d"), "{err}");
            assert_eq!(k.paths(), [""]);
        }
    }

    #[test]
    fn max_entries_is_enforced() {
        let mut b = TarBuilder::new();
        for i in 0..5 {
            b.file(&format!("f{i}"), 0o644, b"");
        }
        let tar = b.finish();
        let k = FakeKernel::new();
        assert!(unpack_with(
            &k,
            &tar,
            Limits {
                max_bytes: u64::MAX,
                max_entries: 5
            }
        )
        .is_ok());
        let k = FakeKernel::new();
        let err = unpack_with(
            &k,
            &tar,
            Limits {
                max_bytes: u64::MAX,
                max_entries: 4,
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, UnpackError::Limit(LimitError::Entries { ref entry, .. }) if entry == "f4"),
            "{err}"
        );
    }

    #[test]
    fn root_entry_sets_root_metadata() {
        let k = FakeKernel::new();
        let mut b = TarBuilder::new();
        b.add(header(tar::EntryType::Directory, 0o700, 7, 7), "./", b"");
        b.file("./a", 0o644, b"");
        unpack(&k, &b.finish()).unwrap();
        let root = k.inode("").unwrap();
        assert_eq!((root.mode, root.uid), (0o700, 7));
        assert!(root.mtime.is_some());
        let k = FakeKernel::new();
        let tar = raw_tar(&[&raw_header("./", b'0', 0, 0o644)]);
        assert!(matches!(
            unpack(&k, &tar),
            Err(UnpackError::RootNotDir { .. })
        ));
    }

    #[test]
    fn allowed_xattr_names() {
        assert!(xattr_allowed(b"user.foo"));
        assert!(xattr_allowed(b"security.capability"));
        assert!(xattr_allowed(b"system.posix_acl_access"));
        assert!(!xattr_allowed(b"trusted.overlay.opaque"));
        assert!(!xattr_allowed(b"user."));
        assert!(!xattr_allowed(b"TRUSTED.x"));
    }
}
