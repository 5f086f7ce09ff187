//! OCI mount options (`mount(8)` vocabulary) turned into the new mount API's terms: mount
//! attributes for `fsmount`/`mount_setattr`, a bind request, a propagation change, and the
//! remaining filesystem parameters for `fsconfig`.

use std::ffi::CString;

use crate::sys::{
    MOUNT_ATTR_ATIME_MASK, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MountOptionError {
    #[error("mount option {option:?} is not supported")]
    Unsupported { option: String },
    #[error("mount option {option:?} contains a NUL byte")]
    Nul { option: String },
}

/// A filesystem parameter passed to `fsconfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsParam {
    Flag(CString),
    String(CString, CString),
}

/// Mount propagation (`MS_*` value) and whether it applies to the whole subtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Propagation {
    pub flag: u64,
    pub recursive: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// `MOUNT_ATTR_*` to set (at most one atime mode among them).
    pub attr_set: u64,
    /// `MOUNT_ATTR_*` to clear (for a bind: `rw`, `suid`, ...).
    pub attr_clear: u64,
    /// `Some(recursive)` for `bind`/`rbind`.
    pub bind: Option<bool>,
    pub propagation: Option<Propagation>,
    /// Everything else, for the filesystem itself.
    pub params: Vec<FsParam>,
}

impl MountOptions {
    fn set(&mut self, attr: u64) {
        self.attr_set |= attr;
        self.attr_clear &= !attr;
    }
    fn clear(&mut self, attr: u64) {
        self.attr_set &= !attr;
        self.attr_clear |= attr;
    }
    fn atime(&mut self, mode: u64) {
        self.attr_set = (self.attr_set & !MOUNT_ATTR_ATIME_MASK) | mode;
        self.attr_clear |= MOUNT_ATTR_ATIME_MASK;
    }

    pub fn readonly(&self) -> bool {
        self.attr_set & MOUNT_ATTR_RDONLY != 0
    }
}

fn propagation(name: &str) -> Option<Propagation> {
    let (recursive, base) = match name.strip_prefix('r') {
        Some(base @ ("private" | "shared" | "slave" | "unbindable")) => (true, base),
        _ => (false, name),
    };
    let flag = match base {
        "private" => libc::MS_PRIVATE,
        "shared" => libc::MS_SHARED,
        "slave" => libc::MS_SLAVE,
        "unbindable" => libc::MS_UNBINDABLE,
        _ => return None,
    };
    Some(Propagation { flag, recursive })
}

fn cstring(s: &str, option: &str) -> Result<CString, MountOptionError> {
    CString::new(s).map_err(|_| MountOptionError::Nul {
        option: option.to_owned(),
    })
}

/// Parses a mount's option list, later options winning as with `mount(8)`.
pub fn parse<S: AsRef<str>>(options: &[S]) -> Result<MountOptions, MountOptionError> {
    let mut out = MountOptions::default();
    for option in options {
        let option = option.as_ref();
        match option {
            "ro" => out.set(MOUNT_ATTR_RDONLY),
            "rw" => out.clear(MOUNT_ATTR_RDONLY),
            "nosuid" => out.set(MOUNT_ATTR_NOSUID),
            "suid" => out.clear(MOUNT_ATTR_NOSUID),
            "nodev" => out.set(MOUNT_ATTR_NODEV),
            "dev" => out.clear(MOUNT_ATTR_NODEV),
            "noexec" => out.set(MOUNT_ATTR_NOEXEC),
            "exec" => out.clear(MOUNT_ATTR_NOEXEC),
            "nosymfollow" => out.set(MOUNT_ATTR_NOSYMFOLLOW),
            "symfollow" => out.clear(MOUNT_ATTR_NOSYMFOLLOW),
            "nodiratime" => out.set(MOUNT_ATTR_NODIRATIME),
            "diratime" => out.clear(MOUNT_ATTR_NODIRATIME),
            "noatime" => out.atime(MOUNT_ATTR_NOATIME),
            "strictatime" => out.atime(MOUNT_ATTR_STRICTATIME),
            "relatime" => out.atime(MOUNT_ATTR_RELATIME),
            "atime" | "norelatime" | "nostrictatime" => out.atime(MOUNT_ATTR_RELATIME),
            "bind" => out.bind = Some(out.bind.unwrap_or(false)),
            "rbind" => out.bind = Some(true),
            // Defaults of a fresh mount, or meaningless here.
            "defaults" | "async" | "nomand" | "loud" | "noiversion" | "nolazytime" => {}
            "sync" | "dirsync" | "mand" | "silent" | "iversion" | "lazytime" => {
                out.params.push(FsParam::Flag(cstring(option, option)?))
            }
            "remount" | "tmpcopyup" | "idmap" | "ridmap" | "copy-symlink" => {
                return Err(MountOptionError::Unsupported {
                    option: option.to_owned(),
                })
            }
            _ => {
                if let Some(p) = propagation(option) {
                    out.propagation = Some(p);
                } else if let Some((key, value)) = option.split_once('=') {
                    out.params.push(FsParam::String(
                        cstring(key, option)?,
                        cstring(value, option)?,
                    ));
                } else {
                    out.params.push(FsParam::Flag(cstring(option, option)?));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> CString {
        CString::new(v).unwrap()
    }

    #[test]
    fn docker_dev_tmpfs() {
        let o = parse(&["nosuid", "strictatime", "mode=755", "size=65536k"]).unwrap();
        assert_eq!(o.attr_set, MOUNT_ATTR_NOSUID | MOUNT_ATTR_STRICTATIME);
        assert_eq!(o.bind, None);
        assert_eq!(
            o.params,
            [
                FsParam::String(s("mode"), s("755")),
                FsParam::String(s("size"), s("65536k"))
            ]
        );
    }

    #[test]
    fn devpts_flags_and_params() {
        let o = parse(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ])
        .unwrap();
        assert_eq!(o.attr_set, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
        assert_eq!(o.params[0], FsParam::Flag(s("newinstance")));
        assert_eq!(o.params.len(), 4);
    }

    #[test]
    fn later_options_win() {
        let o = parse(&["ro", "rw", "noatime", "relatime"]).unwrap();
        assert!(!o.readonly());
        assert_eq!(o.attr_set & MOUNT_ATTR_ATIME_MASK, MOUNT_ATTR_RELATIME);
        assert_ne!(o.attr_clear & MOUNT_ATTR_RDONLY, 0);
    }

    #[test]
    fn bind_and_propagation() {
        let o = parse(&["rbind", "ro", "rprivate"]).unwrap();
        assert_eq!(o.bind, Some(true));
        assert!(o.readonly());
        assert_eq!(
            o.propagation,
            Some(Propagation {
                flag: libc::MS_PRIVATE,
                recursive: true
            })
        );
        let o = parse(&["bind", "slave"]).unwrap();
        assert_eq!(o.bind, Some(false));
        assert!(!o.propagation.unwrap().recursive);
        // "rbind" then "bind" stays recursive.
        assert_eq!(parse(&["rbind", "bind"]).unwrap().bind, Some(true));
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        assert!(matches!(
            parse(&["tmpcopyup"]),
            Err(MountOptionError::Unsupported { .. })
        ));
        assert!(matches!(
            parse(&["remount"]),
            Err(MountOptionError::Unsupported { .. })
        ));
    }
}
