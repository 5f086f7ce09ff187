//! An in-memory [`CgroupFs`] for unit tests: files and directories, the mutating calls
//! recorded as lines of text, failures injected by the prefix of a call's text, and the
//! few kernel behaviours the manager relies on (v2's `cgroup.events` following
//! `cgroup.freeze`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fs::CgroupFs;
use crate::device_filter::{DeviceFilterError, DeviceRule};

#[derive(Default)]
pub struct FakeFs {
    files: RefCell<BTreeMap<PathBuf, String>>,
    dirs: RefCell<BTreeSet<PathBuf>>,
    calls: RefCell<Vec<String>>,
    /// (prefix of a call's text, errno, how many more times).
    failures: RefCell<Vec<(String, i32, usize)>>,
    /// Files whose content no write changes (a freezer that never gets there).
    stuck: RefCell<BTreeSet<PathBuf>>,
    pub sleeps: RefCell<usize>,
}

impl FakeFs {
    pub fn dir(&self, path: &str) {
        for a in Path::new(path).ancestors() {
            self.dirs.borrow_mut().insert(a.to_owned());
        }
    }

    pub fn file(&self, path: &str, text: &str) {
        if let Some(parent) = Path::new(path).parent() {
            self.dir(&parent.to_string_lossy());
        }
        self.files.borrow_mut().insert(path.into(), text.into());
    }

    pub fn content(&self, path: &str) -> Option<String> {
        self.files.borrow().get(Path::new(path)).cloned()
    }

    pub fn is_dir(&self, path: &str) -> bool {
        self.dirs.borrow().contains(Path::new(path))
    }

    /// The next `times` calls whose text starts with `prefix` fail with `errno`.
    pub fn fail(&self, prefix: &str, errno: i32, times: usize) {
        self.failures
            .borrow_mut()
            .push((prefix.into(), errno, times));
    }

    pub fn stick(&self, path: &str) {
        self.stuck.borrow_mut().insert(path.into());
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn call(&self, text: String) -> io::Result<()> {
        let mut failures = self.failures.borrow_mut();
        let failure = failures
            .iter_mut()
            .find(|(prefix, _, times)| *times > 0 && text.starts_with(prefix.as_str()));
        let result = match failure {
            Some((_, errno, times)) => {
                *times -= 1;
                Err(io::Error::from_raw_os_error(*errno))
            }
            None => Ok(()),
        };
        self.calls.borrow_mut().push(text);
        result
    }

    fn missing() -> io::Error {
        io::Error::from_raw_os_error(libc::ENOENT)
    }
}

impl CgroupFs for FakeFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files
            .borrow()
            .get(path)
            .cloned()
            .ok_or_else(FakeFs::missing)
    }

    fn exists(&self, path: &Path) -> bool {
        self.files.borrow().contains_key(path) || self.dirs.borrow().contains(path)
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        self.call(format!("mkdir {}", path.display()))?;
        if self.dirs.borrow().contains(path) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        match path.parent() {
            Some(parent) if self.dirs.borrow().contains(parent) => {}
            _ => return Err(FakeFs::missing()),
        }
        self.dirs.borrow_mut().insert(path.to_owned());
        Ok(())
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        self.call(format!("rmdir {}", path.display()))?;
        if !self.dirs.borrow_mut().remove(path) {
            return Err(FakeFs::missing());
        }
        self.files.borrow_mut().retain(|f, _| !f.starts_with(path));
        Ok(())
    }

    fn write_in_order(&self, writes: &[(PathBuf, String)]) -> Result<(), (usize, io::Error)> {
        for (i, (path, value)) in writes.iter().enumerate() {
            self.call(format!("write {} {value}", path.display()))
                .map_err(|e| (i, e))?;
            match path.parent() {
                Some(parent) if self.dirs.borrow().contains(parent) => {}
                _ => return Err((i, FakeFs::missing())),
            }
            if self.stuck.borrow().contains(path) {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "cgroup.freeze") {
                let events = path.with_file_name("cgroup.events");
                let text = format!("populated 1\nfrozen {value}\n");
                self.files.borrow_mut().insert(events, text);
            }
            self.files.borrow_mut().insert(path.clone(), value.clone());
        }
        Ok(())
    }

    fn attach_device_filter(
        &self,
        dir: &Path,
        rules: &[DeviceRule],
    ) -> Result<(), DeviceFilterError> {
        self.call(format!("attach {} {} rules", dir.display(), rules.len()))
            .map_err(|source| DeviceFilterError::Attach {
                path: dir.to_owned(),
                source,
            })
    }

    fn sleep(&self, _pause: Duration) {
        *self.sleeps.borrow_mut() += 1;
    }
}
