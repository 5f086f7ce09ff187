//! The spec's `mounts`, completed with Docker's defaults for whatever it leaves out (`/proc`,
//! `/dev`, `/dev/pts`, `/dev/shm`, `/dev/mqueue`, `/sys` read-only), mounted inside the rootfs.
//!
//! Filesystems are created with `fsopen`/`fsconfig`/`fsmount` and binds with `open_tree`; each
//! detached mount is attached with `move_mount` onto a handle of its target opened with
//! `RESOLVE_IN_ROOT`, so a symlink in the image can never send a mount outside the rootfs.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::failure::{Fail, FailAt, Step};
use crate::inroot::{Create, InRootError, InRootPath};
use crate::mount_options::{self, FsParam, MountOptionError, MountOptions};
use crate::sys::{Fd, Sys};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount on {}: {source}", destination.display())]
    Option {
        destination: PathBuf,
        #[source]
        source: MountOptionError,
    },
    #[error(transparent)]
    Path(#[from] InRootError),
    #[error("mount on {}: {reason}", destination.display())]
    Invalid {
        destination: PathBuf,
        reason: &'static str,
    },
    #[error("bind mount source {}: {source}", path.display())]
    Source {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Fs {
        fstype: CString,
        source: Option<CString>,
    },
    Bind {
        source: CString,
        recursive: bool,
        file: bool,
    },
    /// cgroup filesystems: cgroups are not managed yet, the directory stays as sysfs has it.
    Skip,
}

/// One mount, ready for the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    pub destination: InRootPath,
    /// The filesystem type or "bind", and the source, for messages.
    pub describe: String,
    kind: Kind,
    options: MountOptions,
}

impl MountPlan {
    /// Whether this is a fresh filesystem (not a bind) on `/dev`: barque then populates it.
    pub fn is_dev_tmpfs(&self) -> bool {
        matches!(self.kind, Kind::Fs { .. }) && self.destination.display == Path::new("/dev")
    }
}

/// Docker's mounts, in order: (destination, type, source, options).
const DEFAULTS: [(&str, &str, &str, &[&str]); 6] = [
    ("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
    (
        "/dev",
        "tmpfs",
        "tmpfs",
        &["nosuid", "strictatime", "mode=755", "size=65536k"],
    ),
    (
        "/dev/pts",
        "devpts",
        "devpts",
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ],
    ),
    (
        "/sys",
        "sysfs",
        "sysfs",
        &["nosuid", "noexec", "nodev", "ro"],
    ),
    (
        "/dev/mqueue",
        "mqueue",
        "mqueue",
        &["nosuid", "noexec", "nodev"],
    ),
    (
        "/dev/shm",
        "tmpfs",
        "shm",
        &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    ),
];

/// A mount as the spec gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecMount {
    pub destination: PathBuf,
    pub typ: Option<String>,
    pub source: Option<PathBuf>,
    pub options: Vec<String>,
}

/// The spec's mounts plus each missing default, inserted after the last mount that is its
/// parent (so `/dev/pts` lands after the spec's `/dev`) or first when there is none.
pub fn with_defaults(spec_mounts: Vec<SpecMount>) -> Vec<SpecMount> {
    let clean = |p: &Path| InRootPath::new(p).map(|c| c.display).unwrap_or_default();
    let spec_dests: Vec<PathBuf> = spec_mounts.iter().map(|m| clean(&m.destination)).collect();
    let make = |(dest, typ, source, options): (&str, &str, &str, &[&str])| SpecMount {
        destination: PathBuf::from(dest),
        typ: Some(typ.to_owned()),
        source: Some(PathBuf::from(source)),
        options: options.iter().map(|s| s.to_string()).collect(),
    };
    let missing: Vec<_> = DEFAULTS
        .into_iter()
        .filter(|d| !spec_dests.iter().any(|p| p == Path::new(d.0)))
        .collect();
    let has_parent = |d: &str| spec_dests.iter().any(|p| Path::new(d).starts_with(p));
    let mut out = spec_mounts;
    // Children of a spec mount (e.g. /dev/pts under the spec's /dev) go right after it, in
    // the defaults' order (hence inserted in reverse).
    for d in missing.iter().rev().filter(|d| has_parent(d.0)) {
        let at = out
            .iter()
            .rposition(|m| Path::new(d.0).starts_with(clean(&m.destination)))
            .map_or(0, |i| i + 1);
        out.insert(at, make(*d));
    }
    let mut front: Vec<SpecMount> = missing
        .iter()
        .filter(|d| !has_parent(d.0))
        .map(|d| make(*d))
        .collect();
    front.extend(out);
    front
}

