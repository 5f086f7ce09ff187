//! Creating a container's cgroups from `linux.cgroupsPath` and `linux.resources`, and removing
//! them on `delete`. barque-container's init only joins the `cgroup.procs` files it is given.
//!
//! cgroup v1 (this host's hybrid layout): one directory per controller barque manages
//! (memory, pids, cpu, devices); a pure v2 host: one directory in the unified tree, with the
//! controllers enabled in every ancestor's `cgroup.subtree_control`. As runc's cgroupfs driver
//! does, an absolute `cgroupsPath` is under each hierarchy's root, a relative one (and the
//! default, the container id) under the runtime's own cgroup.
//!
//! Device rules go to v1's `devices.deny`/`devices.allow`; cgroup v2 has no such files, so
//! there they become a BPF device program attached to the container's directory
//! (barque-container's `device_filter`).
//!
//! Limits barque cannot apply are refused naming the field, never ignored.

use std::path::{Path, PathBuf};

use barque_container::device_filter::{self, DeviceFilterError, DeviceRule, KernelBpf};
use oci_spec::runtime::LinuxResources;

pub const MOUNT: &str = "/sys/fs/cgroup";
pub const V1_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "devices"];
const V2_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

#[derive(Debug, thiserror::Error)]
pub enum CgroupsError {
    #[error("linux.resources.{0} is not supported by barque-runtime")]
    Unsupported(String),
    #[error("linux.cgroupsPath {0:?} is invalid (\"..\" is not allowed)")]
    InvalidPath(PathBuf),
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("linux.resources.devices: {0}")]
    Devices(#[from] DeviceFilterError),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupsError {
    let path = path.to_owned();
    move |source| CgroupsError::Io { op, path, source }
}

/// The host's cgroup layout and this process's place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub mount: PathBuf,
    pub v2: bool,
    /// controller ("" for the unified hierarchy) -> this process's cgroup in it.
    pub own: Vec<(String, String)>,
}

impl Layout {
    pub fn detect() -> Result<Layout, CgroupsError> {
        let mount = PathBuf::from(MOUNT);
        let v2 = mount.join("cgroup.controllers").exists();
        let path = Path::new("/proc/self/cgroup");
        let text = std::fs::read_to_string(path).map_err(io("read", path))?;
        Ok(Layout {
            mount,
            v2,
            own: parse_proc_cgroup(&text),
        })
    }

    fn own_path(&self, controller: &str) -> &str {
        let key = if self.v2 { "" } else { controller };
        self.own
            .iter()
            .find(|(c, _)| c.split(',').any(|c| c == key) || c == key)
            .map_or("/", |(_, p)| p.as_str())
    }

    /// (controller, directory) of the container's cgroups.
    pub fn dirs(
        &self,
        cgroups_path: Option<&Path>,
        id: &str,
    ) -> Result<Vec<(String, PathBuf)>, CgroupsError> {
        let wanted = cgroups_path.unwrap_or(Path::new(id));
        if wanted
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(CgroupsError::InvalidPath(wanted.to_owned()));
        }
        let under = |base: PathBuf, controller: &str| -> PathBuf {
            let rel = wanted.strip_prefix("/").unwrap_or(wanted);
            if wanted.is_absolute() {
                base.join(rel)
            } else {
                let own = self.own_path(controller).trim_start_matches('/');
                base.join(own).join(rel)
            }
        };
        if self.v2 {
            return Ok(vec![("unified".into(), under(self.mount.clone(), ""))]);
        }
        Ok(V1_CONTROLLERS
            .iter()
            .filter(|c| self.mount.join(c).is_dir())
            .map(|c| (c.to_string(), under(self.mount.join(c), c)))
            .collect())
    }
}

/// `/proc/self/cgroup` lines `id:controllers:path` as (controllers, path).
pub fn parse_proc_cgroup(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _ = it.next()?;
            Some((it.next()?.to_owned(), it.next()?.to_owned()))
        })
        .collect()
}

/// One file write: (controller, file, value).
pub type Write = (&'static str, &'static str, String);

