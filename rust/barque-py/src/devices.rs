//! `restrict_devices`: the device cgroup of a cgroup v2 directory (barque-container's
//! `device_filter`), for the Python service on a host without v1's devices controller.

use std::path::PathBuf;

use barque_container::device_filter::{self, DeviceRule, KernelBpf};
use pyo3::prelude::*;

use crate::errors::NativeError;

/// Attaches to the cgroup v2 directory `cgroup_dir` a device program that allows what
/// `rules` allow, each `(allow, "TYPE MAJOR:MINOR ACCESS")` in cgroup v1's syntax, applied in
/// order from allow-all (`(False, "a")` first denies everything). Nothing is attached when
/// the rules allow everything.
#[pyfunction]
pub fn restrict_devices(
    py: Python<'_>,
    cgroup_dir: PathBuf,
    rules: Vec<(bool, String)>,
) -> PyResult<()> {
    let rules = rules
        .iter()
        .map(|(allow, text)| DeviceRule::parse(*allow, text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(NativeError::from)?;
    py.detach(|| device_filter::attach(&KernelBpf, &cgroup_dir, &rules))
        .map_err(NativeError::from)?;
    Ok(())
}