fn cstring(bytes: &[u8], destination: &Path) -> Result<CString, MountError> {
    CString::new(bytes).map_err(|_| MountError::Invalid {
        destination: destination.to_owned(),
        reason: "a NUL byte in the source or type",
    })
}

/// Plans every mount of `spec` (with defaults); relative bind sources are relative to `bundle`.
pub fn plan(spec: &Spec, bundle: &Path) -> Result<Vec<MountPlan>, MountError> {
    let mounts = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| SpecMount {
            destination: m.destination().clone(),
            typ: m.typ().clone(),
            source: m.source().clone(),
            options: m.options().clone().unwrap_or_default(),
        })
        .collect();
    with_defaults(mounts)
        .into_iter()
        .map(|m| plan_one(m, bundle))
        .collect()
}

fn plan_one(m: SpecMount, bundle: &Path) -> Result<MountPlan, MountError> {
    let options = mount_options::parse(&m.options).map_err(|source| MountError::Option {
        destination: m.destination.clone(),
        source,
    })?;
    let destination = InRootPath::new(&m.destination)?;
    let typ = m.typ.as_deref().unwrap_or("");
    let source_path = m.source.clone().unwrap_or_default();
    let describe = format!(
        "{} {}",
        if typ.is_empty() { "bind" } else { typ },
        source_path.display()
    );
    let kind = if typ == "bind" || options.bind.is_some() {
        let source = if source_path.is_absolute() {
            source_path
        } else {
            bundle.join(source_path)
        };
        let meta = std::fs::metadata(&source).map_err(|e| MountError::Source {
            path: source.clone(),
            source: e,
        })?;
        Kind::Bind {
            source: cstring(source.as_os_str().as_bytes(), &m.destination)?,
            recursive: options.bind.unwrap_or(false),
            file: !meta.is_dir(),
        }
    } else if typ == "cgroup" || typ == "cgroup2" {
        Kind::Skip
    } else if typ.is_empty() {
        return Err(MountError::Invalid {
            destination: m.destination,
            reason: "no filesystem type and not a bind mount",
        });
    } else {
        Kind::Fs {
            fstype: cstring(typ.as_bytes(), &m.destination)?,
            source: match &m.source {
                Some(s) => Some(cstring(s.as_os_str().as_bytes(), &m.destination)?),
                None => None,
            },
        }
    };
    Ok(MountPlan {
        destination,
        describe,
        kind,
        options,
    })
}

