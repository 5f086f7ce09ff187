//! The container's root filesystem: an existing directory bind-mounted onto itself, or an
//! overlay assembled from barque's annotations, then `pivot_root` into it.
//!
//! The overlay is built with the new mount API (`fsopen`/`fsconfig`/`fsmount`/`move_mount`),
//! one `lowerdir+` parameter per layer, so a long lower list never overflows the one-page
//! option string of `mount(2)` (kernels without `lowerdir+` get the joined string instead).
//!
//! A container whose writable layer is thrown away when it stops (`--rm`) gets a `volatile`
//! overlay: its unmount then skips the sync of the whole upper filesystem (about 1 ms on an
//! idle disk, far more while a pull is writing), which a deleted upper never needs.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::failure::{Fail, FailAt, Step};
use crate::sys::{Fd, Sys, MOUNT_ATTR_RDONLY};

pub const ANNOTATION_LOWER: &str = "org.barque.overlay.lower";
pub const ANNOTATION_UPPER: &str = "org.barque.overlay.upper";
pub const ANNOTATION_WORK: &str = "org.barque.overlay.work";
/// "true": mount the overlay `volatile` (its upper is discarded with the container).
pub const ANNOTATION_VOLATILE: &str = "org.barque.overlay.volatile";

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: &'static str },
    #[error("annotation {annotation}: {reason}")]
    Annotation {
        annotation: &'static str,
        reason: &'static str,
    },
    #[error("rootPropagation {value:?} is not a propagation mode")]
    Propagation { value: String },
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RootfsError {
    pub fn path(&self) -> Option<&Path> {
        match self {
            RootfsError::Invalid { path, .. }
            | RootfsError::Create { path, .. }
            | RootfsError::Remove { path, .. } => Some(path),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootfsSource {
    /// `root.path` itself.
    Dir,
    /// Lower dirs top first; upper and work both present or both absent (read-only overlay).
    Overlay {
        lowers: Vec<CString>,
        upper: Option<(CString, CString)>,
        /// `a:b:c` for kernels without `lowerdir+`.
        joined: CString,
        /// No syncs of the upper filesystem (kernels without the option ignore it).
        volatile: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsPlan {
    /// Absolute host path of the rootfs directory (the overlay's mount point).
    pub path: PathBuf,
    path_c: CString,
    pub source: RootfsSource,
    pub readonly: bool,
    /// `MS_*` propagation for the whole tree before anything is mounted (default rslave).
    propagation: u64,
}

fn cpath(path: &Path) -> Result<CString, RootfsError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| RootfsError::Invalid {
        path: path.to_owned(),
        reason: "path contains a NUL byte",
    })
}

fn absolute(bundle: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        bundle.join(p)
    }
}

fn propagation(value: Option<&str>) -> Result<u64, RootfsError> {
    let flag = match value.unwrap_or("rslave") {
        "rslave" | "slave" => libc::MS_SLAVE,
        "rprivate" | "private" => libc::MS_PRIVATE,
        "rshared" | "shared" => libc::MS_SHARED,
        "runbindable" | "unbindable" => libc::MS_UNBINDABLE,
        other => {
            return Err(RootfsError::Propagation {
                value: other.to_owned(),
            })
        }
    };
    Ok(flag | libc::MS_REC)
}

/// Works out the rootfs from `root` and the overlay annotations; `bundle` must be absolute.
pub fn plan(spec: &Spec, bundle: &Path) -> Result<RootfsPlan, RootfsError> {
    let root = spec.root().as_ref().ok_or(RootfsError::Invalid {
        path: bundle.join("config.json"),
        reason: "no root",
    })?;
    let path = bundle.join(root.path());
    let annotations = spec.annotations().as_ref();
    let get = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    let source = match get(ANNOTATION_LOWER) {
        None => {
            if get(ANNOTATION_UPPER).is_some() || get(ANNOTATION_WORK).is_some() {
                return Err(RootfsError::Annotation {
                    annotation: ANNOTATION_UPPER,
                    reason: "set without a lower list",
                });
            }
            RootfsSource::Dir
        }
        Some(lower) => {
            let dirs: Vec<PathBuf> = lower
                .split(':')
                .filter(|s| !s.is_empty())
                .map(|s| absolute(bundle, s))
                .collect();
            if dirs.is_empty() {
                return Err(RootfsError::Annotation {
                    annotation: ANNOTATION_LOWER,
                    reason: "no lower directory",
                });
            }
            let upper = match (get(ANNOTATION_UPPER), get(ANNOTATION_WORK)) {
                (Some(u), Some(w)) => {
                    Some((cpath(&absolute(bundle, u))?, cpath(&absolute(bundle, w))?))
                }
                (None, None) => None,
                _ => {
                    return Err(RootfsError::Annotation {
                        annotation: ANNOTATION_WORK,
                        reason: "upper and work must be given together",
                    })
                }
            };
            if upper.is_none() && dirs.len() < 2 {
                return Err(RootfsError::Annotation {
                    annotation: ANNOTATION_LOWER,
                    reason: "a read-only overlay needs at least two lower directories",
                });
            }
            let mut joined = Vec::new();
            for (i, d) in dirs.iter().enumerate() {
                if i > 0 {
                    joined.push(b':');
                }
                joined.extend_from_slice(d.as_os_str().as_bytes());
            }
            RootfsSource::Overlay {
                lowers: dirs.iter().map(|d| cpath(d)).collect::<Result<_, _>>()?,
                joined: CString::new(joined).map_err(|_| RootfsError::Annotation {
                    annotation: ANNOTATION_LOWER,
                    reason: "contains a NUL byte",
                })?,
                volatile: upper.is_some() && get(ANNOTATION_VOLATILE) == Some("true"),
                upper,
            }
        }
    };
    let propagation = propagation(
        spec.linux()
            .as_ref()
            .and_then(|l| l.rootfs_propagation().as_deref()),
    )?;
    Ok(RootfsPlan {
        path_c: cpath(&path)?,
        path,
        source,
        readonly: root.readonly().unwrap_or(false),
        propagation,
    })
}

impl RootfsPlan {
    /// Parent side: the overlay's mount point is created if missing; a plain rootfs must exist.
    pub fn prepare(&self) -> Result<(), RootfsError> {
        match self.source {
            RootfsSource::Overlay {
                ref upper,
                volatile,
                ..
            } => {
                if let (Some((_, work)), true) = (upper, volatile) {
                    // A volatile overlay leaves work/work/incompat/volatile/dirty behind, and
                    // the kernel refuses to mount that work dir again (the upper may have lost
                    // writes in a crash). Its upper is discarded with the container, which a
                    // host crash removes: a restart of the same container may reuse it.
                    // (remove_dir_all does not follow symlinks.)
                    let incompat = Path::new(std::ffi::OsStr::from_bytes(work.as_bytes()))
                        .join("work/incompat");
                    match std::fs::remove_dir_all(&incompat) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(RootfsError::Remove {
                                path: incompat,
                                source: e,
                            })
                        }
                        _ => {}
                    }
                }
                std::fs::create_dir_all(&self.path).map_err(|source| RootfsError::Create {
                    path: self.path.clone(),
                    source,
                })
            }
            RootfsSource::Dir => {
                if self.path.is_dir() {
                    Ok(())
                } else {
                    Err(RootfsError::Invalid {
                        path: self.path.clone(),
                        reason: "the rootfs is not a directory",
                    })
                }
            }
        }
    }

    /// Child side: sets the tree's propagation, mounts the rootfs at its path and returns a
    /// handle on its root.
    pub fn mount<'s, S: Sys>(&self, sys: &'s S) -> Result<Fd<'s, S>, Fail> {
        sys.mount(c"/", self.propagation)
            .on(Step::RootPropagation)?;
        let mnt = match &self.source {
            RootfsSource::Dir => Fd::new(
                sys,
                sys.open_tree(libc::AT_FDCWD, &self.path_c, true)
                    .on(Step::Rootfs)?,
            ),
            RootfsSource::Overlay {
                lowers,
                upper,
                joined,
                volatile,
            } => {
                let fs = Fd::new(sys, sys.fsopen(c"overlay").on(Step::Rootfs)?);
                let mut one_by_one = true;
                for (i, lower) in lowers.iter().enumerate() {
                    match sys.fsconfig_string(fs.raw(), c"lowerdir+", lower) {
                        Ok(()) => {}
                        // Before Linux 6.8: no "lowerdir+", pass the list in one go.
                        Err(libc::EINVAL) if i == 0 => {
                            one_by_one = false;
                            break;
                        }
                        Err(e) => return Err(Fail::at(Step::Rootfs, i, e)),
                    }
                }
                if !one_by_one {
                    sys.fsconfig_string(fs.raw(), c"lowerdir", joined)
                        .on(Step::Rootfs)?;
                }
                if let Some((up, work)) = upper {
                    sys.fsconfig_string(fs.raw(), c"upperdir", up)
                        .on(Step::Rootfs)?;
                    sys.fsconfig_string(fs.raw(), c"workdir", work)
                        .on(Step::Rootfs)?;
                    // Before Linux 5.10 there is no "volatile": the mount is merely synced.
                    if *volatile {
                        let _ = sys.fsconfig_flag(fs.raw(), c"volatile");
                    }
                }
                sys.fsconfig_create(fs.raw()).on(Step::Rootfs)?;
                Fd::new(sys, sys.fsmount(fs.raw(), 0).on(Step::Rootfs)?)
            }
        };
        sys.move_mount_to_path(mnt.raw(), &self.path_c)
            .on(Step::Rootfs)?;
        Ok(mnt)
    }

    /// Child side: the root handle becomes `/`; the old root is detached.
    pub fn pivot<S: Sys>(&self, sys: &S, root: i32) -> Result<(), Fail> {
        sys.fchdir(root).on(Step::PivotRoot)?;
        sys.pivot_root_here().on(Step::PivotRoot)?;
        // The old root is now stacked on "/": keep its unmount from propagating anywhere.
        sys.mount(c".", libc::MS_SLAVE | libc::MS_REC)
            .on(Step::PivotRoot)?;
        sys.umount_detach(c".").on(Step::PivotRoot)?;
        sys.chdir(c"/").on(Step::PivotRoot)?;
        Ok(())
    }

    /// Child side, after every other mount: `root.readonly`.
    pub fn finish<S: Sys>(&self, sys: &S, root: i32) -> Result<(), Fail> {
        if self.readonly {
            sys.mount_setattr(root, false, MOUNT_ATTR_RDONLY, 0, 0)
                .on(Step::ReadonlyRoot)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn overlay_from_annotations() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "annotations": {
                ANNOTATION_LOWER: "/l/top:/l/mid:rel",
                ANNOTATION_UPPER: "/u",
                ANNOTATION_WORK: "/w",
            }
        }));
        let plan = plan(&s, Path::new("/b")).unwrap();
        assert_eq!(plan.path, Path::new("/b/rootfs"));
        let RootfsSource::Overlay {
            lowers,
            upper,
            joined,
            volatile,
        } = &plan.source
        else {
            panic!("{plan:?}")
        };
        assert_eq!(lowers.len(), 3);
        assert_eq!(joined.to_str().unwrap(), "/l/top:/l/mid:/b/rel");
        assert!(upper.is_some() && !volatile);

        let sys = FakeSys::default();
        plan.mount(&sys).unwrap();
        assert_eq!(
            sys.calls()
                .into_iter()
                .filter(|c| !c.starts_with("close"))
                .collect::<Vec<_>>(),
            [
                format!("mount(/, {:#x})", libc::MS_SLAVE | libc::MS_REC),
                "fsopen(overlay)".into(),
                "fsconfig(lowerdir+=/l/top)".into(),
                "fsconfig(lowerdir+=/l/mid)".into(),
                "fsconfig(lowerdir+=/b/rel)".into(),
                "fsconfig(upperdir=/u)".into(),
                "fsconfig(workdir=/w)".into(),
                "fsconfig_create".into(),
                "fsmount(0x0)".into(),
                "move_mount(mnt:fs:overlay -> /b/rootfs)".into(),
            ]
        );
    }

    #[test]
    fn a_discarded_upper_is_mounted_volatile() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "annotations": {
                ANNOTATION_LOWER: "/l",
                ANNOTATION_UPPER: "/u",
                ANNOTATION_WORK: "/w",
                ANNOTATION_VOLATILE: "true",
            }
        }));
        let plan = plan(&s, Path::new("/b")).unwrap();
        let sys = FakeSys::default();
        plan.mount(&sys).unwrap();
        let calls = sys.calls();
        let work = calls
            .iter()
            .position(|c| c == "fsconfig(workdir=/w)")
            .unwrap();
        assert_eq!(calls[work + 1], "fsconfig_flag(volatile)");
        assert_eq!(calls[work + 2], "fsconfig_create");
    }

    #[test]
    fn a_volatile_work_dir_is_cleared_for_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("work/incompat/volatile")).unwrap();
        // What the kernel leaves: a marker file in the volatile dir.
        std::fs::write(work.join("work/incompat/volatile/dirty"), "").unwrap();
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "annotations": {
                ANNOTATION_LOWER: "/l",
                ANNOTATION_UPPER: dir.path().join("upper").to_str().unwrap(),
                ANNOTATION_WORK: work.to_str().unwrap(),
                ANNOTATION_VOLATILE: "true",
            }
        }));
        plan(&s, dir.path()).unwrap().prepare().unwrap();
        assert!(!work.join("work/incompat").exists());
        assert!(work.join("work").is_dir() && dir.path().join("rootfs").is_dir());
    }

    #[test]
    fn overlay_falls_back_to_the_joined_list() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "/r"},
            "annotations": {ANNOTATION_LOWER: "/a:/b"}
        }));
        let plan = plan(&s, Path::new("/b")).unwrap();
        let sys = FakeSys::default();
        sys.fail("fsconfig(lowerdir+", libc::EINVAL);
        plan.mount(&sys).unwrap();
        assert!(sys.calls().contains(&"fsconfig(lowerdir=/a:/b)".to_owned()));
    }

    #[test]
    fn refuses_half_overlays() {
        for ann in [
            serde_json::json!({ANNOTATION_UPPER: "/u"}),
            serde_json::json!({ANNOTATION_LOWER: "/a", ANNOTATION_UPPER: "/u"}),
            serde_json::json!({ANNOTATION_LOWER: "/a"}),
            serde_json::json!({ANNOTATION_LOWER: ":"}),
        ] {
            let s = spec(serde_json::json!({
                "ociVersion": "1.0.2", "root": {"path": "r"}, "annotations": ann
            }));
            assert!(plan(&s, Path::new("/b")).is_err());
        }
    }
}
