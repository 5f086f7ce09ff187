use super::fake_fs::FakeFs;
use super::*;

const V1_ROOT: &str = "/sys/fs/cgroup";
const SERVICE: [&str; 6] = ["memory", "pids", "cpu", "cpuacct", "freezer", "devices"];

fn v1_layout(hierarchies: &[&str]) -> Layout {
    Layout {
        mount: PathBuf::from(V1_ROOT),
        v2: false,
        v1: hierarchies
            .iter()
            .map(|h| (h.to_string(), PathBuf::from(format!("{V1_ROOT}/{h}"))))
            .collect(),
    }
}

fn v1_fake(hierarchies: &[&str]) -> FakeFs {
    let fs = FakeFs::default();
    for h in hierarchies {
        fs.dir(&format!("{V1_ROOT}/{h}"));
    }
    fs
}

fn v2_fake(available: &str) -> (FakeFs, Layout) {
    let fs = FakeFs::default();
    fs.file("/sys/fs/cgroup/cgroup.controllers", available);
    fs.file("/sys/fs/cgroup/cgroup.subtree_control", "");
    let layout = Layout::detect(&fs);
    (fs, layout)
}

/// What the v2 kernel puts in a new cgroup directory: its controller files.
fn v2_children(fs: &FakeFs, dir: &str, controllers: &str, subtree: &str) {
    fs.file(&format!("{dir}/cgroup.controllers"), controllers);
    fs.file(&format!("{dir}/cgroup.subtree_control"), subtree);
}

fn rule(allow: bool, text: &str) -> DeviceRule {
    DeviceRule::parse(allow, text).unwrap()
}

fn writes(fs: &FakeFs) -> Vec<String> {
    fs.calls()
        .into_iter()
        .filter_map(|c| c.strip_prefix("write ").map(str::to_owned))
        .collect()
}

#[test]
fn v1_creates_a_directory_per_hierarchy_with_the_limits_and_device_rules() {
    let hierarchies = [
        "memory", "pids", "cpu", "cpuacct", "freezer", "devices", "blkio",
    ];
    let fs = v1_fake(&hierarchies);
    fs.dir("/sys/fs/cgroup/memory/barque");
    let layout = v1_layout(&hierarchies);
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &SERVICE).unwrap();
    let limits = Limits {
        memory: Some(16 << 20),
        memory_swap: Some(32 << 20),
        swap_where_accounted: true,
        pids: Some(20),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        ..Limits::default()
    };
    let devices = [
        rule(false, "a"),
        rule(true, "c 1:3 rwm"),
        rule(true, "c *:* m"),
    ];
    let setup = Setup {
        limits: &limits,
        devices: &devices,
        replace: false,
    };
    let cgroup = Cgroup::create(&fs, &layout, dirs, setup).unwrap();
    assert_eq!(cgroup.dirs.len(), 6, "blkio is not barque's");
    for h in ["memory", "pids", "cpu", "cpuacct", "freezer", "devices"] {
        assert!(fs.is_dir(&format!("/sys/fs/cgroup/{h}/barque/c1")), "{h}");
    }
    // This host does not account swap (no memsw file): Docker's default swap is skipped.
    assert_eq!(
        writes(&fs),
        [
            "/sys/fs/cgroup/memory/barque/c1/memory.limit_in_bytes 16777216",
            "/sys/fs/cgroup/cpu/barque/c1/cpu.cfs_period_us 100000",
            "/sys/fs/cgroup/cpu/barque/c1/cpu.cfs_quota_us 50000",
            "/sys/fs/cgroup/pids/barque/c1/pids.max 20",
            "/sys/fs/cgroup/devices/barque/c1/devices.deny a",
            "/sys/fs/cgroup/devices/barque/c1/devices.allow c 1:3 rwm",
            "/sys/fs/cgroup/devices/barque/c1/devices.allow c *:* m",
        ]
    );
    assert_eq!(
        cgroup.procs()[0],
        PathBuf::from("/sys/fs/cgroup/memory/barque/c1/cgroup.procs")
    );
}

