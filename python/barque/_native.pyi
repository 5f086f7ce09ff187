"""Private native core of barque (Rust, via PyO3). Not a public API: use barque.Engine.

Every call that does I/O or waits releases the GIL. I/O failures raise OSError(errno, msg, path).
"""

import os
from collections.abc import Sequence
from typing import Literal, Self, TypeAlias, TypedDict, final, type_check_only

# What rust/barque-py/src/lib.rs exports, in its order (tests/test_native_stub.py compares this
# stub with the built module).
__all__ = [
    "cgroup_v2",
    "Cgroup",
    "ContainerError",
    "DigestError",
    "LayerError",
    "exec_process",
    "exec_process_pty",
    "sha256_file",
    "syncfs",
    "unpack_blob",
    "BlobIngest",
    "ZstdLayerWriter",
    "populate_writable_memory",
    "kill",
    "prepare_exec_trampoline",
    "spawn",
    "spawn_terminal",
    "wait",
]

# Type-only names, absent at run time: _Compression, IngestResult, LayerDigests, CgroupStats
# and _Path.
# A path argument is a Rust PathBuf, which takes str or os.PathLike[str] (not bytes). A default
# written `...` is one PyO3 does not show (a Rust constant or Vec::new()); its comment says it.
_Path: TypeAlias = str | os.PathLike[str]

_Compression: TypeAlias = Literal["gzip", "zstd", "none", "auto"]

class LayerError(ValueError):
    """A layer is malformed or hostile (path escape, forged xattr, corrupt stream, bomb...).

    The message names the offending tar entry where there is one.
    """

class DigestError(ValueError):
    """Content did not match its expected sha256 digest or size."""

@type_check_only
class IngestResult(TypedDict):
    digest: str          # "sha256:<hex>" of the compressed blob as received
    size: int            # bytes of the compressed blob
    diff_id: str | None  # "sha256:<hex>" of the uncompressed tar, None when not unpacked
    unpacked_bytes: int  # sum of regular file sizes written (0 when not unpacked)
    entries: int         # tar entries processed (0 when not unpacked)

@final
class BlobIngest:
    """One blob streamed once: sha256 -> append to an ingest file -> (decompress -> sha256 -> untar).

    If ``partial_path`` already holds bytes (an interrupted earlier pull), they are hashed and
    fed through the unpacker first, so ``offset`` is where an HTTP Range request resumes (a file
    longer than ``expected_size`` is emptied instead). The ingest file is created mode 0600.
    Unpacking runs on a background thread; its errors surface from ``write`` (OS errors) or
    ``finish`` (bad layers, see ``write``).

    ``max_bytes`` bounds the uncompressed tar stream and ``max_entries`` its entries (bomb guards).
    An unknown ``compression`` raises ValueError; a malformed ``expected_digest`` or
    ``expected_diff_id`` raises DigestError. After ``finish``, ``abort`` or any error the object is
    closed: further ``write``/``finish`` calls raise ValueError. A LayerError or DigestError deletes
    the partial file (those bytes can never become valid); an OSError keeps it for a resume.

    ``writeback=True`` starts writing the blob and the large unpacked files to disk as they
    arrive, so that ``finish(sync=True)`` finds little left to flush. Without it (the default,
    what pulls use) the kernel's flusher writes them in the background, off the critical path.
    """

    def __new__(
        cls,
        partial_path: _Path,
        expected_digest: str,
        expected_size: int | None = None,
        *,
        unpack_dir: _Path | None = None,
        compression: _Compression = "auto",
        expected_diff_id: str | None = None,
        max_bytes: int = ...,  # 64 GiB
        max_entries: int = ...,  # 2_000_000
        writeback: bool = False,
    ) -> Self: ...
    @property
    def offset(self) -> int:
        """Bytes of the blob already received (persisted in ``partial_path``)."""
    def write(self, data: bytes) -> None:
        """Append a chunk. Raises DigestError past ``expected_size``, OSError if the unpacker hit one.

        A layer found bad while unpacking is reported by ``finish`` once every byte is in: as
        DigestError when they do not match the digest (damaged in transit), else LayerError. So a
        corrupt download is never mistaken for a hostile layer (the unpacker stops at once).
        """
    def finish(self, blob_path: _Path, *, sync: bool = True) -> IngestResult:
        """Verify size and digest, wait for the unpacker, verify the DiffID, fsync the unpacked tree
        (one syncfs) and the blob, then rename ``partial_path`` to ``blob_path`` atomically.

        With ``sync=False`` the verification is the same but nothing is flushed or renamed: the
        complete, verified blob stays at ``partial_path`` (``blob_path`` is not used or created) and
        the unpacked tree is not synced. The caller then makes both durable (``syncfs`` on the
        store, once for any number of layers), renames ``partial_path`` to the blob path and
        fsyncs that directory. A crash before that leaves a complete partial file, which the next
        BlobIngest on it re-verifies (``offset`` equals its size).

        On a digest, size or DiffID mismatch (DigestError) or a bad layer (LayerError) the partial
        file is deleted (it can never become valid).
        """
    def abort(self) -> None:
        """Stop the unpacker and close files; the partial file is kept for a later resume."""

