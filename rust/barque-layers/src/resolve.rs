//! Walking entry paths inside the unpack root one component at a time, never following a
//! symlink, and removing trees the same way.

use std::ffi::{OsStr, OsString};
use std::io;
use std::ops::Deref;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{os_class, ErrorClass};
use crate::kernel::{Kernel, NodeKind, Target};

/// Directories kept open for reuse: tar entries come grouped by directory, so most walks
/// reuse a prefix. Deeper walks use short-lived handles so a hostile nesting depth can't
/// exhaust file descriptors.
pub const CACHE_DEPTH: usize = 64;
/// Mode of parents that the layer did not list, as Docker creates them.
pub const IMPLICIT_DIR_MODE: u32 = 0o755;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("path crosses the symlink {at:?}")]
    Symlink { at: String },
    #[error("{at:?} is not a directory")]
    NotADirectory { at: String },
    #[error("{at:?} does not exist")]
    Missing { at: String },
    #[error("cannot open {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ResolveError {
    pub fn class(&self) -> ErrorClass<'_> {
        match self {
            ResolveError::Io { path, source } => os_class(source, path),
            _ => ErrorClass::Layer,
        }
    }
}

/// A directory handle either borrowed from the cache or owned by the caller.
pub enum DirHandle<'a, D> {
    Cached(&'a D),
    Owned(D),
}

impl<D> Deref for DirHandle<'_, D> {
    type Target = D;
    fn deref(&self) -> &D {
        match self {
            DirHandle::Cached(d) => d,
            DirHandle::Owned(d) => d,
        }
    }
}

pub struct Resolver<K: Kernel> {
    root: K::Dir,
    root_path: PathBuf,
    stack: Vec<(OsString, K::Dir)>,
}

fn display(parts: &[OsString]) -> String {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(p.as_bytes());
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
}

impl<K: Kernel> Resolver<K> {
    pub fn new(root: K::Dir, root_path: &Path) -> Self {
        Resolver {
            root,
            root_path: root_path.to_owned(),
            stack: Vec::new(),
        }
    }

    pub fn root(&self) -> &K::Dir {
        &self.root
    }

    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// Full host path of some components, for messages.
    pub fn host_path(&self, parts: &[OsString]) -> PathBuf {
        let mut p = self.root_path.clone();
        p.extend(parts);
        p
    }

    /// Forgets cached handles; required after anything that may have removed a directory.
    pub fn invalidate(&mut self) {
        self.stack.clear();
    }

    /// Opens the directory `parts` (the root when empty). With `create`, missing components
    /// are made (mode 0755); a component that is a symlink or not a directory is an error.
    pub fn dir<'a>(
        &'a mut self,
        k: &K,
        parts: &[OsString],
        create: bool,
    ) -> Result<DirHandle<'a, K::Dir>, ResolveError> {
        let common = self
            .stack
            .iter()
            .zip(parts)
            .take_while(|((cached, _), part)| cached == *part)
            .count();
        self.stack.truncate(common);
        let cacheable = parts.len().min(CACHE_DEPTH);
        for i in common..cacheable {
            let parent = self.stack.last().map_or(&self.root, |(_, d)| d);
            let next = self.step(k, parent, parts, i, create)?;
            self.stack.push((parts[i].clone(), next));
        }
        let cached = self.stack.last().map_or(&self.root, |(_, d)| d);
        if parts.len() <= CACHE_DEPTH {
            return Ok(DirHandle::Cached(cached));
        }
        let mut cur = self.step(k, cached, parts, CACHE_DEPTH, create)?;
        for i in CACHE_DEPTH + 1..parts.len() {
            cur = self.step(k, &cur, parts, i, create)?;
        }
        Ok(DirHandle::Owned(cur))
    }

    /// Like [`Resolver::dir`] without creating anything or touching the cache.
    pub fn existing_dir(
        &self,
        k: &K,
        parts: &[OsString],
    ) -> Result<DirHandle<'_, K::Dir>, ResolveError> {
        if parts.is_empty() {
            return Ok(DirHandle::Cached(&self.root));
        }
        let mut cur = self.step(k, &self.root, parts, 0, false)?;
        for i in 1..parts.len() {
            cur = self.step(k, &cur, parts, i, false)?;
        }
        Ok(DirHandle::Owned(cur))
    }

    /// Opens `parts[i]` inside `parent`.
    fn step(
        &self,
        k: &K,
        parent: &K::Dir,
        parts: &[OsString],
        i: usize,
        create: bool,
    ) -> Result<K::Dir, ResolveError> {
        let name = parts[i].as_os_str();
        let at = || display(&parts[..=i]);
        let io_err = |source| ResolveError::Io {
            path: self.host_path(&parts[..=i]),
            source,
        };
        match k.open_dir(parent, name) {
            Ok(d) => Ok(d),
            Err(e) if errno(&e) == Some(libc::ENOENT) && create => {
                match k.make_dir(parent, name, IMPLICIT_DIR_MODE) {
                    Ok(()) => {}
                    Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                    Err(e) => return Err(io_err(e)),
                }
                let d = k
                    .open_dir(parent, name)
                    .map_err(|e| self.diagnose(k, parent, name, e, &at))?;
                // umask may have narrowed the mode.
                k.set_mode(Target::Dir(&d), IMPLICIT_DIR_MODE)
                    .map_err(io_err)?;
                Ok(d)
            }
            Err(e) => Err(self.diagnose(k, parent, name, e, &at)),
        }
    }

    /// Explains why a component could not be opened as a directory.
    fn diagnose(
        &self,
        k: &K,
        parent: &K::Dir,
        name: &OsStr,
        err: io::Error,
        at: &dyn Fn() -> String,
    ) -> ResolveError {
        let path = || {
            let mut p = self.root_path.clone();
            p.push(at());
            p
        };
        match errno(&err) {
            Some(libc::ENOENT) => ResolveError::Missing { at: at() },
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => match k.node_kind(parent, name) {
                Ok(Some(NodeKind::Symlink)) => ResolveError::Symlink { at: at() },
                Ok(None) => ResolveError::Missing { at: at() },
                Ok(Some(NodeKind::Directory)) => ResolveError::Io {
                    path: path(),
                    source: err,
                },
                Ok(Some(_)) => ResolveError::NotADirectory { at: at() },
                Err(source) => ResolveError::Io {
                    path: path(),
                    source,
                },
            },
            _ => ResolveError::Io {
                path: path(),
                source: err,
            },
        }
    }
}

