//! Device nodes in a fresh `/dev`: Docker's defaults (null, zero, full, random, urandom, tty)
//! plus the spec's `linux.devices`, and the usual symlinks (`/dev/fd`, `/dev/ptmx`, ...).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::failure::{Fail, FailAt, Step};
use crate::inroot::{Create, InRootError, InRootPath};
use crate::sys::Sys;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device {}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: &'static str },
    #[error(transparent)]
    Path(#[from] InRootError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlan {
    pub path: InRootPath,
    parent: InRootPath,
    name: CString,
    /// File type bits | permissions.
    mode: u32,
    dev: u64,
    owner: Option<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DevicesPlan {
    pub devices: Vec<DevicePlan>,
    dev_dir: Option<InRootPath>,
}

const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

const SYMLINKS: [(&CStr, &CStr); 6] = [
    (c"fd", c"/proc/self/fd"),
    (c"stdin", c"/proc/self/fd/0"),
    (c"stdout", c"/proc/self/fd/1"),
    (c"stderr", c"/proc/self/fd/2"),
    (c"ptmx", c"pts/ptmx"),
    (c"core", c"/proc/kcore"),
];

use std::ffi::CStr;

fn device(
    path: &Path,
    kind: u32,
    major: u32,
    minor: u32,
    perm: u32,
    owner: Option<(u32, u32)>,
) -> Result<DevicePlan, DeviceError> {
    let invalid = |reason| DeviceError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let full = InRootPath::new(path)?;
    let name = full
        .display
        .file_name()
        .ok_or_else(|| invalid("no file name"))?;
    let parent = InRootPath::new(full.display.parent().ok_or_else(|| invalid("no parent"))?)?;
    if !full.display.starts_with("/dev") {
        return Err(invalid("devices must live under /dev"));
    }
    Ok(DevicePlan {
        name: CString::new(name.as_bytes()).map_err(|_| invalid("NUL byte"))?,
        path: full,
        parent,
        mode: kind | (perm & 0o7777),
        dev: libc::makedev(major, minor),
        owner,
    })
}

/// Plans the nodes; nothing is created unless barque mounts a fresh `/dev` (`populate`).
pub fn plan(spec_devices: &[LinuxDevice], populate: bool) -> Result<DevicesPlan, DeviceError> {
    if !populate {
        return Ok(DevicesPlan::default());
    }
    let mut devices = Vec::new();
    for (path, major, minor) in DEFAULT_DEVICES {
        devices.push(device(
            Path::new(path),
            libc::S_IFCHR,
            major,
            minor,
            0o666,
            None,
        )?);
    }
    for d in spec_devices {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(DeviceError::Invalid {
                    path: d.path().clone(),
                    reason: "type \"a\" is only for cgroup rules",
                })
            }
        };
        let (major, minor) = (
            u32::try_from(d.major()).unwrap_or(u32::MAX),
            u32::try_from(d.minor()).unwrap_or(u32::MAX),
        );
        let owner = match (d.uid(), d.gid()) {
            (None, None) => None,
            (u, g) => Some((u.unwrap_or(0), g.unwrap_or(0))),
        };
        let plan = device(
            d.path(),
            kind,
            major,
            minor,
            d.file_mode().unwrap_or(0o666),
            owner,
        )?;
        devices.retain(|p: &DevicePlan| p.path != plan.path);
        devices.push(plan);
    }
    Ok(DevicesPlan {
        devices,
        dev_dir: Some(InRootPath::new(Path::new("/dev"))?),
    })
}

impl DevicesPlan {
    /// Child side (umask 0): `mknod` each node, then the symlinks.
    pub fn apply<S: Sys>(&self, sys: &S, root: i32) -> Result<(), Fail> {
        let Some(dev_dir) = &self.dev_dir else {
            return Ok(());
        };
        for (i, d) in self.devices.iter().enumerate() {
            let parent = d.parent.open(sys, root, Create::Dirs).at(Step::Device, i)?;
            match sys.mknodat(parent.raw(), &d.name, d.mode, d.dev) {
                Ok(()) | Err(libc::EEXIST) => {}
                Err(e) => return Err(Fail::at(Step::Device, i, e)),
            }
            if let Some((uid, gid)) = d.owner {
                sys.chownat(parent.raw(), &d.name, uid, gid)
                    .at(Step::Device, i)?;
            }
        }
        let dev = dev_dir
            .open(sys, root, Create::Nothing)
            .at(Step::Device, self.devices.len())?;
        for (name, target) in SYMLINKS {
            match sys.symlinkat(target, dev.raw(), name) {
                Ok(()) | Err(libc::EEXIST) => {}
                Err(e) => return Err(Fail::at(Step::Device, self.devices.len(), e)),
            }
        }
        Ok(())
    }

    /// The name of item `index` in the child's failure report.
    pub fn describe(&self, index: usize) -> PathBuf {
        self.devices
            .get(index)
            .map_or_else(|| PathBuf::from("/dev"), |d| d.path.display.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    #[test]
    fn defaults_and_spec_devices() {
        let spec: Vec<LinuxDevice> = serde_json::from_value(serde_json::json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 384}
        ]))
        .unwrap();
        let plan = plan(&spec, true).unwrap();
        assert_eq!(plan.devices.len(), 7);
        let sys = FakeSys::with_paths(&["dev"]);
        plan.apply(&sys, 3).unwrap();
        let calls = sys.calls();
        assert!(calls.contains(&format!(
            "mknodat(dev/zero, 20666, {:#x})",
            libc::makedev(1, 5)
        )));
        assert!(calls.contains(&format!(
            "mknodat(dev/null, 20600, {:#x})",
            libc::makedev(1, 3)
        )));
        assert!(calls.contains(&"chownat(dev/fuse, 0, 0)".to_owned()));
        assert!(calls.contains(&"symlinkat(dev/ptmx -> pts/ptmx)".to_owned()));
        assert!(plan
            .devices
            .iter()
            .all(|d| d.path.display.starts_with("/dev")));
    }

    #[test]
    fn nothing_without_a_fresh_dev() {
        assert_eq!(plan(&[], false).unwrap(), DevicesPlan::default());
    }

    #[test]
    fn refuses_devices_outside_dev() {
        let spec: Vec<LinuxDevice> = serde_json::from_value(serde_json::json!([
            {"path": "/etc/../evil", "type": "c", "major": 1, "minor": 1}
        ]))
        .unwrap();
        assert!(plan(&spec, true).is_err());
    }
}