def unpack_blob(
    blob_path: _Path,
    unpack_dir: _Path,
    *,
    compression: _Compression = "auto",
    expected_diff_id: str | None = None,
    max_bytes: int = ...,  # 64 GiB
    max_entries: int = ...,  # 2_000_000
    sync: bool = True,
) -> IngestResult:
    """Unpack a blob already in the store into ``unpack_dir`` (which must exist and be empty,
    else OSError ENOTEMPTY), verifying the DiffID; ``digest``/``size`` in the result describe the
    blob file. With ``sync`` (the default) the unpacked tree is made durable (one syncfs) before
    returning; with ``sync=False`` it is not, and the caller must ``syncfs`` before relying on it."""

def syncfs(path: _Path) -> None:
    """syncfs(2) on the filesystem holding ``path`` (a file or directory): everything written to
    that filesystem so far becomes durable. Releases the GIL; raises OSError(errno, msg, path)."""

def sha256_file(path: _Path) -> str:
    """"sha256:<hex>" of a file's content."""

@type_check_only
class LayerDigests(TypedDict):
    diff_id: str  # "sha256:<hex>" of the uncompressed tar
    digest: str   # "sha256:<hex>" of the compressed blob
    size: int     # bytes of the compressed blob

@final
class ZstdLayerWriter:
    """A binary sink for an uncompressed layer tar: writes it zstd-compressed to ``path``
    (created mode 0600, or emptied), hashing the tar (DiffID) and the blob in the same pass.

    Reproducible: the same tar gives the same blob however it is chunked into ``write``. After
    ``finish``, ``abort`` or an error, ``write``/``finish`` raise ValueError. I/O failures raise
    OSError.
    """

    def __new__(cls, path: _Path, *, level: int = ...) -> Self: ...  # level 3
    def write(self, data: bytes) -> int:
        """Compress a chunk of the tar; returns ``len(data)``."""
    def finish(self) -> LayerDigests:
        """End the zstd frame and flush the file (no fsync)."""
    def abort(self) -> None:
        """Close without finishing and delete the file."""

# --- Containers (OCI runtime bundles) ------------------------------------------------------

class ContainerError(RuntimeError):
    """A container could not be started (or waited for); the message names the cause and path.

    ``exit_code`` follows Docker: 127 when the executable is not found ("executable file not
    found in $PATH", or ENOENT for an explicit path), 126 when it exists but cannot be executed
    (permission denied, exec format error...), 125 for every other failure (bad spec, mount,
    working directory, user, seccomp...). ``errno`` is the OS error number when there is one,
    ``path`` the file or directory involved (inside the container for child-side failures).
    """

    exit_code: int
    errno: int | None
    path: str | None

