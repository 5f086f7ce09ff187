//! Loading and validating an OCI runtime bundle's `config.json` (runtime spec 1.x).
//!
//! Validation refuses what barque cannot honour rather than silently ignoring it: a spec that
//! asks for a user namespace or hooks would otherwise run with less isolation than it says.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot load {}: {source}", path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{}: {what} is not supported by barque", path.display())]
    Unsupported { path: PathBuf, what: String },
}

impl SpecError {
    pub fn path(&self) -> &Path {
        match self {
            SpecError::Load { path, .. }
            | SpecError::Invalid { path, .. }
            | SpecError::Unsupported { path, .. } => path,
        }
    }
}

/// `bundle/config.json`, loaded and validated.
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    load_checked(bundle, false)
}

/// As [`load`], for a caller that runs the spec's runtime-namespace hooks itself (the OCI
/// runtime command): `hooks` is then not refused here.
pub fn load_checked(bundle: &Path, caller_runs_hooks: bool) -> Result<Spec, SpecError> {
    let path = bundle.join("config.json");
    let spec = Spec::load(&path).map_err(|source| SpecError::Load {
        path: path.clone(),
        source,
    })?;
    check(&spec, &path, caller_runs_hooks)?;
    Ok(spec)
}

fn invalid(path: &Path, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn unsupported(path: &Path, what: impl Into<String>) -> SpecError {
    SpecError::Unsupported {
        path: path.to_owned(),
        what: what.into(),
    }
}

/// Checks a spec against what the runtime spec requires and what barque supports; `path`
/// names it in errors.
pub fn validate(spec: &Spec, path: &Path) -> Result<(), SpecError> {
    check(spec, path, false)
}

fn check(spec: &Spec, path: &Path, caller_runs_hooks: bool) -> Result<(), SpecError> {
    if !spec.version().starts_with("1.") {
        return Err(invalid(
            path,
            format!("ociVersion {:?} is not 1.x", spec.version()),
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid(path, "no process"))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(invalid(path, "process.args is empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            path,
            format!("process.cwd {:?} is not absolute", process.cwd()),
        ));
    }
    if spec.root().is_none() {
        return Err(invalid(path, "no root"));
    }
    if spec.hooks().is_some() && !caller_runs_hooks {
        return Err(unsupported(path, "hooks"));
    }
    if process.command_line().is_some() {
        return Err(unsupported(path, "process.commandLine"));
    }
    for mount in spec.mounts().iter().flatten() {
        if !mount.destination().is_absolute() {
            return Err(invalid(
                path,
                format!(
                    "mount destination {:?} is not absolute",
                    mount.destination()
                ),
            ));
        }
    }
    let Some(linux) = spec.linux() else {
        return Err(invalid(path, "no linux section"));
    };
    let mut seen = HashSet::new();
    for ns in linux.namespaces().iter().flatten() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                path,
                format!("namespace {} listed twice", ns.typ()),
            ));
        }
        match ns.typ() {
            LinuxNamespaceType::User => return Err(unsupported(path, "a user namespace")),
            LinuxNamespaceType::Time => return Err(unsupported(path, "a time namespace")),
            LinuxNamespaceType::Pid if ns.path().is_some() => {
                return Err(unsupported(path, "joining a pid namespace"))
            }
            _ => {}
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(invalid(
                    path,
                    format!("namespace path {p:?} is not absolute"),
                ));
            }
        }
    }
    let has = |t: LinuxNamespaceType| seen.contains(&t);
    if spec.hostname().is_some() && !has(LinuxNamespaceType::Uts) {
        return Err(invalid(path, "hostname set without a uts namespace"));
    }
    if spec.domainname().is_some() && !has(LinuxNamespaceType::Uts) {
        return Err(invalid(path, "domainname set without a uts namespace"));
    }
    if !has(LinuxNamespaceType::Mount) {
        return Err(unsupported(path, "a container without a mount namespace"));
    }
    if linux.uid_mappings().is_some() || linux.gid_mappings().is_some() {
        return Err(unsupported(path, "uid/gid mappings"));
    }
    if let Some(seccomp) = linux.seccomp() {
        if seccomp.listener_path().is_some() {
            return Err(unsupported(path, "a seccomp listener"));
        }
    }
    if let Some(sysctl) = linux.sysctl() {
        for key in sysctl.keys() {
            if key.contains('/') || key.split('.').any(|c| c.is_empty() || c == "..") {
                return Err(invalid(path, format!("sysctl {key:?} is malformed")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2-dev",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "hostname": "box",
            "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "pid"}]}
        })
    }

    fn check(v: serde_json::Value) -> Result<(), SpecError> {
        let spec: Spec = serde_json::from_value(v).unwrap();
        validate(&spec, Path::new("config.json"))
    }

    #[test]
    fn accepts_minimal() {
        check(base()).unwrap();
    }

    #[test]
    fn refuses_bad_specs() {
        type Mutate = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Mutate)> = vec![
            ("1.x", Box::new(|v| v["ociVersion"] = "2.0.0".into())),
            (
                "args",
                Box::new(|v| v["process"]["args"] = serde_json::json!([])),
            ),
            ("cwd", Box::new(|v| v["process"]["cwd"] = "rel".into())),
            (
                "uts",
                Box::new(|v| v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}])),
            ),
            (
                "twice",
                Box::new(|v| {
                    v["linux"]["namespaces"] =
                        serde_json::json!([{"type": "mount"}, {"type": "uts"}, {"type": "uts"}])
                }),
            ),
            (
                "user namespace",
                Box::new(|v| {
                    v["linux"]["namespaces"] =
                        serde_json::json!([{"type": "mount"}, {"type": "uts"}, {"type": "user"}])
                }),
            ),
            (
                "destination",
                Box::new(|v| {
                    v["mounts"] = serde_json::json!([{"destination": "proc", "type": "proc"}])
                }),
            ),
            (
                "sysctl",
                Box::new(|v| v["linux"]["sysctl"] = serde_json::json!({"net..x": "1"})),
            ),
        ];
        for (needle, mutate) in cases {
            let mut v = base();
            mutate(&mut v);
            let err = check(v).unwrap_err();
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }
}
