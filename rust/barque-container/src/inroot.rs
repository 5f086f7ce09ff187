//! Paths inside the container's rootfs, resolved by the kernel so they can never leave it.
//!
//! A mount target, the working directory or a masked path is cleaned lexically in the parent
//! (`..` clamped at `/`) and split into its prefixes; in the child each prefix is opened with
//! `openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)` relative to a handle on the rootfs, and a
//! missing component is created under the handle of its (already resolved) parent. An image
//! whose `/proc` is a symlink to `../../host` therefore gets its mount inside the rootfs, and
//! `/proc/self/fd/N` as a working directory is refused (CVE-2024-21626).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::sys::{Errno, Fd, Sys};

#[derive(Debug, thiserror::Error)]
pub enum InRootError {
    #[error("{}: path contains a NUL byte", path.display())]
    Nul { path: PathBuf },
    #[error("{}: must be an absolute path", path.display())]
    Relative { path: PathBuf },
}

/// What to create when a component is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Fail with ENOENT.
    Nothing,
    /// Directories all the way (mode 0755).
    Dirs,
    /// Directories, then an empty regular file as the last component (a bind-mounted file).
    File,
}

/// A cleaned absolute container path, ready for the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRootPath {
    /// The cleaned path as the container sees it (`/a/b`), for messages.
    pub display: PathBuf,
    /// `a`, `a/b`, ...: what is opened at each step, relative to the root handle.
    prefixes: Vec<CString>,
    /// `a`, `b`, ...: the name created under the previous prefix when missing.
    names: Vec<CString>,
}

fn cstring(bytes: &[u8], path: &Path) -> Result<CString, InRootError> {
    CString::new(bytes).map_err(|_| InRootError::Nul {
        path: path.to_owned(),
    })
}

impl InRootPath {
    pub fn new(path: &Path) -> Result<InRootPath, InRootError> {
        if !path.is_absolute() {
            return Err(InRootError::Relative {
                path: path.to_owned(),
            });
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(n) => parts.push(n.as_bytes()),
                Component::ParentDir => {
                    parts.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        let mut prefixes = Vec::with_capacity(parts.len());
        let mut names = Vec::with_capacity(parts.len());
        let mut acc: Vec<u8> = Vec::new();
        let mut display = PathBuf::from("/");
        for part in parts {
            if !acc.is_empty() {
                acc.push(b'/');
            }
            acc.extend_from_slice(part);
            display.push(std::ffi::OsStr::from_bytes(part));
            prefixes.push(cstring(&acc, path)?);
            names.push(cstring(part, path)?);
        }
        Ok(InRootPath {
            display,
            prefixes,
            names,
        })
    }

    /// Whether this is the root itself.
    pub fn is_root(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// Opens the path (`O_PATH`, following symlinks inside the root only), creating what is
    /// missing as asked. Runs in the child: no allocation.
    pub fn open<'s, S: Sys>(
        &self,
        sys: &'s S,
        root: i32,
        create: Create,
    ) -> Result<Fd<'s, S>, Errno> {
        let mut current = Fd::new(sys, sys.open_in_root(root, c".", libc::O_PATH)?);
        let last = self.prefixes.len().saturating_sub(1);
        for (i, (prefix, name)) in self.prefixes.iter().zip(&self.names).enumerate() {
            match sys.open_in_root(root, prefix, libc::O_PATH) {
                Ok(fd) => current = Fd::new(sys, fd),
                Err(libc::ENOENT) if create != Create::Nothing => {
                    if i == last && create == Create::File {
                        let fd = sys.openat(
                            current.raw(),
                            name,
                            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                            0o644,
                        );
                        match fd {
                            Ok(fd) => sys.close(fd),
                            Err(libc::EEXIST) => {}
                            Err(e) => return Err(e),
                        }
                    } else {
                        match sys.mkdirat(current.raw(), name, 0o755) {
                            Ok(()) | Err(libc::EEXIST) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    current = Fd::new(sys, sys.open_in_root(root, prefix, libc::O_PATH)?);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[CString]) -> Vec<&str> {
        v.iter().map(|c| c.to_str().unwrap()).collect()
    }

    #[test]
    fn cleans_lexically() {
        let p = InRootPath::new(Path::new("/a/./b/../../../c//d/")).unwrap();
        assert_eq!(p.display, Path::new("/c/d"));
        assert_eq!(strs(&p.prefixes), ["c", "c/d"]);
        assert_eq!(strs(&p.names), ["c", "d"]);
        assert!(InRootPath::new(Path::new("/")).unwrap().is_root());
        assert!(matches!(
            InRootPath::new(Path::new("rel")),
            Err(InRootError::Relative { .. })
        ));
    }
}
