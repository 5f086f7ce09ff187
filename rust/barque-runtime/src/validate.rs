//! The plan-validation step: every spec field barque-container does not honour is refused here,
//! naming the field, before anything is created (barque-container refuses some of them too, less
//! specifically). Resources are checked by [`crate::cgroups::limits`].

use oci_spec::runtime::Spec;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field} is not supported by barque-runtime{why}")]
pub struct Unsupported {
    pub field: String,
    pub why: &'static str,
}

fn refuse(field: &str, why: &'static str) -> Result<(), Unsupported> {
    Err(Unsupported {
        field: field.to_owned(),
        why,
    })
}

fn set(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

pub fn check(spec: &Spec) -> Result<(), Unsupported> {
    if let Some(h) = spec.hooks() {
        // prestart, createRuntime, poststart and poststop run in the runtime's namespaces
        // (crate::hooks); these two would have to run inside the container's.
        let lists = [
            ("hooks.createContainer", h.create_container()),
            ("hooks.startContainer", h.start_container()),
        ];
        for (name, list) in lists {
            if list.as_ref().is_some_and(|l| !l.is_empty()) {
                return refuse(
                    name,
                    " (hooks inside the container's namespaces are not run)",
                );
            }
        }
    }
    if spec.solaris().is_some() || spec.windows().is_some() || spec.vm().is_some() {
        return refuse("a solaris, windows or vm section", "");
    }
    for m in spec.mounts().iter().flatten() {
        if matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) {
            return Err(Unsupported {
                field: format!(
                    "mounts: a {} mount on {}",
                    m.typ().as_deref().unwrap_or_default(),
                    m.destination().display()
                ),
                why: " (cgroup filesystems are not mounted in containers)",
            });
        }
    }
    if let Some(p) = spec.process() {
        if set(p.apparmor_profile()) {
            return refuse("process.apparmorProfile", " (no AppArmor support)");
        }
        if set(p.selinux_label()) {
            return refuse("process.selinuxLabel", " (no SELinux support)");
        }
        if p.io_priority().is_some() {
            return refuse("process.ioPriority", "");
        }
        if p.scheduler().is_some() {
            return refuse("process.scheduler", "");
        }
        if p.exec_cpu_affinity().is_some() {
            return refuse("process.execCPUAffinity", "");
        }
        if p.command_line().is_some() {
            return refuse("process.commandLine", " (Windows only)");
        }
    }
    if let Some(l) = spec.linux() {
        if l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        {
            return refuse("linux.uidMappings/gidMappings", " (no user namespaces)");
        }
        if l.intel_rdt().is_some() {
            return refuse("linux.intelRdt", "");
        }
        if l.personality().is_some() {
            return refuse("linux.personality", "");
        }
        if set(l.mount_label()) {
            return refuse("linux.mountLabel", " (no SELinux support)");
        }
        if l.memory_policy().is_some() {
            return refuse("linux.memoryPolicy", "");
        }
        if l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
            return refuse("linux.timeOffsets", " (no time namespaces)");
        }
        if l.net_devices().as_ref().is_some_and(|t| !t.is_empty()) {
            return refuse("linux.netDevices", "");
        }
        if l.seccomp()
            .as_ref()
            .is_some_and(|s| s.listener_path().is_some())
        {
            return refuse("linux.seccomp.listenerPath", "");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> Spec {
        let mut v = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "mount"}]}
        });
        for (section, fields) in extra.as_object().unwrap() {
            for (k, val) in fields.as_object().unwrap() {
                v[section][k] = val.clone();
            }
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_plain_spec_passes() {
        check(&spec(serde_json::json!({}))).unwrap();
        // Empty values mean "not asked for".
        check(&spec(
            serde_json::json!({"process": {"apparmorProfile": ""}, "hooks": {"prestart": []}}),
        ))
        .unwrap();
    }

    #[test]
    fn unsupported_fields_are_named() {
        for (field, extra) in [
            (
                "hooks.startContainer",
                serde_json::json!({"hooks": {"startContainer": [{"path": "/bin/true"}]}}),
            ),
            (
                "process.apparmorProfile",
                serde_json::json!({"process": {"apparmorProfile": "x"}}),
            ),
            (
                "linux.personality",
                serde_json::json!({"linux": {"personality": {"domain": "LINUX32"}}}),
            ),
            (
                "linux.uidMappings",
                serde_json::json!({"linux": {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}}),
            ),
            (
                "linux.intelRdt",
                serde_json::json!({"linux": {"intelRdt": {"closID": "x"}}}),
            ),
            (
                "process.scheduler",
                serde_json::json!({"process": {"scheduler": {"policy": "SCHED_OTHER"}}}),
            ),
        ] {
            let err = check(&spec(extra)).unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn a_cgroup_mount_is_refused_not_skipped() {
        let mut s = spec(serde_json::json!({}));
        let m: oci_spec::runtime::Mount = serde_json::from_value(serde_json::json!(
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
        ))
        .unwrap();
        s.set_mounts(Some(vec![m]));
        let err = check(&s).unwrap_err();
        assert!(
            err.to_string().contains("cgroup mount on /sys/fs/cgroup"),
            "{err}"
        );
    }
}
