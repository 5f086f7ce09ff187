//! Capability sets from `process.capabilities`, and applying them in the init.
//!
//! Bounding, permitted and effective come from the spec; inheritable and ambient stay empty
//! unless the spec names them (CVE-2022-24769). The bounding set is trimmed while the init is
//! still fully privileged, the user is switched with `PR_SET_KEEPCAPS`, then `capset` installs
//! the final sets.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::failure::{Fail, FailAt, Step};
use crate::sys::Sys;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapabilityError {
    #[error("unknown capability {name:?}")]
    Unknown { name: String },
    #[error("cannot read {path}: {reason}")]
    LastCap { path: &'static str, reason: String },
}

/// Capability names (without `CAP_`) by number, as in `linux/capability.h`.
pub const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The number of a capability named `CAP_X` or `X` (any case).
pub fn number(name: &str) -> Result<u32, CapabilityError> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES
        .iter()
        .position(|n| *n == bare)
        .map(|i| i as u32)
        .ok_or_else(|| CapabilityError::Unknown {
            name: name.to_owned(),
        })
}

fn mask(set: &Option<Capabilities>) -> Result<u64, CapabilityError> {
    let mut m = 0u64;
    for cap in set.iter().flatten() {
        m |= 1u64 << number(&cap_name(*cap))?;
    }
    Ok(m)
}

/// `CAP_` name of an oci-spec capability.
fn cap_name(cap: Capability) -> String {
    cap.to_string()
}

/// The five sets as bit masks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapSets {
    /// No `capabilities` section: an empty everything, as the runtime spec says.
    pub fn from_spec(caps: Option<&LinuxCapabilities>) -> Result<CapSets, CapabilityError> {
        let Some(c) = caps else {
            return Ok(CapSets::default());
        };
        Ok(CapSets {
            bounding: mask(c.bounding())?,
            effective: mask(c.effective())?,
            permitted: mask(c.permitted())?,
            inheritable: mask(c.inheritable())?,
            ambient: mask(c.ambient())?,
        })
    }
}

/// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
pub fn last_cap() -> Result<u32, CapabilityError> {
    const PATH: &str = "/proc/sys/kernel/cap_last_cap";
    let text = std::fs::read_to_string(PATH).map_err(|e| CapabilityError::LastCap {
        path: PATH,
        reason: e.to_string(),
    })?;
    text.trim().parse().map_err(|_| CapabilityError::LastCap {
        path: PATH,
        reason: format!("not a number: {text:?}"),
    })
}

/// Drops everything outside `bounding` from the bounding set (needs CAP_SETPCAP: run first).
pub fn drop_bounding<S: Sys>(sys: &S, sets: &CapSets, last_cap: u32) -> Result<(), Fail> {
    for cap in 0..=last_cap.min(63) {
        if sets.bounding & (1u64 << cap) == 0 {
            match sys.prctl(libc::PR_CAPBSET_DROP, u64::from(cap), 0) {
                Ok(_) | Err(libc::EINVAL) => {}
                Err(e) => return Err(Fail::at(Step::CapabilityBounding, cap as usize, e)),
            }
        }
    }
    Ok(())
}

/// Switches to `uid`/`gid`/`groups` keeping the permitted set, then installs the final sets.
pub fn switch_user_and_set<S: Sys>(
    sys: &S,
    sets: &CapSets,
    uid: u32,
    gid: u32,
    groups: &[u32],
) -> Result<(), Fail> {
    sys.prctl(libc::PR_SET_KEEPCAPS, 1, 0).on(Step::User)?;
    sys.setgroups(groups).on(Step::User)?;
    sys.setresgid(gid).on(Step::User)?;
    sys.setresuid(uid).on(Step::User)?;
    sys.prctl(libc::PR_SET_KEEPCAPS, 0, 0).on(Step::User)?;
    sys.capset(sets.effective, sets.permitted, sets.inheritable)
        .on(Step::Capabilities)?;
    sys.prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as u64,
        0,
    )
    .on(Step::Capabilities)?;
    // An ambient capability must also be permitted and inheritable; like runc, one that is not
    // (runc's own default spec lists ambient caps with no inheritable set) is skipped.
    for cap in 0..64u32 {
        if sets.ambient & (1u64 << cap) != 0 {
            match sys.prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as u64,
                u64::from(cap),
            ) {
                Ok(_) | Err(libc::EPERM) => {}
                Err(e) => return Err(Fail::at(Step::Capabilities, cap as usize, e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    #[test]
    fn names() {
        assert_eq!(number("CAP_CHOWN"), Ok(0));
        assert_eq!(number("net_bind_service"), Ok(10));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Ok(40));
        assert!(matches!(
            number("CAP_NOPE"),
            Err(CapabilityError::Unknown { .. })
        ));
    }

    #[test]
    fn every_oci_capability_has_a_number() {
        let json = serde_json::json!({
            "bounding": NAMES.iter().map(|n| format!("CAP_{n}")).collect::<Vec<_>>()
        });
        let caps: LinuxCapabilities = serde_json::from_value(json).unwrap();
        let sets = CapSets::from_spec(Some(&caps)).unwrap();
        assert_eq!(sets.bounding, (1u64 << 41) - 1);
        assert_eq!(sets.ambient, 0);
    }

    #[test]
    fn docker_defaults() {
        let docker = [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ];
        let json =
            serde_json::json!({"bounding": docker, "effective": docker, "permitted": docker});
        let caps: LinuxCapabilities = serde_json::from_value(json).unwrap();
        let sets = CapSets::from_spec(Some(&caps)).unwrap();
        // What Docker containers show as CapEff.
        assert_eq!(sets.effective, 0x00000000a80425fb);
        assert_eq!(sets.inheritable, 0);
    }

    #[test]
    fn drops_bounding_outside_the_set() {
        let sys = FakeSys::default();
        let sets = CapSets {
            bounding: 0b101,
            ..Default::default()
        };
        drop_bounding(&sys, &sets, 3).unwrap();
        assert_eq!(
            sys.calls(),
            ["prctl(24, 1, 0)", "prctl(24, 3, 0)"] // PR_CAPBSET_DROP = 24
        );
    }

    #[test]
    fn keeps_caps_across_the_user_switch() {
        let sys = FakeSys::default();
        let sets = CapSets {
            effective: 1,
            permitted: 1,
            ambient: 1 << 10,
            ..Default::default()
        };
        switch_user_and_set(&sys, &sets, 1000, 100, &[5]).unwrap();
        assert_eq!(
            sys.calls(),
            [
                "prctl(8, 1, 0)",
                "setgroups([5])",
                "setresgid(100)",
                "setresuid(1000)",
                "prctl(8, 0, 0)",
                "capset(0x1, 0x1, 0x0)",
                "prctl(47, 4, 0)",
                "prctl(47, 2, 10)",
            ]
        );
    }
}
