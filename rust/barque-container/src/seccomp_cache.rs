//! Compiled seccomp programs, kept so a profile is compiled once rather than per container.
//!
//! libseccomp takes milliseconds to turn Docker's profile into BPF, and every container of a
//! machine uses the same profile. A program is found by a key that covers everything its bytes
//! depend on (the profile, the architecture, the libseccomp build and the kernel API level it
//! detected, this file's format), first in this process's memory, then, when the caller names a
//! directory, in `<dir>/<key>.bpf`: the raw program exactly as the kernel takes it. A file that
//! cannot be read or does not look like a program is compiled again and replaced; a file that
//! cannot be written only costs the next process a compile, so it never fails a start.

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest as _, Sha256};

use crate::seccomp::SeccompError;

/// Bumped whenever what a key covers or what a file holds changes.
const FORMAT: &str = "barque-seccomp-bpf-2"; // 2: compiled as a binary tree
/// The kernel's limit on a classic BPF program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;
const INSN_LEN: usize = std::mem::size_of::<libc::sock_filter>();
/// `BPF_CLASS(code) == BPF_RET`: the kernel refuses a program that does not end in a return.
const BPF_CLASS_MASK: u16 = 0x07;
const BPF_RET: u16 = 0x06;

pub type Program = Arc<[libc::sock_filter]>;

/// Where a program came from (for tests and timing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Memory,
    Disk,
    Compiled,
}

/// The programs this process has seen, by key.
#[derive(Default)]
pub struct Cache {
    programs: Mutex<HashMap<String, Program>>,
}

/// The cache every spawn of this process shares.
pub static PROCESS: LazyLock<Cache> = LazyLock::new(Cache::default);