def spawn(
    bundle_dir: _Path,
    *,
    stdin_fd: int = 0,
    stdout_fd: int = 1,
    stderr_fd: int = 2,
    pid_file: _Path | None = None,
    cgroup_procs: Sequence[_Path] = ...,  # none
    seccomp_cache_dir: _Path | None = None,
) -> int:
    """Start the container of the OCI bundle ``bundle_dir`` and return its init's host pid once
    ``process.args`` has been exec'd (the caller then owns the child: ``wait`` for it).

    ``bundle_dir/config.json`` is an OCI runtime spec 1.x. ``root.path`` (relative to the bundle)
    is either an existing directory, or, with the annotations ``org.barque.overlay.lower``
    (colon-separated lower dirs, top first), ``org.barque.overlay.upper`` and
    ``org.barque.overlay.work``, the mount point of an overlay assembled inside the container's
    mount namespace (created if missing; upper/work may both be omitted for a read-only overlay
    of at least two lowers). Relative annotation paths are relative to the bundle.

    Supported: namespaces mount (required), uts, ipc, pid, network, cgroup, each new or joined by
    ``path`` (except pid); ``mounts`` (any filesystem type, ``bind``/``rbind`` with mount(8)
    flags and propagation; cgroup mounts are skipped for now), completed with Docker's
    defaults for any of /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys (ro) the spec lacks;
    a fresh /dev gets null, zero, full, random, urandom, tty, ``linux.devices`` and the usual
    symlinks; ``maskedPaths``/``readonlyPaths``; ``root.readonly``; ``rootfsPropagation``
    (default rslave); ``hostname``/``domainname``; ``linux.sysctl``; ``process`` user (uid, gid,
    additionalGids, umask), env, cwd (created if missing, resolved inside the rootfs; one that
    leaves it, e.g. ``/proc/self/fd/N``, is refused), rlimits (clamped to the current hard
    limit), capabilities (all five sets), noNewPrivileges and ``linux.seccomp`` (compiled with
    libseccomp before the fork). Only fds 0-2 reach the container. Refused with ContainerError
    (125): user/time namespaces, hooks, ``process.terminal``
    (use ``spawn_terminal``), seccomp notify.

    ``stdin_fd``/``stdout_fd``/``stderr_fd`` are descriptors of the caller that become the
    container's 0, 1 and 2 (they are not closed in the caller). ``pid_file`` receives the pid.
    ``cgroup_procs`` are ``cgroup.procs`` files (of cgroups the caller created and configured)
    that the init joins as its first step, before a new cgroup namespace is entered (so its
    root is the container's cgroup); they are opened before clone, and a failure to open one
    or to join is a ContainerError (125). ``linux.resources`` of the spec is not applied here.
    A seccomp profile is compiled once per process (kept in memory by a key over the profile,
    the architecture and the libseccomp version); with ``seccomp_cache_dir`` (created 0700 if
    missing) the raw BPF is also kept as ``<dir>/<sha256 key>.bpf`` for later processes. A
    cache file that is unreadable or not a BPF program is compiled again and replaced; one that
    cannot be written does not fail the start. Whoever can write that directory chooses every
    container's filter: keep it private to the engine's root.
    Raises ContainerError for any failure, including those inside the container before exec,
    which the init reports over a close-on-exec pipe. Releases the GIL.
    """

def wait(pid: int) -> int:
    """Wait for the container init ``pid`` (reaping it); return its exit code, or 128 + the
    number of the signal that killed it, as a shell does. Raises ContainerError (e.g. ECHILD
    for a pid that is not our child). Releases the GIL."""

def kill(pid: int, sig: int) -> None:
    """Send signal ``sig`` to ``pid``; ContainerError (with ``errno``) on failure. In a new pid
    namespace the init is PID 1: signals it has no handler for are ignored, except SIGKILL."""

