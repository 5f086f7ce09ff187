//! Where a container's cgroup directories are: the host's cgroup layout (a pure cgroup v2
//! host, or one hierarchy per v1 controller, as `/proc/self/mountinfo` lists them) and the
//! `cgroupsPath` rules of runc's cgroupfs driver: an absolute path is under each hierarchy's
//! root, a relative one under the caller's own cgroup in that hierarchy
//! (`/proc/self/cgroup`).

use std::path::{Component, Path, PathBuf};

use super::fs::CgroupFs;
use super::CgroupError;

/// Where the cgroup filesystems are mounted.
pub const MOUNT: &str = "/sys/fs/cgroup";
/// The name of the one directory of a cgroup v2 container.
pub const UNIFIED: &str = "unified";

/// One directory of a container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    /// The hierarchy's controllers as its mount names them (`memory`, `cpu,cpuacct`), or
    /// [`UNIFIED`] on cgroup v2.
    pub controllers: String,
    pub path: PathBuf,
}

impl Dir {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.split(',').any(|c| c == controller)
    }
}

/// The host's cgroup layout, read once per process (it does not change under a running
/// barque).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub mount: PathBuf,
    pub v2: bool,
    /// On cgroup v1: each mounted hierarchy's controllers (as `cpu,cpuacct`) and its root.
    pub v1: Vec<(String, PathBuf)>,
}

impl Layout {
    /// The layout under [`MOUNT`]: cgroup v2 when the unified hierarchy is mounted there
    /// (`cgroup.controllers` at its root), else the v1 hierarchies of mountinfo (none when
    /// it cannot be read: then there is nothing to manage, as without cgroups).
    pub fn detect<F: CgroupFs>(fs: &F) -> Layout {
        let mount = PathBuf::from(MOUNT);
        let v2 = fs.exists(&mount.join("cgroup.controllers"));
        let v1 = match v2 {
            true => Vec::new(),
            false => fs
                .read(Path::new("/proc/self/mountinfo"))
                .map(|text| v1_hierarchies(&text))
                .unwrap_or_default(),
        };
        Layout { mount, v2, v1 }
    }

    /// The directories of the cgroup `cgroups_path` for the v1 `controllers` (those
    /// mounted: one directory per hierarchy, so co-mounted ones share it), or its one
    /// directory on cgroup v2.
    pub fn dirs<F: CgroupFs>(
        &self,
        fs: &F,
        cgroups_path: &Path,
        controllers: &[&str],
    ) -> Result<Vec<Dir>, CgroupError> {
        if cgroups_path
            .components()
            .any(|c| matches!(c, Component::ParentDir))
        {
            return Err(CgroupError::InvalidPath(cgroups_path.to_owned()));
        }
        let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
        // Read only for a relative path: the service's are all absolute.
        let own = match cgroups_path.is_absolute() {
            true => Vec::new(),
            false => {
                let path = Path::new("/proc/self/cgroup");
                let text = fs.read(path).map_err(CgroupError::io("read", path))?;
                parse_proc_cgroup(&text)
            }
        };
        let under = |root: &Path, hierarchy: &str| -> PathBuf {
            match cgroups_path.is_absolute() {
                true => root.join(rel),
                false => root
                    .join(own_path(&own, hierarchy).trim_start_matches('/'))
                    .join(rel),
            }
        };
        if self.v2 {
            return Ok(vec![Dir {
                controllers: UNIFIED.to_owned(),
                path: under(&self.mount, ""),
            }]);
        }
        let mut out: Vec<Dir> = Vec::new();
        for (names, root) in &self.v1 {
            let wanted = names.split(',').any(|n| controllers.contains(&n));
            if wanted && !out.iter().any(|d| d.controllers == *names) {
                out.push(Dir {
                    controllers: names.clone(),
                    path: under(root, names),
                });
            }
        }
        Ok(out)
    }

    /// Whether a v1 hierarchy of `controller` is mounted.
    pub fn has_v1(&self, controller: &str) -> bool {
        self.v1
            .iter()
            .any(|(names, _)| names.split(',').any(|n| n == controller))
    }
}

/// The mounted cgroup v1 hierarchies in mountinfo: (controllers, mount point), the first
/// mount of each; named hierarchies (`name=systemd`) have no controller and are left out.
pub fn v1_hierarchies(mountinfo: &str) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.get(sep + 1) != Some(&"cgroup") || fields.len() < sep + 4 || fields.len() < 5 {
            continue;
        }
        let names: Vec<&str> = fields[sep + 3]
            .split(',')
            .filter(|o| KNOWN_CONTROLLERS.contains(o))
            .collect();
        if names.is_empty() {
            continue;
        }
        let names = names.join(",");
        if !out.iter().any(|(n, _)| *n == names) {
            out.push((names, PathBuf::from(unescape(fields[4]))));
        }
    }
    out
}

