//! `linux.namespaces`: new namespaces become clone flags; one with a `path` is joined with
//! `setns` in the child, through a descriptor opened in the parent.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::failure::{Fail, FailAt, Step};
use crate::sys::Sys;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("cannot open namespace {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} namespaces are not supported")]
    Unsupported { kind: String },
}

/// The `CLONE_NEW*` flag of a namespace type.
pub fn clone_flag(t: LinuxNamespaceType) -> Result<u64, NamespaceError> {
    let flag = match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        other => {
            return Err(NamespaceError::Unsupported {
                kind: other.to_string(),
            })
        }
    };
    Ok(flag as u64)
}

#[derive(Debug)]
pub struct Join {
    pub path: PathBuf,
    fd: OwnedFd,
    nstype: i32,
}

#[derive(Debug, Default)]
pub struct NamespacePlan {
    /// `CLONE_NEW*` flags for the clone.
    pub clone_flags: u64,
    pub joins: Vec<Join>,
    /// The network namespace is a new one (not joined by path): its `lo` must be brought up.
    pub loopback_up: bool,
}

/// Opens the namespaces to join (close-on-exec) and collects the flags of the new ones.
pub fn plan(namespaces: &[LinuxNamespace]) -> Result<NamespacePlan, NamespaceError> {
    let mut plan = NamespacePlan::default();
    // The mount namespace is joined last: joining it changes what later paths would mean.
    let mut ordered: Vec<&LinuxNamespace> = namespaces.iter().collect();
    ordered.sort_by_key(|n| n.typ() == LinuxNamespaceType::Mount);
    for ns in ordered {
        let flag = clone_flag(ns.typ())?;
        match ns.path() {
            None => plan.clone_flags |= flag,
            Some(path) => {
                let file = File::open(path).map_err(|source| NamespaceError::Open {
                    path: path.clone(),
                    source,
                })?;
                plan.joins.push(Join {
                    path: path.clone(),
                    fd: file.into(),
                    nstype: flag as i32,
                });
            }
        }
    }
    plan.loopback_up = plan.has_new(libc::CLONE_NEWNET);
    Ok(plan)
}

impl Join {
    /// The `CLONE_NEW*` type of the namespace joined.
    pub fn nstype(&self) -> i32 {
        self.nstype
    }
}

impl NamespacePlan {
    pub fn join<S: Sys>(&self, sys: &S) -> Result<(), Fail> {
        for (i, j) in self.joins.iter().enumerate() {
            sys.setns(j.fd.as_raw_fd(), j.nstype)
                .at(Step::JoinNamespace, i)?;
        }
        Ok(())
    }

    /// Brings `lo` up when the network namespace is new (a joined one is left as it is).
    pub fn bring_up_loopback<S: Sys>(&self, sys: &S) -> Result<(), Fail> {
        if self.loopback_up {
            sys.loopback_up().on(Step::Loopback)?;
        }
        Ok(())
    }

    pub fn has_new(&self, flag: i32) -> bool {
        self.clone_flags & flag as u64 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    #[test]
    fn flags_and_joins() {
        let ns: Vec<LinuxNamespace> = serde_json::from_value(serde_json::json!([
            {"type": "mount"}, {"type": "pid"}, {"type": "network", "path": "/proc/self/ns/net"}
        ]))
        .unwrap();
        let plan = plan(&ns).unwrap();
        assert_eq!(
            plan.clone_flags,
            (libc::CLONE_NEWNS | libc::CLONE_NEWPID) as u64
        );
        assert_eq!(plan.joins.len(), 1);
        assert_eq!(plan.joins[0].nstype, libc::CLONE_NEWNET);
        let bad: Vec<LinuxNamespace> = serde_json::from_value(
            serde_json::json!([{"type": "network", "path": "/nonexistent/ns"}]),
        )
        .unwrap();
        assert!(matches!(
            super::plan(&bad),
            Err(NamespaceError::Open { .. })
        ));
    }

    #[test]
    fn loopback_only_in_a_new_network_namespace() {
        let plan_of = |v: serde_json::Value| {
            let ns: Vec<LinuxNamespace> = serde_json::from_value(v).unwrap();
            plan(&ns).unwrap()
        };
        let sys = FakeSys::default();
        let new = plan_of(serde_json::json!([{"type": "network"}, {"type": "mount"}]));
        assert!(new.loopback_up);
        new.join(&sys).unwrap();
        new.bring_up_loopback(&sys).unwrap();
        assert_eq!(sys.calls(), ["loopback_up"]);

        for v in [
            serde_json::json!([{"type": "network", "path": "/proc/self/ns/net"}]),
            serde_json::json!([{"type": "mount"}, {"type": "uts"}]),
        ] {
            let sys = FakeSys::default();
            let p = plan_of(v);
            assert!(!p.loopback_up);
            p.bring_up_loopback(&sys).unwrap();
            assert!(!sys.calls().contains(&"loopback_up".to_owned()));
        }

        let sys = FakeSys::default();
        sys.fail("loopback_up", libc::EPERM);
        assert_eq!(
            new.bring_up_loopback(&sys),
            Err(Fail::new(Step::Loopback, libc::EPERM))
        );
    }
}