def exec_process(
    container_pid: int,
    process_json: _Path,
    *,
    seccomp_json: _Path | None = None,
    stdin_fd: int = 0,
    stdout_fd: int = 1,
    stderr_fd: int = 2,
    cgroup_procs: Sequence[_Path] = ...,  # none
    terminal: bool = False,
    seccomp_cache_dir: _Path | None = None,
) -> int:
    """Start one more process in the running container whose init is ``container_pid`` (as
    ``docker exec`` / ``runc exec --process``) and return its host pid once it has exec'd. It is
    the caller's child: ``wait`` for it, ``kill`` it.

    ``process_json`` is the path of a file holding an OCI ``process`` object (JSON); honoured:
    ``args``, ``env`` (``PATH`` drives the lookup of ``args[0]``), ``cwd`` (must exist; resolved
    inside the container's root, never through a symlink or /proc magic link out of it),
    ``user`` (uid, gid, additionalGids, umask), ``capabilities`` (all five sets),
    ``noNewPrivileges``, ``rlimits`` (clamped to the current hard limit) and ``terminal``.
    ``commandLine`` is refused; other fields are ignored. ``seccomp_json`` is the path of an
    OCI ``linux.seccomp`` object to load (None: no filter). Pass the container's own settings
    to give the process the init's privileges.

    The process joins the ipc, uts, net, pid, cgroup and mount namespaces of ``container_pid``
    that differ from the caller's (a container sharing the host's network stays in it) and
    the cgroups whose ``cgroup.procs`` files are listed in ``cgroup_procs`` (nothing is
    joined when it is empty). ``stdin_fd``/``stdout_fd``/``stderr_fd`` become its 0, 1 and 2
    (not closed in the caller); no other descriptor reaches it. With ``terminal`` (or
    ``terminal: true`` in the JSON) it starts a new session whose controlling terminal is fd 0,
    which must then be a terminal (the slave of a pty).

    Raises ContainerError with Docker's ``exit_code``: 127 when ``args[0]`` is not found
    ("exec: \"X\": executable file not found in $PATH"), 126 when it cannot be executed, 125
    otherwise, e.g. a ``container_pid`` that is not running (message naming the pid, ``errno``
    ESRCH) or a missing working directory. Releases the GIL.
    """

def exec_process_pty(
    container_pid: int,
    process_json: _Path,
    *,
    seccomp_json: _Path | None = None,
    cgroup_procs: Sequence[_Path] = ...,  # none
    size: tuple[int, int] | None = None,
    seccomp_cache_dir: _Path | None = None,
) -> tuple[int, int]:
    """As ``exec_process``, on a new pty that the process opens in the container's own devpts
    (``/dev/pts/ptmx`` of its mount namespace, so ``tty`` inside prints ``/dev/pts/N``), of
    ``size`` (rows, cols) before the program runs; the pty is its controlling terminal and its
    0, 1 and 2, owned by its uid. ``/dev/console`` is left alone. Returns ``(pid, master_fd)``:
    the master is close-on-exec and the caller's to relay, resize and close. Releases the GIL.
    """

def spawn_terminal(
    bundle_dir: _Path,
    *,
    pid_file: _Path | None = None,
    cgroup_procs: Sequence[_Path] = ...,  # none
) -> tuple[int, int]:
    """Start the container of a bundle whose spec has ``process.terminal: true``, as ``spawn``;
    return ``(pid, master_fd)``. The master of the container's pty is a close-on-exec
    descriptor the caller owns (read the terminal's output from it, write its input to it,
    ``TIOCSWINSZ`` on it resizes; closing it hangs the terminal up).

    The pty is made inside the container, on its own ``newinstance`` devpts at /dev/pts (the
    spec must mount one; ``/dev/ptmx`` is its ``pts/ptmx``): the slave is bound onto
    /dev/console, owned by ``process.user.uid`` when that is not root, and becomes the init's
    controlling terminal (the init is a session leader) and its stdin, stdout and stderr.
    A spec without ``process.terminal`` raises ContainerError (125), as ``spawn`` does for one
    with it. Releases the GIL.
    """

def prepare_exec_trampoline() -> None:
    """Make this process's sealed memfd copy of ``barque-trampoline`` (the static helper every
    container command is exec'd through, so ``/proc/self/exe`` is never a host binary) now,
    for forks to inherit; ``spawn`` and ``exec_process`` otherwise make it on first use. Raises
    ContainerError (exit_code 125) if the helper is not found."""