#[test]
fn swap_is_limited_where_the_host_accounts_it() {
    let fs = v1_fake(&["memory"]);
    fs.dir("/sys/fs/cgroup/memory/barque/c1");
    fs.file(
        "/sys/fs/cgroup/memory/barque/c1/memory.memsw.limit_in_bytes",
        "",
    );
    let layout = v1_layout(&["memory"]);
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &SERVICE).unwrap();
    let limits = Limits {
        memory: Some(100),
        memory_swap: Some(200),
        swap_where_accounted: true,
        ..Limits::default()
    };
    let setup = Setup {
        limits: &limits,
        ..Setup::default()
    };
    Cgroup::create(&fs, &layout, dirs, setup).unwrap();
    assert_eq!(
        writes(&fs)[1],
        "/sys/fs/cgroup/memory/barque/c1/memory.memsw.limit_in_bytes 200"
    );
}

#[test]
fn a_limit_without_its_controller_is_refused_naming_it_and_nothing_is_made() {
    let fs = v1_fake(&["memory", "cpu"]);
    let layout = v1_layout(&["memory", "cpu"]);
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &SERVICE).unwrap();
    let limits = Limits {
        pids: Some(5),
        ..Limits::default()
    };
    let setup = Setup {
        limits: &limits,
        ..Setup::default()
    };
    let err = Cgroup::create(&fs, &layout, dirs, setup).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot apply the pids limit: the pids cgroup controller is not available on this host"
    );
    assert_eq!(err.class(), ErrorClass::Usage);
    assert!(fs.calls().is_empty(), "{:?}", fs.calls());

    // cgroup v2 without the memory controller (a hybrid host's unified tree).
    let (fs, layout) = v2_fake("pids cpu");
    v2_children(&fs, "/sys/fs/cgroup/barque", "pids cpu", "pids cpu");
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &[]).unwrap();
    let limits = Limits {
        memory: Some(1 << 30),
        ..Limits::default()
    };
    let setup = Setup {
        limits: &limits,
        ..Setup::default()
    };
    let err = Cgroup::create(&fs, &layout, dirs, setup).unwrap_err();
    assert!(
        err.to_string().contains("the memory cgroup controller"),
        "{err}"
    );
    assert!(!fs.is_dir("/sys/fs/cgroup/barque/c1"));
}

#[test]
fn v2_enables_the_controllers_in_each_ancestor_then_writes_and_attaches_the_device_program() {
    let (fs, layout) = v2_fake("cpuset cpu io memory hugetlb pids rdma");
    v2_children(&fs, "/sys/fs/cgroup/barque", "cpu memory pids", "memory");
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &SERVICE).unwrap();
    let limits = Limits {
        memory: Some(16 << 20),
        memory_swap: Some(32 << 20),
        swap_where_accounted: true,
        pids: Some(20),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        ..Limits::default()
    };
    let devices = [rule(false, "a"), rule(true, "c 1:3 rwm")];
    let setup = Setup {
        limits: &limits,
        devices: &devices,
        replace: false,
    };
    let cgroup = Cgroup::create(&fs, &layout, dirs, setup).unwrap();
    assert_eq!(
        cgroup.procs(),
        [PathBuf::from("/sys/fs/cgroup/barque/c1/cgroup.procs")]
    );
    // Only the controllers each ancestor lacks are written; no memory.swap.max here.
    assert_eq!(
        fs.calls(),
        [
            "write /sys/fs/cgroup/cgroup.subtree_control +memory +pids +cpu",
            "mkdir /sys/fs/cgroup/barque",
            "write /sys/fs/cgroup/barque/cgroup.subtree_control +pids +cpu",
            "mkdir /sys/fs/cgroup/barque/c1",
            "write /sys/fs/cgroup/barque/c1/memory.max 16777216",
            "write /sys/fs/cgroup/barque/c1/cpu.max 50000 100000",
            "write /sys/fs/cgroup/barque/c1/pids.max 20",
            "attach /sys/fs/cgroup/barque/c1 2 rules",
        ]
    );
}

#[test]
fn a_failed_write_removes_what_was_made() {
    let fs = v1_fake(&["memory", "pids"]);
    let layout = v1_layout(&["memory", "pids"]);
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &SERVICE).unwrap();
    fs.fail(
        "write /sys/fs/cgroup/pids/barque/c1/pids.max",
        libc::EINVAL,
        1,
    );
    let limits = Limits {
        memory: Some(1 << 30),
        pids: Some(5),
        ..Limits::default()
    };
    let setup = Setup {
        limits: &limits,
        ..Setup::default()
    };
    let err = Cgroup::create(&fs, &layout, dirs, setup).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot write /sys/fs/cgroup/pids/barque/c1/pids.max (5): "),
        "{err}"
    );
    assert!(matches!(
        err.class(),
        ErrorClass::Os {
            errno: libc::EINVAL,
            ..
        }
    ));
    assert!(!fs.is_dir("/sys/fs/cgroup/memory/barque/c1"));
    assert!(!fs.is_dir("/sys/fs/cgroup/pids/barque/c1"));
    assert!(
        fs.is_dir("/sys/fs/cgroup/pids/barque"),
        "the parent stays for the others"
    );
}

