//! Freezing and thawing every process of a cgroup (`docker pause`/`unpause`): v1's freezer
//! controller (`freezer.state`), or v2's `cgroup.freeze`, whose result `cgroup.events` reports.

use std::time::{Duration, Instant};

use super::fs::CgroupFs;
use super::{Cgroup, CgroupError};

/// Between two reads of a freezer state still changing.
const POLL: Duration = Duration::from_millis(2);

impl Cgroup {
    /// Freezes (`frozen`) or thaws the cgroup, waiting up to `timeout` until the kernel
    /// reports the new state.
    pub fn freeze<F: CgroupFs>(
        &self,
        fs: &F,
        frozen: bool,
        timeout: Duration,
    ) -> Result<(), CgroupError> {
        let dir = match self.v2 {
            true => self.dirs.first().map(|d| d.path.as_path()),
            false => self.dir("freezer"),
        }
        .ok_or(CgroupError::NoFreezer)?;
        let (control, value, report) = match (self.v2, frozen) {
            (true, true) => ("cgroup.freeze", "1", "cgroup.events"),
            (true, false) => ("cgroup.freeze", "0", "cgroup.events"),
            (false, true) => ("freezer.state", "FROZEN", "freezer.state"),
            (false, false) => ("freezer.state", "THAWED", "freezer.state"),
        };
        let path = dir.join(control);
        fs.write_in_order(&[(path.clone(), value.to_owned())])
            .map_err(|(_, source)| CgroupError::Write {
                path,
                value: value.to_owned(),
                source,
            })?;
        let report = dir.join(report);
        let deadline = Instant::now() + timeout;
        loop {
            let text = fs.read(&report).map_err(CgroupError::io("read", &report))?;
            let state = match self.v2 {
                // "populated 1\nfrozen 1\n"
                true => text
                    .lines()
                    .find_map(|l| l.strip_prefix("frozen "))
                    .unwrap_or(""),
                // v1 says FREEZING until every task is frozen.
                false => text.as_str(),
            };
            if state.trim() == value {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CgroupError::FreezeTimeout(dir.to_owned()));
            }
            fs.sleep(POLL);
        }
    }
}
