//! OCI hooks that run in the runtime's namespaces: `prestart` (deprecated) and
//! `createRuntime` once the container is created (its init blocked before exec), `poststart`
//! after `start`, `poststop` after `delete`. Each gets the state JSON on stdin, its own `env`
//! only, and `timeout` seconds. `createContainer` and `startContainer` would have to run inside
//! the container's namespaces: refused by [`crate::validate`].

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {}: cannot run it: {source}", path.display())]
    Spawn {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} hook {} failed ({status}){}", path.display(), stderr_suffix(.stderr))]
    Failed {
        kind: &'static str,
        path: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("{kind} hook {} timed out after {secs} s", path.display())]
    Timeout {
        kind: &'static str,
        path: PathBuf,
        secs: i64,
    },
}

fn stderr_suffix(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

/// Runs one hook to completion.
pub fn run_one(kind: &'static str, hook: &Hook, state: &str) -> Result<(), HookError> {
    let path = hook.path().clone();
    let mut cmd = Command::new(&path);
    let args = hook.args().clone().unwrap_or_default();
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| HookError::Spawn {
            kind,
            path: path.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => return Err(HookError::Spawn { kind, path, source }),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout {
                kind,
                path,
                secs: hook.timeout().unwrap_or_default(),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    Err(HookError::Failed {
        kind,
        path,
        status: status.to_string(),
        stderr,
    })
}

/// Runs `hooks` in order, stopping at the first failure.
pub fn run(kind: &'static str, hooks: Option<&Vec<Hook>>, state: &str) -> Result<(), HookError> {
    for h in hooks.into_iter().flatten() {
        run_one(kind, h, state)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(v: serde_json::Value) -> Hook {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_hook_gets_the_state_on_stdin_and_only_its_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}; echo \"$A|$HOME\" >> {}", out.display(), out.display())],
            "env": ["A=1"],
        }));
        run("poststart", Some(&vec![h]), "{\"id\":\"c\"}").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"c\"}1|\n");
    }

    #[test]
    fn failures_and_timeouts_name_the_hook() {
        let h = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}),
        );
        let err = run_one("prestart", &h, "{}").unwrap_err().to_string();
        assert!(
            err.contains("prestart hook /bin/sh failed") && err.contains("nope"),
            "{err}"
        );
        let h =
            hook(serde_json::json!({"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}));
        let t = Instant::now();
        let err = run_one("createRuntime", &h, "{}").unwrap_err().to_string();
        assert!(err.contains("timed out after 1 s"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(3));
        let h = hook(serde_json::json!({"path": "/nonexistent/hook"}));
        assert!(matches!(
            run_one("poststop", &h, "{}"),
            Err(HookError::Spawn { .. })
        ));
    }
}