def populate_writable_memory(stop_when_readable: int | None = None) -> int:
    """Copy every present page of this process's private writable mappings now (breaking
    copy-on-write sharing with the parent ahead of use), stopping early once the descriptor
    ``stop_when_readable`` has input; returns the number of pages populated, 0 where the kernel
    lacks ``MADV_POPULATE_WRITE``. Releases the GIL. Raises OSError if
    ``/proc/self/maps`` or ``/proc/self/pagemap`` cannot be read."""

def cgroup_v2() -> bool:
    """Whether the host is a pure cgroup v2 one (the unified hierarchy at /sys/fs/cgroup); read
    once per process."""

@type_check_only
class CgroupStats(TypedDict):
    memory_usage: int | None  # bytes charged to the cgroup
    memory_limit: int | None  # bytes; None when unlimited
    cpu_usage_ns: int | None  # CPU time of its tasks (v1: its cpuacct directory)
    pids_current: int | None
    pids_limit: int | None    # None when unlimited

@final
class Cgroup:
    """One container's cgroup by its cgroupsPath (the service's ``/barque/<id>``, under each
    hierarchy's root): one directory per cgroup v1 hierarchy of memory, pids, cpu, cpuacct,
    freezer and devices the host mounts, or one in the unified tree of a pure v2 host.

    ``Cgroup(path)`` is the cgroup as it exists now (possibly none of its directories). Usage
    errors (a limit whose controller is missing, a malformed device rule, ``..`` in ``path``,
    no freezer) raise ValueError; the kernel's, OSError(errno, strerror, path). Every method
    that touches the cgroup releases the GIL.
    """

    def __new__(cls, path: _Path) -> Self: ...
    @staticmethod
    def create(
        path: _Path,
        *,
        memory: int | None = None,
        memory_swap: int | None = None,
        swap_where_accounted: bool = False,
        pids: int | None = None,
        cpu_quota: int | None = None,
        cpu_period: int | None = None,
        devices: Sequence[tuple[bool, str]] = ...,  # ()
        replace: bool = False,
    ) -> Cgroup:
        """Create the cgroup (directories that exist are kept) with these limits, in the OCI
        spec's units: ``memory`` bytes, ``memory_swap`` memory + swap bytes (applied only where
        the host accounts swap with ``swap_where_accounted``), ``pids`` (<= 0: unlimited),
        ``cpu_quota``/``cpu_period`` microseconds; on v2 the memory, pids and cpu controllers
        are enabled in each ancestor. ``devices``: ``(allow, "TYPE MAJOR:MINOR ACCESS")`` rules
        in cgroup v1's syntax applied in order (v1 files, or a v2 BPF program). ``replace``
        removes a leftover first. On failure nothing made stays."""
    @property
    def v2(self) -> bool: ...
    @property
    def dirs(self) -> list[tuple[str, str]]:
        """``(controllers, directory)``: ``"cpu,cpuacct"`` where the host mounts them together,
        ``"unified"`` on v2."""
    @property
    def procs(self) -> list[str]:
        """The ``cgroup.procs`` files a process joins the cgroup by."""
    def pids(self) -> list[int]:
        """The host pids of every process in the cgroup, in order."""
    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of the cgroup (``oom_kill`` of
        v1's ``memory.oom_control`` or v2's ``memory.events``)."""
    def freeze(self, frozen: bool, timeout: float = 5.0) -> None:
        """Freeze (``docker pause``) or thaw every process, waiting up to ``timeout`` seconds
        for the kernel to report it (else OSError ETIMEDOUT). ValueError without a freezer."""
    def remove(self, timeout: float = 2.0) -> None:
        """Remove the directories, retrying one still busy with exiting tasks for up to
        ``timeout`` seconds; every one is tried, the first failure raised."""
    def stats(self) -> CgroupStats:
        """The usage counters the kernel keeps for the cgroup now."""