fn unsupported(field: &str) -> CgroupsError {
    CgroupsError::Unsupported(field.to_owned())
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

/// The writes that apply `resources` and `device_rules` (on v1: on v2 those are a program,
/// see [`create`]).
pub fn writes(
    r: &LinuxResources,
    device_rules: &[DeviceRule],
    v2: bool,
) -> Result<Vec<Write>, CgroupsError> {
    let mut out: Vec<Write> = Vec::new();
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
        let v = |n: i64| {
            if n < 0 {
                "max".to_owned()
            } else {
                n.to_string()
            }
        };
        if v2 {
            if let Some(l) = m.limit() {
                out.push(("memory", "memory.max", v(l)));
            }
            if let Some(l) = m.reservation() {
                out.push(("memory", "memory.low", v(l)));
            }
            if let Some(s) = m.swap() {
                // v1's memsw is memory + swap; v2's swap.max is swap alone.
                let swap = match (s, m.limit()) {
                    (s, _) if s < 0 => "max".to_owned(),
                    (s, Some(l)) if l >= 0 => (s - l).max(0).to_string(),
                    _ => return Err(unsupported("memory.swap without memory.limit")),
                };
                out.push(("memory", "memory.swap.max", swap));
            }
        } else {
            let v1 = |n: i64| {
                if n < 0 {
                    "-1".to_owned()
                } else {
                    n.to_string()
                }
            };
            if let Some(l) = m.limit() {
                out.push(("memory", "memory.limit_in_bytes", v1(l)));
            }
            if let Some(l) = m.reservation() {
                out.push(("memory", "memory.soft_limit_in_bytes", v1(l)));
            }
            if let Some(s) = m.swap() {
                out.push(("memory", "memory.memsw.limit_in_bytes", v1(s)));
            }
        }
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
        if v2 {
            if let Some(s) = c.shares() {
                // runc's conversion of shares [2, 262144] to weight [1, 10000].
                let w = if s == 0 {
                    100
                } else {
                    1 + (s.clamp(2, 262_144) - 2) * 9999 / 262_142
                };
                out.push(("cpu", "cpu.weight", w.to_string()));
            }
            if c.quota().is_some() || c.period().is_some() {
                let quota = match c.quota() {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".into(),
                };
                let period = c.period().unwrap_or(100_000);
                out.push(("cpu", "cpu.max", format!("{quota} {period}")));
            }
        } else {
            if let Some(s) = c.shares() {
                out.push(("cpu", "cpu.shares", s.to_string()));
            }
            if let Some(p) = c.period() {
                out.push(("cpu", "cpu.cfs_period_us", p.to_string()));
            }
            if let Some(q) = c.quota() {
                out.push(("cpu", "cpu.cfs_quota_us", q.to_string()));
            }
        }
    }
    if let Some(p) = r.pids() {
        let v = if p.limit() <= 0 {
            "max".to_owned()
        } else {
            p.limit().to_string()
        };
        out.push(("pids", "pids.max", v));
    }
    if !v2 {
        for d in device_rules {
            let file = if d.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            out.push(("devices", file, d.v1_line()));
        }
    }
    Ok(out)
}

/// Creates the directories (enabling the v2 controllers on the way), applies `writes` (and
/// on v2 attaches the program of `device_rules`), and returns the directories created, so a
/// failure or `delete` removes exactly those.
pub fn create(
    layout: &Layout,
    dirs: &[(String, PathBuf)],
    writes: &[Write],
    device_rules: &[DeviceRule],
) -> Result<Vec<PathBuf>, CgroupsError> {
    let mut made = Vec::new();
    let result = (|| {
        for (controller, dir) in dirs {
            if layout.v2 {
                enable_controllers(&layout.mount, dir)?;
            }
            match std::fs::create_dir_all(dir) {
                Ok(()) => made.push(dir.clone()),
                Err(e) => return Err(io("create", dir)(e)),
            }
            for (c, file, value) in writes {
                if layout.v2 || *c == controller.as_str() {
                    let path = dir.join(file);
                    std::fs::write(&path, value).map_err(|source| CgroupsError::Io {
                        op: "write",
                        path: PathBuf::from(format!("{} ({value})", path.display())),
                        source,
                    })?;
                }
            }
            if layout.v2 {
                device_filter::attach(&KernelBpf, dir, device_rules)?;
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(made),
        Err(e) => {
            remove(&made, std::time::Duration::ZERO);
            Err(e)
        }
    }
}

fn enable_controllers(mount: &Path, dir: &Path) -> Result<(), CgroupsError> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(());
    };
    let mut at = mount.to_owned();
    let parts: Vec<_> = rel.components().collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        if !at.join("cgroup.subtree_control").exists() {
            break;
        }
        enable_available(&at)?;
        at.push(part);
        std::fs::create_dir_all(&at).map_err(io("create", &at))?;
    }
    if at.join("cgroup.subtree_control").exists() {
        enable_available(&at)?;
    }
    Ok(())
}

