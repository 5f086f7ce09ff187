//! Whether the forkserver's directory can be trusted: whoever can put a socket where the front
//! end connects can run commands as its user.
//!
//! The rule is ssh's StrictModes one, applied along the whole way to the directory: the
//! directory itself is this user's, a directory, and closed to group and others (mode 0700);
//! every directory on the way to it (symbolic links followed) is root's or this user's and not
//! writable by group or others, so nobody else can rename or replace an entry between this
//! check and the connect. A world-writable directory with the sticky bit (`/tmp`) is accepted
//! on the way: there only an entry's owner may rename or remove it. `/run/barque` itself may
//! thus be root's 0755 (it holds container state too).

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Linux's own limit on symbolic links followed in one lookup.
const MAX_LINKS: u32 = 40;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path} is not a directory of this user's with mode 0700")]
    NotPrivate { path: PathBuf },
    #[error(
        "{path} (owner uid {uid}, mode {mode:04o}) can be changed by other users, so nothing \
         below it can be trusted"
    )]
    OpenAncestor { path: PathBuf, uid: u32, mode: u32 },
    #[error("{path} is a symbolic link of another user's (uid {uid})")]
    ForeignLink { path: PathBuf, uid: u32 },
    #[error("{path}: too many levels of symbolic links")]
    TooManyLinks { path: PathBuf },
    #[error("{path}: {source}")]
    Lookup { path: PathBuf, source: io::Error },
}

/// What `lstat` says of one path, as far as trust goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub uid: u32,
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
}

impl Entry {
    fn is_dir(self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    fn is_symlink(self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }
}

/// The file system as the walk sees it (the real one, or a fake in tests).
pub trait Lookup {
    fn lstat(&self, path: &Path) -> io::Result<Entry>;
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
}

/// The host's file system.
pub struct Host;

impl Lookup for Host {
    fn lstat(&self, path: &Path) -> io::Result<Entry> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(Entry {
            uid: meta.uid(),
            mode: meta.mode(),
        })
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(path)
    }
}

/// The final directory may hold the socket: ours, and closed to everyone else.
pub fn private_leaf(entry: Entry, euid: u32) -> bool {
    entry.is_dir() && entry.uid == euid && entry.mode & 0o077 == 0
}

/// A directory on the way: nobody but root and us may change its entries.
pub fn safe_ancestor(entry: Entry, euid: u32) -> bool {
    let owner_ok = entry.uid == 0 || entry.uid == euid;
    let closed = entry.mode & 0o022 == 0;
    let sticky = entry.mode & libc::S_ISVTX != 0;
    entry.is_dir() && owner_ok && (closed || sticky)
}

/// Check `dir` (absolute, or relative to `cwd`) by resolving it one component at a time, so
/// every directory and symbolic link the kernel will go through is the one checked.
pub fn check(lookup: &impl Lookup, dir: &Path, cwd: &Path, euid: u32) -> Result<(), TrustError> {
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        cwd.join(dir)
    };
    // Components still to resolve, the next one last.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, &absolute);
    // The real directory reached so far (no symbolic link in it): checked already.
    let mut current = PathBuf::from("/");
    check_ancestor(lookup, &current, euid)?;
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            current.pop();
            continue;
        }
        let next = current.join(&name);
        let entry = lookup.lstat(&next).map_err(|source| TrustError::Lookup {
            path: next.clone(),
            source,
        })?;
        if entry.is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(TrustError::TooManyLinks { path: absolute });
            }
            // Its directory is checked, but in a sticky one its owner may still replace it.
            if entry.uid != 0 && entry.uid != euid {
                return Err(TrustError::ForeignLink {
                    path: next,
                    uid: entry.uid,
                });
            }
            let target = lookup
                .read_link(&next)
                .map_err(|source| TrustError::Lookup {
                    path: next.clone(),
                    source,
                })?;
            if target.is_absolute() {
                current = PathBuf::from("/");
            }
            push_components(&mut pending, &target);
            continue;
        }
        if pending.is_empty() {
            if !private_leaf(entry, euid) {
                return Err(TrustError::NotPrivate { path: next });
            }
        } else if !safe_ancestor(entry, euid) {
            return Err(open_ancestor(next, entry));
        }
        current = next;
    }
    Ok(())
}

fn check_ancestor(lookup: &impl Lookup, path: &Path, euid: u32) -> Result<(), TrustError> {
    let entry = lookup.lstat(path).map_err(|source| TrustError::Lookup {
        path: path.to_path_buf(),
        source,
    })?;
    if safe_ancestor(entry, euid) {
        Ok(())
    } else {
        Err(open_ancestor(path.to_path_buf(), entry))
    }
}

fn open_ancestor(path: PathBuf, entry: Entry) -> TrustError {
    TrustError::OpenAncestor {
        path,
        uid: entry.uid,
        mode: entry.mode & 0o7777,
    }
}

