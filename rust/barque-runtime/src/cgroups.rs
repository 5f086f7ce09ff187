//! A container's cgroup from the spec: `linux.cgroupsPath` (default: the container id, under
//! the runtime's own cgroup, as runc's cgroupfs driver does), `linux.resources` as the
//! manager's limits, and the device rules, for barque-container's cgroup manager, which
//! creates and removes it. barque-container's init only joins the `cgroup.procs` files.
//!
//! Limits barque cannot apply are refused naming the field, never ignored.

use std::path::PathBuf;

use barque_container::cgroups::{
    self as manager, Cgroup, CgroupError, Dir, KernelFs, Layout, Limits, Setup,
};
use barque_container::device_filter::{DeviceFilterError, DeviceRule};
use oci_spec::runtime::{Linux, LinuxDeviceType, LinuxResources};

pub use barque_container::cgroups::MOUNT;

/// The v1 controllers of a container (barque-runtime has no `pause`, so no freezer).
pub const V1_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "devices"];

#[derive(Debug, thiserror::Error)]
pub enum CgroupsError {
    #[error("linux.resources.{0} is not supported by barque-runtime")]
    Unsupported(String),
    #[error("linux.resources.devices: {0}")]
    Devices(#[from] DeviceFilterError),
    #[error(transparent)]
    Manager(#[from] CgroupError),
}

fn unsupported(field: &str) -> CgroupsError {
    CgroupsError::Unsupported(field.to_owned())
}

/// The container's cgroup, checked against the spec before anything is made.
pub struct Plan {
    layout: Layout,
    dirs: Vec<Dir>,
    limits: Limits,
    devices: Vec<DeviceRule>,
}

/// The cgroup of the container `id` as its spec's `linux` section describes it.
pub fn plan(linux: &Linux, id: &str) -> Result<Plan, CgroupsError> {
    let resources = linux.resources().clone().unwrap_or_default();
    let devices: Vec<(char, i64, i64)> = linux
        .devices()
        .iter()
        .flatten()
        .map(|d| {
            let t = match d.typ() {
                LinuxDeviceType::B => 'b',
                LinuxDeviceType::P => 'p',
                _ => 'c',
            };
            (t, d.major(), d.minor())
        })
        .collect();
    let layout = Layout::detect(&KernelFs);
    let devices = device_rules(&resources, &devices)?;
    let limits = limits(&resources, layout.v2)?;
    let path = linux
        .cgroups_path()
        .clone()
        .unwrap_or_else(|| PathBuf::from(id));
    let dirs = layout.dirs(&KernelFs, &path, &V1_CONTROLLERS)?;
    Ok(Plan {
        layout,
        dirs,
        limits,
        devices,
    })
}

impl Plan {
    /// Creates the cgroup; returns its directories, which `delete` removes.
    pub fn create(&self) -> Result<Vec<PathBuf>, CgroupsError> {
        let setup = Setup {
            limits: &self.limits,
            devices: &self.devices,
            replace: false,
        };
        let cgroup = Cgroup::create(&KernelFs, &self.layout, self.dirs.clone(), setup)?;
        Ok(cgroup.dirs.into_iter().map(|d| d.path).collect())
    }
}

/// Removes the directories of a container's cgroup, waiting up to `patience` for tasks
/// still exiting.
pub fn remove(dirs: &[PathBuf], patience: std::time::Duration) -> Result<(), CgroupsError> {
    Ok(manager::remove_dirs(
        &KernelFs,
        dirs.iter().map(PathBuf::as_path),
        patience,
    )?)
}

/// The pids in the container's cgroup (for `kill --all`).
pub fn pids(dirs: &[PathBuf]) -> Vec<i32> {
    manager::pids_of(&KernelFs, dirs.iter().map(PathBuf::as_path))
}

/// The device nodes every container may use (runc's `AllowedDevices`), and mknod of any.
pub const DEFAULT_DEVICES: [&str; 11] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:8 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 1:5 rwm",
    "c 1:9 rwm",
    "c 136:* rwm",
    "c 5:2 rwm",
    "c 10:200 rwm",
];

/// The device rules of `resources` (none when it has none), then runc's defaults, then an
/// allow rule for each of `devices`, the (type, major, minor) of `linux.devices` (as runc
/// does).
pub fn device_rules(
    r: &LinuxResources,
    devices: &[(char, i64, i64)],
) -> Result<Vec<DeviceRule>, CgroupsError> {
    let Some(spec_rules) = r.devices().as_ref().filter(|d| !d.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut rules = spec_rules
        .iter()
        .map(DeviceRule::from_oci)
        .collect::<Result<Vec<_>, _>>()?;
    for rule in DEFAULT_DEVICES {
        rules.push(DeviceRule::parse(true, rule)?);
    }
    for (t, major, minor) in devices {
        rules.push(DeviceRule::parse(
            true,
            &format!("{t} {major}:{minor} rwm"),
        )?);
    }
    Ok(rules)
}

/// `resources` as the manager's limits, refusing what barque cannot apply (on cgroup v2 too:
/// `v2`).
pub fn limits(r: &LinuxResources, v2: bool) -> Result<Limits, CgroupsError> {
    if r.block_io().is_some() {
        return Err(unsupported("blockIO"));
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        return Err(unsupported("hugepageLimits"));
    }
    if r.network().is_some() {
        return Err(unsupported("network"));
    }
    if r.rdma().as_ref().is_some_and(|h| !h.is_empty()) {
        return Err(unsupported("rdma"));
    }
    if r.unified().as_ref().is_some_and(|h| !h.is_empty()) {
        return Err(unsupported("unified"));
    }
    let mut limits = Limits::default();
    if let Some(m) = r.memory() {
        if m.kernel().is_some() {
            return Err(unsupported("memory.kernel"));
        }
        if m.kernel_tcp().is_some() {
            return Err(unsupported("memory.kernelTCP"));
        }
        if m.swappiness().is_some() {
            return Err(unsupported("memory.swappiness"));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(unsupported("memory.disableOOMKiller"));
        }
        if m.use_hierarchy().is_some() || m.check_before_update().is_some() {
            return Err(unsupported("memory.useHierarchy/checkBeforeUpdate"));
        }
        // v2's swap.max is swap alone: the spec's memory + swap needs the memory limit.
        let limited = m.limit().is_some_and(|l| l >= 0);
        if v2 && m.swap().is_some_and(|s| s >= 0) && !limited {
            return Err(unsupported("memory.swap without memory.limit"));
        }
        limits.memory = m.limit();
        limits.memory_reservation = m.reservation();
        limits.memory_swap = m.swap();
    }
    if let Some(c) = r.cpu() {
        if c.cpus().as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(unsupported("cpu.cpus"));
        }
        if c.mems().as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(unsupported("cpu.mems"));
        }
        if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
            return Err(unsupported("cpu.realtimeRuntime/realtimePeriod"));
        }
        if c.idle().is_some() {
            return Err(unsupported("cpu.idle"));
        }
        if c.burst().is_some() {
            return Err(unsupported("cpu.burst"));
        }
        limits.cpu_shares = c.shares();
        limits.cpu_quota = c.quota();
        limits.cpu_period = c.period();
    }
    limits.pids = r.pids().as_ref().map(|p| p.limit());
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn files(l: &Limits, v2: bool) -> Vec<(String, String)> {
        l.writes(v2)
            .unwrap()
            .into_iter()
            .map(|w| (w.file.to_owned(), w.value))
            .collect()
    }

    #[test]
    fn v1_limits() {
        let r = resources(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 134217728},
            "pids": {"limit": 32},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        }));
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            files(&limits(&r, false).unwrap(), false),
            pairs(&[
                ("memory.limit_in_bytes", "67108864"),
                ("memory.memsw.limit_in_bytes", "134217728"),
                ("cpu.shares", "512"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
                ("pids.max", "32"),
            ])
        );
    }

    #[test]
    fn v2_limits() {
        let r = resources(serde_json::json!({
            "memory": {"limit": 100, "swap": 300},
            "pids": {"limit": 0},
            "cpu": {"shares": 1024, "quota": 20000},
        }));
        let w = files(&limits(&r, true).unwrap(), true);
        for (file, value) in [
            ("memory.max", "100"),
            ("memory.swap.max", "200"),
            ("cpu.weight", "39"),
            ("cpu.max", "20000 100000"),
            ("pids.max", "max"),
        ] {
            assert!(w.contains(&(file.into(), value.into())), "{file} {w:?}");
        }
        let swap_alone = resources(serde_json::json!({"memory": {"swap": 300}}));
        let err = limits(&swap_alone, true).unwrap_err().to_string();
        assert!(err.contains("memory.swap without memory.limit"), "{err}");
        assert!(limits(&swap_alone, false).is_ok());
    }

    #[test]
    fn device_rules_then_runc_defaults_then_spec_devices() {
        let r = resources(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 4, "access": "r"}]
        }));
        let rules = device_rules(&r, &[('c', 10, 229)]).unwrap();
        assert_eq!((rules[0].allow, rules[0].v1_line()), (false, "a".into()));
        assert_eq!(
            (rules[1].allow, rules[1].v1_line()),
            (true, "c 4:* r".into())
        );
        assert_eq!(rules[2].v1_line(), "c *:* m");
        assert_eq!(rules.last().unwrap().v1_line(), "c 10:229 rwm");
        assert_eq!(rules.len(), 2 + DEFAULT_DEVICES.len() + 1);
        assert!(
            device_rules(&resources(serde_json::json!({})), &[('c', 1, 3)])
                .unwrap()
                .is_empty()
        );
        let fifo = resources(serde_json::json!({"devices": [{"allow": true, "type": "p"}]}));
        let err = device_rules(&fifo, &[]).unwrap_err().to_string();
        assert!(err.starts_with("linux.resources.devices: "), "{err}");
    }

    #[test]
    fn unsupported_resources_are_named() {
        for (field, v) in [
            ("blockIO", serde_json::json!({"blockIO": {"weight": 10}})),
            ("cpu.cpus", serde_json::json!({"cpu": {"cpus": "0"}})),
            (
                "memory.swappiness",
                serde_json::json!({"memory": {"swappiness": 10}}),
            ),
            (
                "hugepageLimits",
                serde_json::json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}),
            ),
        ] {
            let err = limits(&resources(v), false).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
    }
}
