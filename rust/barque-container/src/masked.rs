//! `linux.maskedPaths` (the host's `/dev/null` bound over files, an empty read-only tmpfs over
//! directories) and `linux.readonlyPaths` (a read-only bind of the path over itself).
//!
//! Paths are opened with `RESOLVE_IN_ROOT` like every other target; a path that does not exist
//! is skipped, as runc does. The `/dev/null` used for masking is the host's, cloned with
//! `open_tree` before `pivot_root` and checked to really be the 1:3 character device, so an
//! image cannot substitute its own (CVE-2025-31133).

use std::path::{Path, PathBuf};

use crate::failure::{Fail, FailAt, Step};
use crate::inroot::{Create, InRootError, InRootPath};
use crate::sys::{
    Fd, Sys, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MaskPlan {
    pub masked: Vec<InRootPath>,
    pub readonly: Vec<InRootPath>,
}

pub fn plan<S: AsRef<str>>(masked: &[S], readonly: &[S]) -> Result<MaskPlan, InRootError> {
    let paths = |v: &[S]| -> Result<Vec<InRootPath>, InRootError> {
        v.iter()
            .map(|p| InRootPath::new(Path::new(p.as_ref())))
            .collect()
    };
    Ok(MaskPlan {
        masked: paths(masked)?,
        readonly: paths(readonly)?,
    })
}

fn open_existing<'s, S: Sys>(
    sys: &'s S,
    root: i32,
    path: &InRootPath,
    step: Step,
    index: usize,
) -> Result<Option<Fd<'s, S>>, Fail> {
    match path.open(sys, root, Create::Nothing) {
        Ok(fd) => Ok(Some(fd)),
        Err(libc::ENOENT) => Ok(None),
        Err(e) => Err(Fail::at(step, index, e)),
    }
}

impl MaskPlan {
    /// Child side, before `pivot_root` (the host's `/dev/null` is still reachable).
    pub fn apply<S: Sys>(&self, sys: &S, root: i32) -> Result<(), Fail> {
        for (i, path) in self.masked.iter().enumerate() {
            let Some(target) = open_existing(sys, root, path, Step::MaskPath, i)? else {
                continue;
            };
            let st = sys.fstat(target.raw()).at(Step::MaskPath, i)?;
            let cover = if st.kind == libc::S_IFDIR {
                let fs = Fd::new(sys, sys.fsopen(c"tmpfs").at(Step::MaskPath, i)?);
                sys.fsconfig_string(fs.raw(), c"size", c"0")
                    .at(Step::MaskPath, i)?;
                sys.fsconfig_create(fs.raw()).at(Step::MaskPath, i)?;
                let attrs =
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
                Fd::new(sys, sys.fsmount(fs.raw(), attrs).at(Step::MaskPath, i)?)
            } else {
                let null = Fd::new(
                    sys,
                    sys.open_tree(libc::AT_FDCWD, c"/dev/null", false)
                        .at(Step::MaskPath, i)?,
                );
                let st = sys.fstat(null.raw()).at(Step::MaskPath, i)?;
                if st.kind != libc::S_IFCHR || st.rdev != libc::makedev(1, 3) {
                    return Err(Fail::at(Step::MaskPath, i, libc::ENODEV));
                }
                null
            };
            sys.move_mount(cover.raw(), target.raw())
                .at(Step::MaskPath, i)?;
        }
        for (i, path) in self.readonly.iter().enumerate() {
            let Some(target) = open_existing(sys, root, path, Step::ReadonlyPath, i)? else {
                continue;
            };
            let bind = Fd::new(
                sys,
                sys.open_tree(target.raw(), c"", true)
                    .at(Step::ReadonlyPath, i)?,
            );
            sys.mount_setattr(bind.raw(), true, MOUNT_ATTR_RDONLY, 0, 0)
                .at(Step::ReadonlyPath, i)?;
            sys.move_mount(bind.raw(), target.raw())
                .at(Step::ReadonlyPath, i)?;
        }
        Ok(())
    }

    pub fn describe(list: &[InRootPath], index: usize) -> PathBuf {
        list.get(index)
            .map_or_else(PathBuf::new, |p| p.display.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    #[test]
    fn masks_files_and_dirs_and_skips_missing() {
        let plan = plan(
            &["/proc/kcore", "/proc/acpi", "/proc/nope"],
            &["/proc/sys", "/proc/missing"],
        )
        .unwrap();
        let sys = FakeSys::with_paths(&["proc", "proc/kcore*", "proc/acpi", "proc/sys"]);
        plan.apply(&sys, 3).unwrap();
        assert_eq!(
            sys.calls(),
            [
                "open_tree(/dev/null, recursive=false)",
                "move_mount(tree:/dev/null -> /proc/kcore)",
                "fsopen(tmpfs)",
                "fsconfig(size=0)",
                "fsconfig_create",
                "fsmount(0xf)",
                "move_mount(mnt:fs:tmpfs -> /proc/acpi)",
                "open_tree(proc/sys, recursive=true)",
                "mount_setattr(tree:proc/sys, recursive=true, set=0x1, clear=0x0, propagation=0x0)",
                "move_mount(tree:proc/sys -> /proc/sys)",
            ]
        );
    }

    #[test]
    fn refuses_a_fake_dev_null() {
        let plan = plan(&["/f"], &[] as &[&str]).unwrap();
        let sys = FakeSys::with_paths(&["f*"]);
        sys.fail("fstat(tree:/dev/null)", libc::EIO);
        assert_eq!(
            plan.apply(&sys, 3),
            Err(Fail::at(Step::MaskPath, 0, libc::EIO))
        );
    }
}