/// The cgroup v1 controllers (mount options that are not one of these are options).
const KNOWN_CONTROLLERS: [&str; 13] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
];

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// The caller's cgroup in the hierarchy of `controllers` ("" for the unified one): the line
/// of `/proc/self/cgroup` that names one of them, else the root.
fn own_path<'a>(own: &'a [(String, String)], controllers: &str) -> &'a str {
    own.iter()
        .find(|(names, _)| match controllers {
            "" => names.is_empty(),
            _ => names
                .split(',')
                .any(|n| controllers.split(',').any(|c| c == n)),
        })
        .map_or("/", |(_, p)| p.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::fake_fs::FakeFs;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/dev\\040ices rw,relatime - cgroup cgroup rw,devices
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:32 / /mnt/memory-again rw,relatime - cgroup cgroup rw,memory
";

    fn v1_fake() -> FakeFs {
        let fs = FakeFs::default();
        fs.file("/proc/self/mountinfo", MOUNTINFO);
        fs.file(
            "/proc/self/cgroup",
            "9:name=systemd:/\n8:pids:/\n4:memory:/outer/x\n1:cpu,cpuacct:/\n0::/\n",
        );
        fs
    }

    #[test]
    fn v1_hierarchies_come_from_mountinfo() {
        let layout = Layout::detect(&v1_fake());
        assert!(!layout.v2);
        assert_eq!(
            layout.v1,
            vec![
                (
                    "cpu,cpuacct".into(),
                    PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
                ),
                ("memory".into(), PathBuf::from("/sys/fs/cgroup/memory")),
                ("devices".into(), PathBuf::from("/sys/fs/cgroup/dev ices")),
                ("pids".into(), PathBuf::from("/sys/fs/cgroup/pids")),
            ]
        );
        assert!(layout.has_v1("cpuacct") && !layout.has_v1("freezer"));
    }

    #[test]
    fn an_absolute_path_is_under_each_root_and_co_mounted_controllers_share_a_directory() {
        let fs = v1_fake();
        let layout = Layout::detect(&fs);
        let dirs = layout
            .dirs(
                &fs,
                Path::new("/barque/c1"),
                &["memory", "cpu", "cpuacct", "freezer"],
            )
            .unwrap();
        assert_eq!(
            dirs,
            vec![
                Dir {
                    controllers: "cpu,cpuacct".into(),
                    path: "/sys/fs/cgroup/cpu,cpuacct/barque/c1".into()
                },
                Dir {
                    controllers: "memory".into(),
                    path: "/sys/fs/cgroup/memory/barque/c1".into()
                },
            ]
        );
        assert!(dirs[0].has("cpuacct") && !dirs[0].has("cpu,cpuacct"));
    }

    #[test]
    fn a_relative_path_is_under_the_callers_own_cgroup() {
        let fs = v1_fake();
        let layout = Layout::detect(&fs);
        let dirs = layout
            .dirs(&fs, Path::new("c1"), &["memory", "pids"])
            .unwrap();
        assert_eq!(
            dirs[0].path,
            PathBuf::from("/sys/fs/cgroup/memory/outer/x/c1")
        );
        assert_eq!(dirs[1].path, PathBuf::from("/sys/fs/cgroup/pids/c1"));
        let v2 = FakeFs::default();
        v2.file("/sys/fs/cgroup/cgroup.controllers", "cpu memory pids");
        v2.file("/proc/self/cgroup", "0::/user.slice\n");
        let layout = Layout::detect(&v2);
        assert!(layout.v2);
        assert_eq!(
            layout.dirs(&v2, Path::new("c1"), &[]).unwrap(),
            vec![Dir {
                controllers: UNIFIED.into(),
                path: "/sys/fs/cgroup/user.slice/c1".into()
            }]
        );
        assert_eq!(
            layout.dirs(&v2, Path::new("/a/b"), &[]).unwrap()[0].path,
            PathBuf::from("/sys/fs/cgroup/a/b")
        );
    }

    #[test]
    fn dot_dot_is_refused() {
        let fs = v1_fake();
        let layout = Layout::detect(&fs);
        for path in ["/a/../b", "../c", "x/.."] {
            let err = layout.dirs(&fs, Path::new(path), &["memory"]).unwrap_err();
            assert!(err.to_string().contains("\"..\" is not allowed"), "{err}");
        }
    }

    #[test]
    fn no_mountinfo_means_no_v1_hierarchies() {
        let layout = Layout::detect(&FakeFs::default());
        assert_eq!((layout.v2, layout.v1.len()), (false, 0));
    }
}