impl MountPlan {
    /// Child side: creates the mount detached, then attaches it at its target in the rootfs.
    pub fn apply<S: Sys>(&self, sys: &S, root: i32, index: usize) -> Result<(), Fail> {
        let o = &self.options;
        let (mnt, create) = match &self.kind {
            Kind::Skip => return Ok(()),
            Kind::Fs { fstype, source } => {
                let fs = Fd::new(sys, sys.fsopen(fstype).at(Step::Mount, index)?);
                if let Some(source) = source {
                    sys.fsconfig_string(fs.raw(), c"source", source)
                        .at(Step::Mount, index)?;
                }
                for p in &o.params {
                    match p {
                        FsParam::Flag(k) => sys.fsconfig_flag(fs.raw(), k),
                        FsParam::String(k, v) => sys.fsconfig_string(fs.raw(), k, v),
                    }
                    .at(Step::Mount, index)?;
                }
                sys.fsconfig_create(fs.raw()).at(Step::Mount, index)?;
                let mnt = sys.fsmount(fs.raw(), o.attr_set).at(Step::Mount, index)?;
                (Fd::new(sys, mnt), Create::Dirs)
            }
            Kind::Bind {
                source,
                recursive,
                file,
            } => {
                let mnt = Fd::new(
                    sys,
                    sys.open_tree(libc::AT_FDCWD, source, *recursive)
                        .at(Step::Mount, index)?,
                );
                if o.attr_set != 0 || o.attr_clear != 0 {
                    sys.mount_setattr(mnt.raw(), *recursive, o.attr_set, o.attr_clear, 0)
                        .at(Step::Mount, index)?;
                }
                (mnt, if *file { Create::File } else { Create::Dirs })
            }
        };
        let target = self
            .destination
            .open(sys, root, create)
            .at(Step::MountTarget, index)?;
        sys.move_mount(mnt.raw(), target.raw())
            .at(Step::Mount, index)?;
        if let Some(p) = o.propagation {
            sys.mount_setattr(mnt.raw(), p.recursive, 0, 0, p.flag)
                .at(Step::Mount, index)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    fn m(dest: &str, typ: &str) -> SpecMount {
        SpecMount {
            destination: dest.into(),
            typ: Some(typ.into()),
            source: Some(typ.into()),
            options: vec![],
        }
    }

    fn dests(v: &[SpecMount]) -> Vec<String> {
        v.iter()
            .map(|m| m.destination.display().to_string())
            .collect()
    }

    #[test]
    fn defaults_fill_the_gaps_in_order() {
        assert_eq!(
            dests(&with_defaults(vec![])),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/dev/mqueue",
                "/dev/shm"
            ]
        );
        let out = with_defaults(vec![
            m("/dev", "tmpfs"),
            m("/data", "tmpfs"),
            m("/proc/", "proc"),
        ]);
        assert_eq!(
            dests(&out),
            [
                "/sys",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/dev/shm",
                "/data",
                "/proc/"
            ]
        );
    }

    #[test]
    fn fs_mount_goes_through_the_new_api() {
        let plan = plan_one(
            SpecMount {
                options: vec![
                    "nosuid".into(),
                    "ro".into(),
                    "size=1k".into(),
                    "rprivate".into(),
                ],
                ..m("/run/x", "tmpfs")
            },
            Path::new("/b"),
        )
        .unwrap();
        let sys = FakeSys::with_paths(&["run"]);
        plan.apply(&sys, 3, 0).unwrap();
        assert_eq!(
            sys.calls(),
            [
                "fsopen(tmpfs)",
                "fsconfig(source=tmpfs)",
                "fsconfig(size=1k)",
                "fsconfig_create",
                "fsmount(0x3)",
                "mkdirat(run/x, 755)",
                "move_mount(mnt:fs:tmpfs -> /run/x)",
                "mount_setattr(mnt:fs:tmpfs, recursive=true, set=0x0, clear=0x0, propagation=0x40000)",
            ]
        );
    }

    #[test]
    fn bind_of_a_file_creates_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("hosts");
        std::fs::write(&src, "x").unwrap();
        let plan = plan_one(
            SpecMount {
                destination: "/etc/hosts".into(),
                typ: Some("bind".into()),
                source: Some(src.clone()),
                options: vec!["rbind".into(), "ro".into()],
            },
            Path::new("/b"),
        )
        .unwrap();
        let sys = FakeSys::with_paths(&[]);
        plan.apply(&sys, 3, 0).unwrap();
        let calls = sys.calls();
        assert_eq!(
            calls[0],
            format!("open_tree({}, recursive=true)", src.display())
        );
        assert_eq!(
            calls[1],
            format!(
                "mount_setattr(tree:{}, recursive=true, set=0x1, clear=0x0, propagation=0x0)",
                src.display()
            )
        );
        assert_eq!(calls[2], "mkdirat(etc, 755)");
        assert!(calls[3].starts_with("openat(etc/hosts, "), "{calls:?}");
    }

    #[test]
    fn missing_bind_source_is_named() {
        let err = plan_one(
            SpecMount {
                typ: Some("bind".into()),
                source: Some("/nonexistent/x".into()),
                ..m("/x", "bind")
            },
            Path::new("/b"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x"), "{err}");
    }
}
