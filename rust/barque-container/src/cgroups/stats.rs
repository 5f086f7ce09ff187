//! What a cgroup reports about its processes: OOM kills (v1 `memory.oom_control`, v2
//! `memory.events`) and usage for `docker stats` (memory, CPU time, tasks).

use super::fs::CgroupFs;
use super::Cgroup;

/// A cgroup's usage; `None` where its controller is not there or the kernel has no such
/// file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes charged to the cgroup (page cache included, as the kernel counts it).
    pub memory_usage: Option<u64>,
    /// Bytes; `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// CPU time of all its tasks, in nanoseconds (v1: the cpuacct controller).
    pub cpu_usage_ns: Option<u64>,
    pub pids_current: Option<u64>,
    /// `None` when unlimited.
    pub pids_limit: Option<u64>,
}

/// cgroup v1 reports "no memory limit" as the largest page-aligned i64, not a word.
const V1_UNLIMITED: u64 = 1 << 62;

impl Cgroup {
    /// Whether the kernel's OOM killer killed a process of this cgroup (its `oom_kill`
    /// count, v1 since Linux 4.13).
    pub fn oom_killed<F: CgroupFs>(&self, fs: &F) -> bool {
        let file = match self.v2 {
            true => "memory.events",
            false => "memory.oom_control",
        };
        self.read(fs, "memory", file)
            .and_then(|text| keyed(&text, "oom_kill"))
            .is_some_and(|n| n > 0)
    }

    pub fn stats<F: CgroupFs>(&self, fs: &F) -> Stats {
        // A limit reads "max" when there is none, which does not parse.
        let number = |controller: &str, file: &str| {
            self.read(fs, controller, file)
                .and_then(|t| t.trim().parse::<u64>().ok())
        };
        if self.v2 {
            return Stats {
                memory_usage: number("memory", "memory.current"),
                memory_limit: number("memory", "memory.max"),
                cpu_usage_ns: self
                    .read(fs, "cpu", "cpu.stat")
                    .and_then(|t| keyed(&t, "usage_usec"))
                    .map(|us| us * 1000),
                pids_current: number("pids", "pids.current"),
                pids_limit: number("pids", "pids.max"),
            };
        }
        Stats {
            memory_usage: number("memory", "memory.usage_in_bytes"),
            memory_limit: number("memory", "memory.limit_in_bytes").filter(|&n| n < V1_UNLIMITED),
            cpu_usage_ns: number("cpuacct", "cpuacct.usage"),
            pids_current: number("pids", "pids.current"),
            pids_limit: number("pids", "pids.max"),
        }
    }

    fn read<F: CgroupFs>(&self, fs: &F, controller: &str, file: &str) -> Option<String> {
        fs.read(&self.dir(controller)?.join(file)).ok()
    }
}

/// The number of a `key value` line.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}