/// Enables for the children of `at` those of barque's controllers it has: a unified
/// hierarchy beside v1 ones (a hybrid host) may have none of them, and a limit needing a
/// missing one then fails naming its file.
fn enable_available(at: &Path) -> Result<(), CgroupsError> {
    let list = at.join("cgroup.controllers");
    let available = std::fs::read_to_string(&list).map_err(io("read", &list))?;
    let wanted: Vec<String> = V2_CONTROLLERS
        .iter()
        .filter(|c| available.split_whitespace().any(|a| a == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let ctl = at.join("cgroup.subtree_control");
    std::fs::write(&ctl, wanted.join(" ")).map_err(io("write", &ctl))
}

/// Removes the directories; a cgroup whose tasks are still exiting is retried until
/// `patience` has passed. Returns those left behind.
pub fn remove(dirs: &[PathBuf], patience: std::time::Duration) -> Vec<PathBuf> {
    let deadline = std::time::Instant::now() + patience;
    let mut left = Vec::new();
    for dir in dirs {
        loop {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(_) => {
                    left.push(dir.clone());
                    break;
                }
            }
        }
    }
    left
}

/// The pids in the container's cgroup (for `kill --all`).
pub fn pids(dirs: &[PathBuf]) -> Vec<i32> {
    for d in dirs {
        if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
            return text
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn v1_layout() -> Layout {
        Layout {
            mount: PathBuf::from("/nonexistent-cgroup-mount"),
            v2: false,
            own: parse_proc_cgroup("4:memory:/outer/x\n1:cpu,cpuacct:/\n0::/\n"),
        }
    }

    #[test]
    fn paths_follow_runc_cgroupfs_rules() {
        let l = v1_layout();
        assert_eq!(l.own_path("memory"), "/outer/x");
        assert_eq!(l.own_path("cpu"), "/");
        assert_eq!(l.own_path("pids"), "/");
        let v2 = Layout {
            mount: PathBuf::from("/sys/fs/cgroup"),
            v2: true,
            own: parse_proc_cgroup("0::/user.slice\n"),
        };
        assert_eq!(
            v2.dirs(None, "c1").unwrap(),
            vec![(
                "unified".into(),
                PathBuf::from("/sys/fs/cgroup/user.slice/c1")
            )]
        );
        assert_eq!(
            v2.dirs(Some(Path::new("/a/b")), "c1").unwrap()[0].1,
            PathBuf::from("/sys/fs/cgroup/a/b")
        );
        assert!(v2.dirs(Some(Path::new("/a/../b")), "c").is_err());
    }

    #[test]
    fn v1_limits() {
        let r = resources(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 134217728},
            "pids": {"limit": 32},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        }));
        let w = writes(&r, &device_rules(&r, &[]).unwrap(), false).unwrap();
        assert_eq!(
            w,
            vec![
                ("memory", "memory.limit_in_bytes", "67108864".to_owned()),
                (
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    "134217728".to_owned()
                ),
                ("cpu", "cpu.shares", "512".to_owned()),
                ("cpu", "cpu.cfs_period_us", "100000".to_owned()),
                ("cpu", "cpu.cfs_quota_us", "50000".to_owned()),
                ("pids", "pids.max", "32".to_owned()),
            ]
        );
    }

    #[test]
    fn v2_limits() {
        let r = resources(serde_json::json!({
            "memory": {"limit": 100, "swap": 300},
            "pids": {"limit": 0},
            "cpu": {"shares": 1024, "quota": 20000},
        }));
        let w = writes(&r, &device_rules(&r, &[]).unwrap(), true).unwrap();
        assert!(w.contains(&("memory", "memory.max", "100".into())));
        assert!(w.contains(&("memory", "memory.swap.max", "200".into())));
        assert!(w.contains(&("cpu", "cpu.weight", "39".into())));
        assert!(w.contains(&("cpu", "cpu.max", "20000 100000".into())));
        assert!(w.contains(&("pids", "pids.max", "max".into())));
    }

    #[test]
    fn device_rules_then_runc_defaults_then_spec_devices() {
        let r = resources(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 4, "access": "r"}]
        }));
        let rules = device_rules(&r, &[('c', 10, 229)]).unwrap();
        let w = writes(&r, &rules, false).unwrap();
        assert_eq!(w[0], ("devices", "devices.deny", "a".into()));
        assert_eq!(w[1], ("devices", "devices.allow", "c 4:* r".into()));
        assert_eq!(w[2].2, "c *:* m");
        assert_eq!(w.last().unwrap().2, "c 10:229 rwm");
        assert_eq!(w.len(), 2 + DEFAULT_DEVICES.len() + 1);
        // cgroup v2: no files, the rules become a program (attached by `create`).
        assert!(writes(&r, &rules, true).unwrap().is_empty());
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
            let err = writes(&resources(v), &[], false).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn create_writes_and_remove_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout {
            mount: tmp.path().to_owned(),
            v2: false,
            own: vec![],
        };
        let dir = tmp.path().join("pids/c1");
        let made = create(
            &layout,
            &[("pids".into(), dir.clone())],
            &[
                ("pids", "pids.max", "5".into()),
                ("memory", "memory.limit_in_bytes", "1".into()),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("pids.max")).unwrap(), "5");
        assert!(!dir.join("memory.limit_in_bytes").exists());
        std::fs::remove_file(dir.join("pids.max")).unwrap();
        assert!(remove(&made, std::time::Duration::ZERO).is_empty());
        assert!(!dir.exists());
    }
}
