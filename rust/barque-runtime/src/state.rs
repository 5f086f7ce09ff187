//! A container's record: `<root>/<id>/state.json`, written atomically (a temp file renamed
//! over it), and its status derived from the live process: the init pid and its kernel start
//! time are recorded, so a reused pid is not mistaken for the container.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const OCI_VERSION: &str = "1.0.2";
/// The fifo an init created by `create` waits on; `start` writes to it and removes it.
pub const EXEC_FIFO: &str = "exec.fifo";
const STATE_FILE: &str = "state.json";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "container id {0:?} is invalid (letters, digits, '_', '+', '-', '.'; not '.' or '..')"
    )]
    InvalidId(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {0} already exists")]
    Exists(String),
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: corrupt state: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_owned();
    move |source| StateError::Io { op, path, source }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// What `state.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot).
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339, UTC.
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The cgroup directories made for the container (removed by `delete`).
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    /// `run` without `-d` owns the container: nothing to start.
    #[serde(default)]
    pub started: bool,
    /// The spec's hooks (poststart and poststop run after `create` returned).
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

/// Which process a record refers to, as `/proc` says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// No such pid, a zombie, or another process that reused the pid.
    Gone,
    Alive,
}

/// `/proc/<pid>/stat`'s state letter and start time.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses a `/proc/<pid>/stat` line: the command may contain spaces and parentheses, so the
/// fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<(char, u64)> {
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 3.. here; start time is field 22, i.e. the 20th after the state.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

pub fn liveness(pid: i32, start_time: u64, stat: Option<(char, u64)>) -> Liveness {
    match stat {
        _ if pid <= 0 => Liveness::Gone,
        Some((state, start)) if start == start_time && state != 'Z' && state != 'X' => {
            Liveness::Alive
        }
        _ => Liveness::Gone,
    }
}

/// The OCI status: a live init still waiting on its fifo is `created`.
pub fn status(live: Liveness, fifo_exists: bool) -> Status {
    match (live, fifo_exists) {
        (Liveness::Gone, _) => Status::Stopped,
        (Liveness::Alive, true) => Status::Created,
        (Liveness::Alive, false) => Status::Running,
    }
}

/// runc's rule for ids.
pub fn check_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_owned()))
    }
}

/// The state directory of one container.
#[derive(Debug, Clone)]
pub struct Dir {
    pub id: String,
    pub path: PathBuf,
}

impl Dir {
    pub fn of(root: &Path, id: &str) -> Result<Dir, StateError> {
        check_id(id)?;
        Ok(Dir {
            id: id.to_owned(),
            path: root.join(id),
        })
    }

    /// Makes the directory (mode 0700, the root 0711): fails if the container exists.
    pub fn create(&self, root: &Path) -> Result<(), StateError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .map_err(io("create", root))?;
        match std::fs::DirBuilder::new().mode(0o700).create(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StateError::Exists(self.id.clone()))
            }
            Err(e) => Err(io("create", &self.path)(e)),
        }
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn save(&self, record: &Record) -> Result<(), StateError> {
        let path = self.path.join(STATE_FILE);
        let tmp = self.path.join(".state.json.tmp");
        let data = serde_json::to_vec(record).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&data).map_err(io("write", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io("rename into", &path))
    }

    pub fn load(&self) -> Result<Record, StateError> {
        let path = self.path.join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(self.id.clone()))
            }
            Err(e) => return Err(io("read", &path)(e)),
        };
        serde_json::from_slice(&data).map_err(|source| StateError::Corrupt { path, source })
    }

    /// The record and the status derived from the live process.
    pub fn current(&self) -> Result<(Record, Status), StateError> {
        let record = self.load()?;
        let live = liveness(record.pid, record.start_time, proc_stat(record.pid));
        let status = status(live, self.fifo().exists());
        Ok((record, status))
    }

    pub fn remove(&self) -> Result<(), StateError> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &self.path)(e)),
        }
    }
}