#[test]
fn a_restart_replaces_the_leftover_cgroup() {
    let fs = v1_fake(&["pids"]);
    fs.dir("/sys/fs/cgroup/pids/barque/c1");
    fs.file("/sys/fs/cgroup/pids/barque/c1/pids.max", "7");
    let layout = v1_layout(&["pids"]);
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &SERVICE).unwrap();
    let setup = Setup {
        limits: &Limits::default(),
        replace: true,
        ..Setup::default()
    };
    Cgroup::create(&fs, &layout, dirs, setup).unwrap();
    assert_eq!(
        fs.calls(),
        [
            "rmdir /sys/fs/cgroup/pids/barque/c1",
            "mkdir /sys/fs/cgroup/pids/barque/c1"
        ]
    );
    assert_eq!(fs.content("/sys/fs/cgroup/pids/barque/c1/pids.max"), None);
}

#[test]
fn remove_waits_for_exiting_tasks_then_gives_up_naming_the_directory() {
    let fs = v1_fake(&["memory", "pids"]);
    fs.dir("/sys/fs/cgroup/memory/barque/c1");
    fs.dir("/sys/fs/cgroup/pids/barque/c1");
    let layout = v1_layout(&["memory", "pids"]);
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &SERVICE).unwrap();
    let cgroup = Cgroup::existing(&fs, &layout, dirs);
    assert_eq!(cgroup.dirs.len(), 2);
    fs.fail("rmdir /sys/fs/cgroup/memory", libc::EBUSY, 3);
    cgroup.remove(&fs, Duration::from_secs(5)).unwrap();
    assert_eq!(*fs.sleeps.borrow(), 3);
    assert!(!fs.is_dir("/sys/fs/cgroup/memory/barque/c1"));
    // Removing again: nothing left is not an error.
    cgroup.remove(&fs, Duration::ZERO).unwrap();

    fs.dir("/sys/fs/cgroup/memory/barque/c2");
    fs.dir("/sys/fs/cgroup/pids/barque/c2");
    let dirs = layout.dirs(&fs, Path::new("/barque/c2"), &SERVICE).unwrap();
    let cgroup = Cgroup::existing(&fs, &layout, dirs);
    fs.fail("rmdir /sys/fs/cgroup/memory", libc::EBUSY, usize::MAX);
    let err = cgroup.remove(&fs, Duration::ZERO).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot remove the cgroup /sys/fs/cgroup/memory/barque/c2: {}",
            io::Error::from_raw_os_error(libc::EBUSY)
        )
    );
    assert!(
        !fs.is_dir("/sys/fs/cgroup/pids/barque/c2"),
        "the others are still removed"
    );
}

#[test]
fn freeze_and_thaw_wait_for_the_kernel() {
    let fs = v1_fake(&["freezer"]);
    fs.dir("/sys/fs/cgroup/freezer/barque/c1");
    let layout = v1_layout(&["freezer"]);
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &SERVICE).unwrap();
    let cgroup = Cgroup::existing(&fs, &layout, dirs);
    cgroup.freeze(&fs, true, Duration::from_secs(1)).unwrap();
    assert_eq!(
        fs.content("/sys/fs/cgroup/freezer/barque/c1/freezer.state")
            .as_deref(),
        Some("FROZEN")
    );
    cgroup.freeze(&fs, false, Duration::from_secs(1)).unwrap();
    assert_eq!(
        writes(&fs),
        [
            "/sys/fs/cgroup/freezer/barque/c1/freezer.state FROZEN",
            "/sys/fs/cgroup/freezer/barque/c1/freezer.state THAWED"
        ]
    );
    fs.file("/sys/fs/cgroup/freezer/barque/c1/freezer.state", "FREEZING");
    fs.stick("/sys/fs/cgroup/freezer/barque/c1/freezer.state");
    let err = cgroup.freeze(&fs, true, Duration::ZERO).unwrap_err();
    assert!(matches!(
        err.class(),
        ErrorClass::Os {
            errno: libc::ETIMEDOUT,
            ..
        }
    ));

    let (fs, layout) = v2_fake("memory");
    fs.dir("/sys/fs/cgroup/barque/c1");
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &[]).unwrap();
    let cgroup = Cgroup::existing(&fs, &layout, dirs);
    cgroup.freeze(&fs, true, Duration::from_secs(1)).unwrap();
    assert_eq!(writes(&fs), ["/sys/fs/cgroup/barque/c1/cgroup.freeze 1"]);
}