/// Removes `parent/name` and everything below it, never following symlinks. Iterative, so a
/// hostile nesting depth can't overflow the stack.
pub fn remove_all<K: Kernel>(k: &K, parent: &K::Dir, name: &OsStr) -> io::Result<()> {
    let mut stack: Vec<(K::Dir, OsString)> = vec![(k.open_dir(parent, name)?, name.to_owned())];
    loop {
        let Some((dir, _)) = stack.last() else {
            return Ok(());
        };
        let mut descend = None;
        for (child, kind) in k.list_dir(dir)? {
            if kind == NodeKind::Directory {
                descend = Some(child);
                break;
            }
            k.remove(dir, &child, false)?;
        }
        match descend {
            Some(child) => {
                let sub = k.open_dir(dir, &child)?;
                stack.push((sub, child));
            }
            None => {
                if let Some((done, done_name)) = stack.pop() {
                    drop(done);
                    let holder = stack.last().map_or(parent, |(d, _)| d);
                    k.remove(holder, &done_name, true)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_kernel::FakeKernel;

    fn parts(s: &str) -> Vec<OsString> {
        s.split('/').map(OsString::from).collect()
    }

    #[test]
    fn creates_missing_parents_and_reuses_cache() {
        let k = FakeKernel::new();
        let mut r = Resolver::new(k.open_root(Path::new("/")).unwrap(), Path::new("/layer"));
        {
            let d = r.dir(&k, &parts("a/b/c"), true).unwrap();
            k.make_dir(&d, OsStr::new("x"), 0o700).unwrap();
        }
        assert_eq!(k.kind("a/b/c/x"), Some(NodeKind::Directory));
        assert_eq!(k.mode("a/b"), Some(0o755));
        let opens = k.count_ops("open_dir");
        r.dir(&k, &parts("a/b/c"), true).unwrap();
        assert_eq!(
            k.count_ops("open_dir"),
            opens,
            "cached walk should not reopen"
        );
        r.dir(&k, &parts("a/b/d"), true).unwrap();
        assert_eq!(
            k.count_ops("open_dir"),
            opens + 2,
            "only the new component is opened"
        );
    }

    #[test]
    fn refuses_symlinks_and_files_in_the_path() {
        let k = FakeKernel::new();
        k.add_symlink("evil", "/tmp/outside");
        k.add_file("file", b"x");
        let mut r = Resolver::new(k.open_root(Path::new("/")).unwrap(), Path::new("/layer"));
        assert!(matches!(
            r.dir(&k, &parts("evil/sub"), true),
            Err(ResolveError::Symlink { ref at }) if at == "evil"
        ));
        assert!(matches!(
            r.dir(&k, &parts("file/sub"), true),
            Err(ResolveError::NotADirectory { .. })
        ));
        assert!(matches!(
            r.existing_dir(&k, &parts("nope/x")),
            Err(ResolveError::Missing { .. })
        ));
        assert_eq!(k.kind("evil"), Some(NodeKind::Symlink), "symlink untouched");
    }

    #[test]
    fn deep_paths_beyond_the_cache_still_resolve() {
        let k = FakeKernel::new();
        let deep: Vec<OsString> = (0..CACHE_DEPTH + 10)
            .map(|i| OsString::from(format!("d{i}")))
            .collect();
        let mut r = Resolver::new(k.open_root(Path::new("/")).unwrap(), Path::new("/layer"));
        assert!(matches!(
            r.dir(&k, &deep, true).unwrap(),
            DirHandle::Owned(_)
        ));
        assert!(r.existing_dir(&k, &deep).is_ok());
    }

    #[test]
    fn remove_all_does_not_follow_symlinks() {
        let k = FakeKernel::new();
        k.add_dir("outside");
        k.add_file("outside/keep", b"k");
        k.add_dir("t");
        k.add_dir("t/a");
        k.add_dir("t/a/b");
        k.add_file("t/a/b/f", b"x");
        k.add_symlink("t/link", "../outside");
        k.add_file("t/g", b"y");
        let root = k.open_root(Path::new("/")).unwrap();
        remove_all(&k, &root, OsStr::new("t")).unwrap();
        assert_eq!(k.kind("t"), None);
        assert_eq!(k.kind("outside/keep"), Some(NodeKind::Regular));
    }
}