/// The cache key of `spec` on this machine: 64 hex digits.
pub fn key(spec: &LinuxSeccomp) -> Result<String, SeccompError> {
    // Serialising the parsed profile (not the bundle's bytes) is canonical: fields in declaration
    // order, no whitespace, unknown keys (which cannot change the program) dropped.
    let profile = serde_json::to_vec(spec).map_err(|source| SeccompError::Key { source })?;
    let version = libseccomp::ScmpVersion::current().map_err(|source| SeccompError::Lib {
        what: "read the library version".into(),
        source,
    })?;
    let mut h = Sha256::new();
    // NUL-separated: none of the parts can contain one (JSON escapes it).
    for part in [
        FORMAT.as_bytes(),
        std::env::consts::ARCH.as_bytes(),
        format!("{}.{}.{}", version.major, version.minor, version.micro).as_bytes(),
        // libseccomp picks instructions by the API level it detects from the kernel.
        libseccomp::get_api().to_string().as_bytes(),
        &profile,
    ] {
        h.update(part);
        h.update([0u8]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl Cache {
    /// The program for `spec`: from memory, from `dir`, or from `compile` (then kept in both).
    pub fn get(
        &self,
        spec: &LinuxSeccomp,
        dir: Option<&Path>,
        compile: impl FnOnce() -> Result<Vec<libc::sock_filter>, SeccompError>,
    ) -> Result<(Program, Source), SeccompError> {
        let key = key(spec)?;
        if let Some(p) = self.lock().get(&key) {
            return Ok((p.clone(), Source::Memory));
        }
        let path = dir.map(|d| d.join(format!("{key}.bpf")));
        let from_disk = path.as_deref().and_then(|p| read(p).ok());
        let (program, source) = match from_disk {
            Some(p) => (p, Source::Disk),
            None => {
                let p: Program = compile()?.into();
                if let (Some(dir), Some(path)) = (dir, path.as_deref()) {
                    // Best effort, see the module comment.
                    let _ = write(dir, path, &p);
                }
                (p, Source::Compiled)
            }
        };
        // Two threads may compile the same key at once; both results are the same program.
        self.lock().insert(key, program.clone());
        Ok((program, source))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Program>> {
        // A panic while holding the lock cannot leave the map half-updated (one insert).
        self.programs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn cache_io(path: &Path) -> impl FnOnce(std::io::Error) -> SeccompError + '_ {
    move |source| SeccompError::Cache {
        path: path.to_owned(),
        source,
    }
}

/// Reads and checks a cached program; an error means "compile it again".
pub fn read(path: &Path) -> Result<Program, SeccompError> {
    let mut bytes = Vec::new();
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|f| {
            // One byte past the limit is enough to tell a file is too long.
            f.take((MAX_INSNS * INSN_LEN + 1) as u64)
                .read_to_end(&mut bytes)
        })
        .map_err(cache_io(path))?;
    decode(&bytes).ok_or_else(|| SeccompError::CorruptCache {
        path: path.to_owned(),
        len: bytes.len(),
    })
}

/// The instructions of a raw program, if it is one the kernel could take.
fn decode(bytes: &[u8]) -> Option<Program> {
    if bytes.is_empty()
        || !bytes.len().is_multiple_of(INSN_LEN)
        || bytes.len() > MAX_INSNS * INSN_LEN
    {
        return None;
    }
    let program: Program = bytes
        .chunks_exact(INSN_LEN)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let last = program.last()?;
    (last.code & BPF_CLASS_MASK == BPF_RET).then_some(program)
}

fn encode(program: &[libc::sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(program.len() * INSN_LEN);
    for i in program {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.extend_from_slice(&[i.jt, i.jf]);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

/// Writes `program` to `path` atomically: a reader sees the old file, the new one, or none.
pub fn write(dir: &Path, path: &Path, program: &[libc::sock_filter]) -> Result<(), SeccompError> {
    // Whoever can write here chooses every container's filter: private to the owner.
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(cache_io(dir))?;
    // Unique per process and call, so two writers never share a temporary file.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp: PathBuf = dir.join(format!(
        ".{}.{}-{}.tmp",
        path.file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy()),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(&encode(program))?;
        // No fsync: a file lost or torn by a crash fails validation and is compiled again.
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(cache_io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn profile(errno: u32) -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno}]
        }))
        .unwrap()
    }

    fn compiled(spec: &LinuxSeccomp) -> Vec<libc::sock_filter> {
        crate::seccomp::compile(spec).unwrap().program.to_vec()
    }

    #[test]
    fn key_is_stable_and_covers_the_profile() {
        let a = key(&profile(1)).unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, key(&profile(1)).unwrap());
        assert_ne!(a, key(&profile(2)).unwrap());
        // Whitespace, key order and unknown keys in the bundle do not change the key.
        let reordered: LinuxSeccomp = serde_json::from_str(
            r#"{ "syscalls": [{"errnoRet": 1, "action": "SCMP_ACT_ERRNO", "names": ["getpriority"]}],
                 "comment": "ignored", "defaultAction": "SCMP_ACT_ALLOW" }"#,
        )
        .unwrap();
        assert_eq!(a, key(&reordered).unwrap());
    }

    #[test]
    fn memory_hit_skips_compilation() {
        let cache = Cache::default();
        let spec = profile(3);
        let calls = Cell::new(0);
        let compile = || {
            calls.set(calls.get() + 1);
            Ok(compiled(&spec))
        };
        let (first, src) = cache.get(&spec, None, compile).unwrap();
        assert_eq!(src, Source::Compiled);
        let (second, src) = cache.get(&spec, None, || panic!("compiled again")).unwrap();
        assert_eq!(src, Source::Memory);
        assert_eq!(calls.get(), 1);
        assert!(Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn disk_hit_skips_compilation_in_a_new_process() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("seccomp");
        let spec = profile(4);
        let (written, src) = Cache::default()
            .get(&spec, Some(&cache_dir), || Ok(compiled(&spec)))
            .unwrap();
        assert_eq!(src, Source::Compiled);
        let file = cache_dir.join(format!("{}.bpf", key(&spec).unwrap()));
        assert_eq!(
            std::fs::read(&file).unwrap().len(),
            written.len() * INSN_LEN
        );
        // A fresh Cache stands for another process: only the file can answer.
        let (read_back, src) = Cache::default()
            .get(&spec, Some(&cache_dir), || panic!("compiled again"))
            .unwrap();
        assert_eq!(src, Source::Disk);
        assert_eq!(encode(&read_back), encode(&written));
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_file_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let spec = profile(5);
        let good = encode(&compiled(&spec));
        let file = dir.path().join(format!("{}.bpf", key(&spec).unwrap()));
        let too_long = vec![0u8; (MAX_INSNS + 1) * INSN_LEN];
        // Not ending in a return: the first instruction of a real program is a load.
        let no_return = good[..INSN_LEN].to_vec();
        for bad in [&b""[..], &good[..good.len() - 3], &too_long, &no_return] {
            std::fs::write(&file, bad).unwrap();
            assert!(matches!(
                read(&file),
                Err(SeccompError::CorruptCache { .. })
            ));
            let (_, src) = Cache::default()
                .get(&spec, Some(dir.path()), || Ok(compiled(&spec)))
                .unwrap();
            assert_eq!(src, Source::Compiled);
            assert_eq!(std::fs::read(&file).unwrap(), good);
        }
    }

    #[test]
    fn unwritable_directory_does_not_fail() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the directory should be.
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"").unwrap();
        let spec = profile(6);
        let (p, src) = Cache::default()
            .get(&spec, Some(&not_a_dir), || Ok(compiled(&spec)))
            .unwrap();
        assert_eq!(src, Source::Compiled);
        assert!(!p.is_empty());
        assert!(matches!(
            write(&not_a_dir, &not_a_dir.join("x.bpf"), &p),
            Err(SeccompError::Cache { .. })
        ));
    }
}