/// Push `path`'s names onto `pending` so that its first name is popped first (`/` and `.`
/// dropped: the caller resets to `/` for an absolute path, and `.` changes nothing).
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    pending.extend(names.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const DIR: u32 = libc::S_IFDIR;
    const LINK: u32 = libc::S_IFLNK;
    const ME: u32 = 1000;

    /// Paths to (entry, link target).
    #[derive(Default)]
    struct Fake(HashMap<PathBuf, (Entry, Option<PathBuf>)>);

    impl Fake {
        fn dir(mut self, path: &str, uid: u32, mode: u32) -> Self {
            let entry = Entry {
                uid,
                mode: DIR | mode,
            };
            self.0.insert(PathBuf::from(path), (entry, None));
            self
        }

        fn link(mut self, path: &str, uid: u32, target: &str) -> Self {
            let entry = Entry {
                uid,
                mode: LINK | 0o777,
            };
            self.0
                .insert(PathBuf::from(path), (entry, Some(PathBuf::from(target))));
            self
        }
    }

    impl Lookup for Fake {
        fn lstat(&self, path: &Path) -> io::Result<Entry> {
            self.0
                .get(path)
                .map(|(e, _)| *e)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
        }

        fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
            self.0
                .get(path)
                .and_then(|(_, t)| t.clone())
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
        }
    }

    fn run_dirs() -> Fake {
        Fake::default()
            .dir("/", 0, 0o755)
            .dir("/run", 0, 0o755)
            .dir("/run/barque", 0, 0o755)
            .dir("/run/barque/forkserver", ME, 0o700)
            .dir("/run/barque/forkserver/abc", ME, 0o700)
    }

    fn check_as_me(fake: &Fake, dir: &str) -> Result<(), TrustError> {
        check(fake, Path::new(dir), Path::new("/"), ME)
    }

    #[test]
    fn a_private_leaf_under_roots_0755_state_directory_is_trusted() {
        check_as_me(&run_dirs(), "/run/barque/forkserver/abc").unwrap();
    }

    #[test]
    fn a_leaf_others_may_enter_is_refused() {
        let fake = run_dirs().dir("/run/barque/forkserver/abc", ME, 0o750);
        let err = check_as_me(&fake, "/run/barque/forkserver/abc").unwrap_err();
        assert!(matches!(err, TrustError::NotPrivate { ref path }
            if path == Path::new("/run/barque/forkserver/abc")));
        assert!(err.to_string().contains("mode 0700"));
    }

    #[test]
    fn a_leaf_of_another_user_is_refused() {
        let fake = run_dirs().dir("/run/barque/forkserver/abc", 0, 0o700);
        assert!(matches!(
            check_as_me(&fake, "/run/barque/forkserver/abc"),
            Err(TrustError::NotPrivate { .. })
        ));
    }

    #[test]
    fn an_ancestor_others_may_write_is_refused_and_named() {
        let fake = run_dirs().dir("/run/barque", 0, 0o777);
        let err = check_as_me(&fake, "/run/barque/forkserver/abc").unwrap_err();
        assert!(
            matches!(err, TrustError::OpenAncestor { ref path, mode: 0o777, .. }
            if path == Path::new("/run/barque"))
        );
    }

    #[test]
    fn an_ancestor_of_another_user_is_refused() {
        let fake = run_dirs().dir("/run/barque", 1001, 0o755);
        assert!(matches!(
            check_as_me(&fake, "/run/barque/forkserver/abc"),
            Err(TrustError::OpenAncestor { uid: 1001, .. })
        ));
    }

    #[test]
    fn a_sticky_world_writable_ancestor_is_accepted() {
        let fake = Fake::default()
            .dir("/", 0, 0o755)
            .dir("/tmp", 0, 0o1777)
            .dir("/tmp/fs", ME, 0o700);
        check_as_me(&fake, "/tmp/fs").unwrap();
    }

    #[test]
    fn links_are_followed_and_their_targets_checked() {
        let fake = run_dirs()
            .link("/var", 0, "/srv/var")
            .dir("/srv", 1001, 0o755)
            .dir("/srv/var", 0, 0o755)
            .link("/srv/var/run", 0, "../../run");
        let err = check_as_me(&fake, "/var/run/barque/forkserver/abc").unwrap_err();
        assert!(matches!(err, TrustError::OpenAncestor { ref path, .. }
            if path == Path::new("/srv")));
        let fake = fake.dir("/srv", 0, 0o755);
        check_as_me(&fake, "/var/run/barque/forkserver/abc").unwrap();
    }

    #[test]
    fn a_link_of_another_user_is_refused() {
        let fake = Fake::default()
            .dir("/", 0, 0o755)
            .dir("/tmp", 0, 0o1777)
            .link("/tmp/fs", 1001, "/tmp/real")
            .dir("/tmp/real", ME, 0o700);
        assert!(matches!(
            check_as_me(&fake, "/tmp/fs"),
            Err(TrustError::ForeignLink { uid: 1001, .. })
        ));
    }

    #[test]
    fn a_link_loop_ends() {
        let fake = Fake::default()
            .dir("/", 0, 0o755)
            .link("/a", 0, "/b")
            .link("/b", 0, "/a");
        assert!(matches!(
            check_as_me(&fake, "/a"),
            Err(TrustError::TooManyLinks { .. })
        ));
    }

    #[test]
    fn a_relative_directory_is_taken_from_the_working_directory() {
        let fake = run_dirs();
        check(
            &fake,
            Path::new("forkserver/abc"),
            Path::new("/run/barque"),
            ME,
        )
        .unwrap();
        let err = check(&fake, Path::new("abc"), Path::new("/run"), ME).unwrap_err();
        assert!(matches!(err, TrustError::Lookup { ref path, .. }
            if path == Path::new("/run/abc")));
    }
}
