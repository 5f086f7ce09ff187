//! A container's resource limits and the control files that apply them, which differ between
//! cgroup v1 (`memory.limit_in_bytes`, `cpu.cfs_quota_us`...) and v2 (`memory.max`,
//! `cpu.max`...).

/// The limits barque applies, in the OCI spec's units (`linux.resources`). `None`: not set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes; negative: unlimited.
    pub memory: Option<i64>,
    /// The soft limit in bytes; negative: none.
    pub memory_reservation: Option<i64>,
    /// Memory plus swap, as cgroup v1's `memsw` and the OCI spec count it; negative:
    /// unlimited.
    pub memory_swap: Option<i64>,
    /// Apply `memory_swap` only where the host accounts swap (its control file exists):
    /// Docker's own default for `--memory` alone, which a host without swap accounting
    /// does without. Otherwise a missing file is an error, as any limit not applied.
    pub swap_where_accounted: bool,
    /// Tasks; zero or negative: unlimited.
    pub pids: Option<i64>,
    pub cpu_shares: Option<u64>,
    /// Microseconds of CPU time per period; zero or negative: unlimited.
    pub cpu_quota: Option<i64>,
    /// Microseconds.
    pub cpu_period: Option<u64>,
}

/// The kernel's default CFS period (µs), which cgroup v2's `cpu.max` needs spelled out.
pub const CFS_PERIOD: u64 = 100_000;

/// One control file write: the controller whose directory holds `file`, and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
    /// Skipped where the file does not exist (see [`Limits::swap_where_accounted`]).
    pub if_present: bool,
}

fn write(controller: &'static str, file: &'static str, value: String) -> Write {
    Write {
        controller,
        file,
        value,
        if_present: false,
    }
}

/// What a limit needs, named for the error when its controller is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub limit: &'static str,
    pub controller: &'static str,
}

impl Limits {
    /// No limit at all (the cgroup is for accounting, devices and the freezer).
    pub const NONE: Limits = Limits {
        memory: None,
        memory_reservation: None,
        memory_swap: None,
        swap_where_accounted: false,
        pids: None,
        cpu_shares: None,
        cpu_quota: None,
        cpu_period: None,
    };

    /// The controllers these limits need, each with the first limit that needs it.
    pub fn needs(&self) -> Vec<Needs> {
        let mut out = Vec::new();
        let memory = [
            ("memory", self.memory.is_some()),
            ("memory reservation", self.memory_reservation.is_some()),
            (
                "memory+swap",
                self.memory_swap.is_some() && !self.swap_where_accounted,
            ),
        ];
        if let Some((limit, _)) = memory.iter().find(|(_, set)| *set) {
            out.push(Needs {
                limit,
                controller: "memory",
            });
        }
        if self.pids.is_some() {
            out.push(Needs {
                limit: "pids",
                controller: "pids",
            });
        }
        let cpu = [
            ("cpu shares", self.cpu_shares.is_some()),
            ("cpu quota", self.cpu_quota.is_some()),
            ("cpu period", self.cpu_period.is_some()),
        ];
        if let Some((limit, _)) = cpu.iter().find(|(_, set)| *set) {
            out.push(Needs {
                limit,
                controller: "cpu",
            });
        }
        out
    }

    /// The writes that apply these limits on cgroup v1 or v2, in the order they are made.
    pub fn writes(&self, v2: bool) -> Result<Vec<Write>, super::CgroupError> {
        let mut out = Vec::new();
        let v1_bytes = |n: i64| match n < 0 {
            true => "-1".to_owned(),
            false => n.to_string(),
        };
        let v2_bytes = |n: i64| match n < 0 {
            true => "max".to_owned(),
            false => n.to_string(),
        };
        if v2 {
            if let Some(l) = self.memory {
                out.push(write("memory", "memory.max", v2_bytes(l)));
            }
            if let Some(l) = self.memory_reservation {
                out.push(write("memory", "memory.low", v2_bytes(l)));
            }
            if let Some(s) = self.memory_swap {
                // v1's memsw is memory + swap; v2's swap.max is swap alone.
                let swap = match (s, self.memory) {
                    (s, _) if s < 0 => "max".to_owned(),
                    (s, Some(l)) if l >= 0 => (s - l).max(0).to_string(),
                    _ => return Err(super::CgroupError::SwapWithoutMemory),
                };
                out.push(Write {
                    if_present: self.swap_where_accounted,
                    ..write("memory", "memory.swap.max", swap)
                });
            }
        } else {
            if let Some(l) = self.memory {
                out.push(write("memory", "memory.limit_in_bytes", v1_bytes(l)));
            }
            if let Some(l) = self.memory_reservation {
                out.push(write("memory", "memory.soft_limit_in_bytes", v1_bytes(l)));
            }
            if let Some(s) = self.memory_swap {
                out.push(Write {
                    if_present: self.swap_where_accounted,
                    ..write("memory", "memory.memsw.limit_in_bytes", v1_bytes(s))
                });
            }
        }
        if v2 {
            if let Some(s) = self.cpu_shares {
                out.push(write("cpu", "cpu.weight", shares_to_weight(s).to_string()));
            }
            if self.cpu_quota.is_some() || self.cpu_period.is_some() {
                let quota = match self.cpu_quota {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".into(),
                };
                let period = self.cpu_period.unwrap_or(CFS_PERIOD);
                out.push(write("cpu", "cpu.max", format!("{quota} {period}")));
            }
        } else {
            if let Some(s) = self.cpu_shares {
                out.push(write("cpu", "cpu.shares", s.to_string()));
            }
            if let Some(p) = self.cpu_period {
                out.push(write("cpu", "cpu.cfs_period_us", p.to_string()));
            }
            if let Some(q) = self.cpu_quota {
                out.push(write("cpu", "cpu.cfs_quota_us", q.to_string()));
            }
        }
        if let Some(p) = self.pids {
            let value = match p <= 0 {
                true => "max".to_owned(),
                false => p.to_string(),
            };
            out.push(write("pids", "pids.max", value));
        }
        Ok(out)
    }
}