/// Every container directory under `root` (none when it does not exist).
pub fn list(root: &Path) -> Result<Vec<Dir>, StateError> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", root)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("read", root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().join(STATE_FILE).exists() {
            if let Ok(d) = Dir::of(root, &name) {
                out.push(d);
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The OCI state document.
pub fn oci_state(record: &Record, status: Status) -> serde_json::Value {
    let pid = if status == Status::Stopped {
        0
    } else {
        record.pid
    };
    let mut v = serde_json::json!({
        "ociVersion": OCI_VERSION,
        "id": record.id,
        "pid": pid,
        "status": status.as_str(),
        "bundle": record.bundle,
        "rootfs": record.rootfs,
        "created": record.created,
        "owner": record.owner,
    });
    if !record.annotations.is_empty() {
        v["annotations"] = serde_json::json!(record.annotations);
    }
    v
}

/// Now as RFC 3339 (UTC, nanoseconds), without a date crate.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Record {
        Record {
            id: id.into(),
            pid: 42,
            start_time: 1000,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2024-01-01T00:00:00.000000000Z".into(),
            owner: "".into(),
            annotations: BTreeMap::from([("k".into(), "v".into())]),
            cgroups: vec!["/sys/fs/cgroup/pids/c".into()],
            started: false,
            hooks: None,
        }
    }

    #[test]
    fn save_load_roundtrip_atomically() {
        let root = tempfile::tempdir().unwrap();
        let dir = Dir::of(root.path(), "c1").unwrap();
        dir.create(root.path()).unwrap();
        assert!(matches!(
            dir.create(root.path()),
            Err(StateError::Exists(_))
        ));
        dir.save(&record("c1")).unwrap();
        let mut r = record("c1");
        r.pid = 43;
        dir.save(&r).unwrap();
        assert_eq!(dir.load().unwrap(), r);
        // Only the record: the temp file was renamed over it.
        let names: Vec<_> = std::fs::read_dir(&dir.path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        assert_eq!(list(root.path()).unwrap().len(), 1);
        dir.remove().unwrap();
        assert!(matches!(dir.load(), Err(StateError::NotFound(_))));
        assert!(list(root.path()).unwrap().is_empty());
    }

    #[test]
    fn corrupt_state_is_reported_with_its_path() {
        let root = tempfile::tempdir().unwrap();
        let dir = Dir::of(root.path(), "c").unwrap();
        dir.create(root.path()).unwrap();
        std::fs::write(dir.path.join("state.json"), "{").unwrap();
        let err = dir.load().unwrap_err();
        assert!(err.to_string().contains("state.json"), "{err}");
    }

    #[test]
    fn ids() {
        for ok in ["a", "abc-1.2_x+y", "A9"] {
            check_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 98765)));
        assert_eq!(parse_stat("garbage"), None);
        let me = proc_stat(std::process::id() as i32).unwrap();
        assert!(me.1 > 0);
    }

    #[test]
    fn status_from_the_live_process() {
        assert_eq!(liveness(42, 1000, Some(('S', 1000))), Liveness::Alive);
        // A zombie, a reused pid, a vanished one, a record without a pid.
        assert_eq!(liveness(42, 1000, Some(('Z', 1000))), Liveness::Gone);
        assert_eq!(liveness(42, 1000, Some(('S', 2000))), Liveness::Gone);
        assert_eq!(liveness(42, 1000, None), Liveness::Gone);
        assert_eq!(liveness(0, 0, Some(('S', 0))), Liveness::Gone);
        assert_eq!(status(Liveness::Alive, true), Status::Created);
        assert_eq!(status(Liveness::Alive, false), Status::Running);
        assert_eq!(status(Liveness::Gone, true), Status::Stopped);
    }

    #[test]
    fn oci_state_document() {
        let v = oci_state(&record("c"), Status::Running);
        assert_eq!(v["status"], "running");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["annotations"]["k"], "v");
        assert_eq!(oci_state(&record("c"), Status::Stopped)["pid"], 0);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_700_000_000, 0), "2023-11-14T22:13:20.000000000Z");
    }
}
