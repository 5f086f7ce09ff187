//! The one JSON line the starting process prints: `{"pid": N, "shim_pid": M}` or
//! `{"error": "...", "exit_code": 125|126|127, "errno": N|null, "path": "..."|null}`.

use barque_container::container::ContainerError;

use serde::Serialize;

use crate::json;

#[derive(Serialize)]
struct Started {
    pid: libc::pid_t,
    shim_pid: libc::pid_t,
}

#[derive(Serialize)]
struct Failed<'a> {
    error: &'a str,
    exit_code: i32,
    errno: Option<i32>,
    path: Option<&'a str>,
}

pub fn started(pid: libc::pid_t, shim_pid: libc::pid_t) -> String {
    json::record_line(&Started { pid, shim_pid })
}

pub fn error(message: &str, exit_code: i32, errno: Option<i32>, path: Option<&str>) -> String {
    json::record_line(&Failed {
        error: &message.replace('\n', " "),
        exit_code,
        errno,
        path,
    })
}

pub fn container_error(e: &ContainerError) -> String {
    let path = e.path().map(|p| p.to_string_lossy().into_owned());
    error(&e.to_string(), e.exit_code(), e.errno(), path.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(started(12, 34), "{\"pid\": 12, \"shim_pid\": 34}\n");
        assert_eq!(
            error("exec: \"nope\": not found\nx", 127, Some(2), Some("nope")),
            "{\"error\": \"exec: \\\"nope\\\": not found x\", \"exit_code\": 127, \"errno\": 2, \"path\": \"nope\"}\n"
        );
        assert_eq!(
            error("bad", 125, None, None),
            "{\"error\": \"bad\", \"exit_code\": 125, \"errno\": null, \"path\": null}\n"
        );
    }
}
