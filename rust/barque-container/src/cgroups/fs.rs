//! The file operations the cgroup manager does, behind a trait so its logic (which directory,
//! which file gets which value, v1 or v2) is unit tested without root or a cgroup mount.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::device_filter::{self, DeviceFilterError, DeviceRule, KernelBpf};

pub trait CgroupFs {
    fn read(&self, path: &Path) -> io::Result<String>;
    fn exists(&self, path: &Path) -> bool;
    /// One directory (its parent must exist); an existing one is `AlreadyExists`.
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    /// Writes each value with one `write(2)` (a cgroup file takes one value, or one device
    /// rule, per write), in order, opening each file once; on failure, the index of the
    /// write the kernel refused.
    fn write_in_order(&self, writes: &[(PathBuf, String)]) -> Result<(), (usize, io::Error)>;
    /// Attaches a cgroup v2 device program allowing what `rules` allow.
    fn attach_device_filter(
        &self,
        dir: &Path,
        rules: &[DeviceRule],
    ) -> Result<(), DeviceFilterError>;
    /// Between two polls of a cgroup that is still changing (the fake does not wait).
    fn sleep(&self, pause: Duration);
}

/// The kernel's cgroup filesystems.
pub struct KernelFs;

impl CgroupFs for KernelFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn write_in_order(&self, writes: &[(PathBuf, String)]) -> Result<(), (usize, io::Error)> {
        // A container's device rules are a dozen writes to two files: opened once each.
        let mut open: Vec<(&Path, File)> = Vec::new();
        for (i, (path, value)) in writes.iter().enumerate() {
            let at = match open.iter().position(|(p, _)| p == path) {
                Some(at) => at,
                None => {
                    // Neither created nor truncated: a control file exists or the kernel
                    // has no such knob.
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| (i, e))?;
                    open.push((path, file));
                    open.len() - 1
                }
            };
            open[at].1.write_all(value.as_bytes()).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    fn attach_device_filter(
        &self,
        dir: &Path,
        rules: &[DeviceRule],
    ) -> Result<(), DeviceFilterError> {
        device_filter::attach(&KernelBpf, dir, rules)
    }

    fn sleep(&self, pause: Duration) {
        std::thread::sleep(pause);
    }
}