/// runc's conversion of cgroup v1 shares [2, 262144] to v2's weight [1, 10000] (0: the
/// default weight).
fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 100,
        s => 1 + (s.clamp(2, 262_144) - 2) * 9999 / 262_142,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(w: &[Write]) -> Vec<(&str, &str)> {
        w.iter().map(|w| (w.file, w.value.as_str())).collect()
    }

    #[test]
    fn v1_files() {
        let l = Limits {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            pids: Some(32),
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            ..Limits::default()
        };
        assert_eq!(
            files(&l.writes(false).unwrap()),
            vec![
                ("memory.limit_in_bytes", "67108864"),
                ("memory.memsw.limit_in_bytes", "134217728"),
                ("cpu.shares", "512"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
                ("pids.max", "32"),
            ]
        );
    }

    #[test]
    fn v2_files() {
        let l = Limits {
            memory: Some(100),
            memory_swap: Some(300),
            pids: Some(0),
            cpu_shares: Some(1024),
            cpu_quota: Some(20_000),
            ..Limits::default()
        };
        assert_eq!(
            files(&l.writes(true).unwrap()),
            vec![
                ("memory.max", "100"),
                ("memory.swap.max", "200"),
                ("cpu.weight", "39"),
                ("cpu.max", "20000 100000"),
                ("pids.max", "max"),
            ]
        );
        let unlimited = Limits {
            memory: Some(-1),
            memory_swap: Some(-1),
            cpu_quota: Some(-1),
            ..Limits::default()
        };
        assert_eq!(
            files(&unlimited.writes(true).unwrap()),
            vec![
                ("memory.max", "max"),
                ("memory.swap.max", "max"),
                ("cpu.max", "max 100000")
            ]
        );
        let swap_alone = Limits {
            memory_swap: Some(300),
            ..Limits::default()
        };
        assert!(swap_alone.writes(true).is_err());
        assert_eq!(
            files(&swap_alone.writes(false).unwrap()),
            vec![("memory.memsw.limit_in_bytes", "300")]
        );
    }

    #[test]
    fn dockers_default_swap_is_as_much_again_where_the_host_accounts_it() {
        let l = Limits {
            memory: Some(16 << 20),
            memory_swap: Some(32 << 20),
            swap_where_accounted: true,
            ..Limits::default()
        };
        let v1 = l.writes(false).unwrap();
        assert_eq!((v1[1].value.as_str(), v1[1].if_present), ("33554432", true));
        let v2 = l.writes(true).unwrap();
        assert_eq!(
            (v2[1].file, v2[1].value.as_str(), v2[1].if_present),
            ("memory.swap.max", "16777216", true)
        );
        assert!(!v2[0].if_present);
    }

    #[test]
    fn each_controller_needed_is_named_with_a_limit_that_needs_it() {
        assert_eq!(Limits::default().needs(), vec![]);
        let l = Limits {
            memory_reservation: Some(1),
            pids: Some(-1),
            cpu_period: Some(1),
            ..Limits::default()
        };
        let needs: Vec<_> = l.needs().iter().map(|n| (n.limit, n.controller)).collect();
        assert_eq!(
            needs,
            vec![
                ("memory reservation", "memory"),
                ("pids", "pids"),
                ("cpu period", "cpu")
            ]
        );
        // Docker's default swap goes where it can: it needs nothing of its own.
        let swap = Limits {
            memory_swap: Some(1),
            swap_where_accounted: true,
            ..Limits::default()
        };
        assert_eq!(swap.needs(), vec![]);
    }
}