#[test]
fn no_freezer_is_a_usage_error() {
    let fs = v1_fake(&["memory"]);
    let layout = v1_layout(&["memory"]);
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &SERVICE).unwrap();
    let cgroup = Cgroup { v2: false, dirs };
    let err = cgroup.freeze(&fs, true, Duration::ZERO).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Usage);
    assert_eq!(
        err.to_string(),
        "the freezer cgroup controller is not available on this host"
    );
}

#[test]
fn oom_kills_and_usage_are_read_from_the_version_s_files() {
    let fs = v1_fake(&["memory", "cpuacct", "pids"]);
    let c1 = "/sys/fs/cgroup/memory/barque/c1";
    fs.file(
        &format!("{c1}/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    );
    fs.file(&format!("{c1}/memory.usage_in_bytes"), "1208320\n");
    fs.file(
        &format!("{c1}/memory.limit_in_bytes"),
        "9223372036854771712\n",
    );
    fs.file(
        "/sys/fs/cgroup/cpuacct/barque/c1/cpuacct.usage",
        "5123456\n",
    );
    fs.file("/sys/fs/cgroup/pids/barque/c1/pids.current", "3\n");
    fs.file("/sys/fs/cgroup/pids/barque/c1/pids.max", "max\n");
    fs.file("/sys/fs/cgroup/pids/barque/c1/cgroup.procs", "40\n12\n");
    let layout = v1_layout(&["memory", "cpuacct", "pids"]);
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &SERVICE).unwrap();
    let cgroup = Cgroup::existing(&fs, &layout, dirs);
    assert!(cgroup.oom_killed(&fs));
    assert_eq!(
        cgroup.stats(&fs),
        stats::Stats {
            memory_usage: Some(1_208_320),
            memory_limit: None,
            cpu_usage_ns: Some(5_123_456),
            pids_current: Some(3),
            pids_limit: None,
        }
    );
    // The memory hierarchy has no cgroup.procs in this fake: the next one is read.
    assert_eq!(cgroup.pids(&fs), [12, 40]);

    let (fs, layout) = v2_fake("memory pids");
    let c1 = "/sys/fs/cgroup/barque/c1";
    fs.file(
        &format!("{c1}/memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n",
    );
    fs.file(&format!("{c1}/memory.current"), "4096\n");
    fs.file(&format!("{c1}/memory.max"), "16777216\n");
    fs.file(
        &format!("{c1}/cpu.stat"),
        "usage_usec 2500\nuser_usec 2000\n",
    );
    fs.file(&format!("{c1}/pids.max"), "20\n");
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &[]).unwrap();
    let cgroup = Cgroup::existing(&fs, &layout, dirs);
    assert!(!cgroup.oom_killed(&fs));
    assert_eq!(
        cgroup.stats(&fs),
        stats::Stats {
            memory_usage: Some(4096),
            memory_limit: Some(16 << 20),
            cpu_usage_ns: Some(2_500_000),
            pids_current: None,
            pids_limit: Some(20),
        }
    );
    fs.file(&format!("{c1}/memory.events"), "oom 2\noom_kill 2\n");
    assert!(cgroup.oom_killed(&fs));
}

#[test]
fn an_existing_cgroup_has_only_the_directories_there_are() {
    let fs = v1_fake(&["memory", "pids"]);
    fs.dir("/sys/fs/cgroup/pids/barque/c1");
    let layout = v1_layout(&["memory", "pids"]);
    let dirs = layout.dirs(&fs, Path::new("/barque/c1"), &SERVICE).unwrap();
    let cgroup = Cgroup::existing(&fs, &layout, dirs);
    assert_eq!(
        cgroup.procs(),
        [PathBuf::from("/sys/fs/cgroup/pids/barque/c1/cgroup.procs")]
    );
    assert!(!cgroup.oom_killed(&fs), "no memory cgroup: no OOM kill");
    assert_eq!(cgroup.stats(&fs), stats::Stats::default());
}
