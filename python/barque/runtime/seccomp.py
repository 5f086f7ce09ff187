"""Seccomp: Docker's default profile as data, and conversion of Docker-format profiles to OCI.

Two shapes are involved:

*Docker format* (what ``docker run --security-opt seccomp=PROFILE.json`` reads)::

    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
     "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": [...]}],
     # or "architectures": [...] (not both)
     "syscalls": [{"names": [...], "action": ..., "errnoRet": N, "args": [...],
                   "includes": {"caps": [...], "arches": [...], "minKernel": "4.8"},
                   "excludes": {...}}]}

*OCI form* (``linux.seccomp`` in ``config.json``): the same without ``archMap``,
``includes``/``excludes`` and comments; only the rules that apply to this container remain.

A rule applies (Docker's ``setupSeccomp``) unless: an ``excludes`` arch is the host's, any
``excludes`` cap is in the container's bounding set, the kernel is at least ``excludes``'s
``minKernel``; an ``includes`` arch list does not name the host's, any ``includes`` cap is
missing from the bounding set, or the kernel is older than ``includes``'s ``minKernel``.
Arches in filters are Go's names (``amd64``, ``arm64``, ``386``...).

The default profile below is barque's transcription of the allow-list Docker ships
(``profiles/seccomp`` in moby, 2024-era): default ``SCMP_ACT_ERRNO``/EPERM; an unconditional
allow-list grouped by purpose; ``socket`` for every family except ``AF_VSOCK``; ``personality``
only for the harmless personas; ``clone`` without namespace flags and ``clone3`` failing with
ENOSYS (so libc falls back to ``clone``) unless ``CAP_SYS_ADMIN``; and syscalls unlocked by the
capability that guards them in the kernel anyway (``mount`` by SYS_ADMIN, ``ptrace`` by
SYS_PTRACE, ``reboot`` by SYS_BOOT, ...).
"""

from __future__ import annotations

import errno
import functools
import json
import os
from collections.abc import Iterable, Mapping

from ..errors import InvalidArgumentError

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from typing import Any


__all__ = ["default_profile", "default_docker_profile", "convert_docker_profile",
           "normalize_arch", "host_arch", "kernel_version", "ALWAYS_ALLOWED"]

# --- the default profile's data --------------------------------------------------------------

#: Syscalls every container may make, grouped by what they are for (a name appears once).
_ALWAYS: dict[str, str] = {
    "file descriptors and plain I/O": """
        close close_range dup dup2 dup3 read write readv writev pread64 pwrite64 preadv
        preadv2 pwritev pwritev2 lseek _llseek pipe pipe2 sendfile sendfile64 splice tee
        vmsplice copy_file_range readahead fcntl fcntl64 flock ioctl
    """,
    "paths, inodes and file systems": """
        open openat openat2 creat access faccessat faccessat2 stat stat64 lstat lstat64
        fstat fstat64 fstatat64 newfstatat statx statfs statfs64 fstatfs fstatfs64
        chdir fchdir getcwd getdents getdents64 mkdir mkdirat rmdir mknod mknodat
        link linkat symlink symlinkat readlink readlinkat unlink unlinkat
        rename renameat renameat2 truncate truncate64 ftruncate ftruncate64 fallocate
        fadvise64 fadvise64_64 fsync fdatasync sync syncfs sync_file_range
        chmod fchmod fchmodat chown chown32 fchown fchown32 fchownat lchown lchown32
        utime utimes utimensat utimensat_time64 futimesat umask name_to_handle_at
    """,
    "extended attributes": """
        getxattr lgetxattr fgetxattr setxattr lsetxattr fsetxattr listxattr llistxattr
        flistxattr removexattr lremovexattr fremovexattr
    """,
    "waiting for events": """
        select _newselect pselect6 pselect6_time64 poll ppoll ppoll_time64
        epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old
        epoll_pwait epoll_pwait2 eventfd eventfd2 signalfd signalfd4
        inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
        timerfd_create timerfd_settime timerfd_settime64 timerfd_gettime timerfd_gettime64
    """,
    "asynchronous I/O": """
        io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents
        io_pgetevents_time64 io_uring_setup io_uring_enter io_uring_register
        ioprio_get ioprio_set
    """,
    "memory": """
        brk mmap mmap2 munmap mremap mprotect madvise mincore msync remap_file_pages
        mlock mlock2 mlockall munlock munlockall membarrier memfd_create memfd_secret
        pkey_alloc pkey_free pkey_mprotect
    """,
    "processes, threads and limits": """
        fork vfork execve execveat exit exit_group wait4 waitid waitpid
        getpid getppid gettid getpgid getpgrp getsid setpgid setsid
        getpriority setpriority getrlimit ugetrlimit setrlimit prlimit64 getrusage
        prctl capget capset seccomp uname sysinfo getcpu times getrandom
        futex futex_time64 futex_waitv get_robust_list set_robust_list rseq
        get_thread_area set_thread_area set_tid_address restart_syscall
        pidfd_open pidfd_send_signal process_mrelease
        landlock_create_ruleset landlock_add_rule landlock_restrict_self
    """,
    "scheduling": """
        sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr
        sched_getparam sched_setparam sched_getscheduler sched_setscheduler
        sched_get_priority_max sched_get_priority_min
        sched_rr_get_interval sched_rr_get_interval_time64
    """,
    "credentials": """
        getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32
        getresuid getresuid32 getresgid getresgid32 getgroups getgroups32
        setuid setuid32 setgid setgid32 setreuid setreuid32 setregid setregid32
        setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid setfsgid32
        setgroups setgroups32
    """,
    "signals": """
        kill tkill tgkill pause sigaltstack sigprocmask sigreturn
        rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigsuspend
        rt_sigqueueinfo rt_tgsigqueueinfo rt_sigtimedwait rt_sigtimedwait_time64
    """,
    "clocks and timers": """
        time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64
        clock_nanosleep clock_nanosleep_time64 nanosleep alarm getitimer setitimer
        timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
        timer_settime timer_settime64 adjtimex clock_adjtime clock_adjtime64
    """,
    "System V and POSIX IPC": """
        ipc msgget msgctl msgsnd msgrcv semget semctl semop semtimedop semtimedop_time64
        shmget shmctl shmat shmdt mq_open mq_unlink mq_notify mq_getsetattr
        mq_timedsend mq_timedsend_time64 mq_timedreceive mq_timedreceive_time64
    """,
    "sockets (socket itself is a rule of its own)": """
        socketcall socketpair bind listen accept accept4 connect shutdown
        getsockname getpeername getsockopt setsockopt
        send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg recvmmsg_time64
    """,
}

#: Every name of :data:`_ALWAYS`, sorted: the unconditional allow-list.
ALWAYS_ALLOWED: tuple[str, ...] = tuple(sorted({n for block in _ALWAYS.values()
                                                for n in block.split()}))

# (capability or None, names): allowed only when the bounding set has the capability.
_BY_CAPABILITY: tuple[tuple[str, str], ...] = (
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    ("CAP_SYS_ADMIN", """
        bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie
        mount mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd
        setdomainname sethostname setns syslog umount umount2 unshare
    """),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "init_module finit_module delete_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd "
                       "process_madvise"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy set_mempolicy set_mempolicy_home_node mbind"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
)

# (Go arches, names): architecture-specific syscalls.
_BY_ARCH: tuple[tuple[tuple[str, ...], str], ...] = (
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("arm", "arm64"), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint "
                       "cacheflush set_tls"),
    (("ppc64le",), "sync_file_range2 swapcontext"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (("riscv64",), "riscv_flush_icache"),
)

#: personality(2) personas allowed: PER_LINUX, PER_LINUX32 (0x8), UNAME26 (0x20000),
#: UNAME26|PER_LINUX32, and 0xffffffff (the query).
_PERSONAS = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)

_AF_VSOCK = 40
#: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NAMESPACE_FLAGS = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
                          | 0x20000000 | 0x40000000)

#: Go arch -> (native seccomp arch, the sub-architectures a filter must also cover).
_ARCH_MAP: dict[str, tuple[str, tuple[str, ...]]] = {
    "amd64": ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "arm64": ("SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
    "mips64": ("SCMP_ARCH_MIPS64", ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32")),
    "mips64le": ("SCMP_ARCH_MIPSEL64", ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32")),
    "s390x": ("SCMP_ARCH_S390X", ("SCMP_ARCH_S390",)),
    "riscv64": ("SCMP_ARCH_RISCV64", ()),
}

#: Go arch -> its native seccomp arch, for every arch Docker knows.
_NATIVE: dict[str, str] = {
    "386": "SCMP_ARCH_X86", "amd64": "SCMP_ARCH_X86_64", "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64", "mips": "SCMP_ARCH_MIPS", "mipsle": "SCMP_ARCH_MIPSEL",
    "mips64": "SCMP_ARCH_MIPS64", "mips64le": "SCMP_ARCH_MIPSEL64",
    "ppc": "SCMP_ARCH_PPC", "ppc64": "SCMP_ARCH_PPC64", "ppc64le": "SCMP_ARCH_PPC64LE",
    "riscv64": "SCMP_ARCH_RISCV64", "s390": "SCMP_ARCH_S390", "s390x": "SCMP_ARCH_S390X",
    "loong64": "SCMP_ARCH_LOONGARCH64",
}

#: uname -m / Debian / OCI spellings -> Go's GOARCH.
_ARCH_ALIASES: dict[str, str] = {
    "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armv8l": "arm64",
    "i386": "386", "i486": "386", "i586": "386", "i686": "386", "x86": "386",
    "armv6l": "arm", "armv7l": "arm", "armhf": "arm", "armel": "arm",
    "loongarch64": "loong64", "ppc64el": "ppc64le",
}

_ACTIONS = frozenset({
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
})
_OPS = frozenset({"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
                  "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"})
# Top-level keys copied from a Docker profile to the OCI section unchanged.
_PASSTHROUGH = ("defaultErrnoRet", "listenerPath", "listenerMetadata", "flags")


def _rule(names: Iterable[str] | str, action: str = "SCMP_ACT_ALLOW", *,
          args: list[dict[str, Any]] | None = None, errno_ret: int | None = None,
          includes: dict[str, Any] | None = None,
          excludes: dict[str, Any] | None = None) -> dict[str, Any]:
    """One Docker-format rule."""
    rule: dict[str, Any] = {"names": names.split() if isinstance(names, str) else list(names),
                            "action": action}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    if args:
        rule["args"] = args
    if includes:
        rule["includes"] = includes
    if excludes:
        rule["excludes"] = excludes
    return rule


def _arg(index: int, value: int, op: str, value_two: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "value": value, "op": op}
    if value_two:
        out["valueTwo"] = value_two
    return out


def default_docker_profile() -> dict[str, Any]:
    """Docker's default profile in Docker's own format (a fresh, mutable document).

    Handy to write out as a starting point for a custom ``seccomp=PATH`` profile; feeding it to
    :func:`convert_docker_profile` gives exactly :func:`default_profile`.
    """
    rules: list[dict[str, Any]] = [_rule(ALWAYS_ALLOWED)]
    # ptrace became safe to allow once the kernel stopped it bypassing seccomp (4.8).
    rules.append(_rule("process_vm_readv process_vm_writev ptrace",
                       includes={"minKernel": "4.8"}))
    rules.append(_rule("socket", args=[_arg(0, _AF_VSOCK, "SCMP_CMP_NE")]))
    rules.extend(_rule("personality", args=[_arg(0, p, "SCMP_CMP_EQ")]) for p in _PERSONAS)
    rules.extend(_rule(names, includes={"arches": list(arches)}) for arches, names in _BY_ARCH)
    rules.extend(_rule(names, includes={"caps": [cap]}) for cap, names in _BY_CAPABILITY)
    # Without CAP_SYS_ADMIN: clone but never into new namespaces (s390 swaps clone's first
    # two arguments), and clone3 -- whose flags live in memory seccomp cannot read -- fails
    # with ENOSYS so that libc falls back to clone.
    rules.append(_rule("clone", args=[_arg(0, _CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ")],
                       excludes={"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}))
    rules.append(_rule("clone", args=[_arg(1, _CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ")],
                       includes={"arches": ["s390", "s390x"]},
                       excludes={"caps": ["CAP_SYS_ADMIN"]}))
    rules.append(_rule("clone3", "SCMP_ACT_ERRNO", errno_ret=errno.ENOSYS,
                       excludes={"caps": ["CAP_SYS_ADMIN"]}))
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "archMap": [{"architecture": native, "subArchitectures": list(subs)}
                    for native, subs in _ARCH_MAP.values()],
        "syscalls": rules,
    }


# --- host facts ------------------------------------------------------------------------------

def normalize_arch(arch: str) -> str:
    """Go's name for an architecture (``x86_64`` -> ``amd64``, ``aarch64`` -> ``arm64``)."""
    a = arch.strip().lower()
    return _ARCH_ALIASES.get(a, a)


def host_arch() -> str:
    """The host's architecture, in Go's spelling."""
    return normalize_arch(os.uname().machine)


@functools.cache
def kernel_version() -> tuple[int, int]:
    """The running kernel's (major, minor), from ``uname -r`` (``(0, 0)`` if unparsable)."""
    return _parse_kernel(os.uname().release, strict=False)


def _parse_kernel(text: str, *, strict: bool = True) -> tuple[int, int]:
    parts = text.split(".")
    try:
        major = int(parts[0])
        minor = int("".join(c for c in parts[1].split("-")[0] if c.isdigit()) or "x")
    except (IndexError, ValueError):
        if strict:
            raise InvalidArgumentError(
                f"invalid seccomp profile: bad minKernel {text!r} (want 'MAJOR.MINOR')") from None
        return (0, 0)
    return (major, minor)


# --- conversion ------------------------------------------------------------------------------

def _bad(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"invalid seccomp profile: {message}")


def _str_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{what} must be a list of strings")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(f"{what} must be a non-negative integer")
    return value


def _filter(value: Any, what: str) -> tuple[list[str], list[str], tuple[int, int] | None]:
    if value is None:
        return [], [], None
    if not isinstance(value, dict):
        raise _bad(f"{what} must be an object")
    min_kernel = value.get("minKernel")
    if min_kernel is not None and not isinstance(min_kernel, str):
        raise _bad(f"{what}.minKernel must be a string like '4.8'")
    return (_str_list(value.get("caps"), f"{what}.caps"),
            _str_list(value.get("arches"), f"{what}.arches"),
            _parse_kernel(min_kernel) if min_kernel else None)


def _oci_args(value: Any, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(f"{where}: args must be a list")
    out = []
    for a in value:
        if not isinstance(a, dict):
            raise _bad(f"{where}: each arg must be an object")
        op = a.get("op")
        if op not in _OPS:
            raise _bad(f"{where}: unknown op {op!r}")
        arg: dict[str, Any] = {"index": _int(a.get("index", 0), f"{where}: index"),
                               "value": _int(a.get("value", 0), f"{where}: value"), "op": op}
        if a.get("valueTwo"):
            arg["valueTwo"] = _int(a["valueTwo"], f"{where}: valueTwo")
        out.append(arg)
    return out


def convert_docker_profile(doc: Mapping[str, Any], caps: Iterable[str], arch: str | None = None,
                           kernel: tuple[int, int] | None = None) -> dict[str, Any] | None:
    """Turn a Docker-format profile into the OCI ``linux.seccomp`` section for one container.

    ``caps`` is the container's final bounding set (``CAP_``-prefixed names), ``arch`` the
    host architecture in any common spelling (default: this host), ``kernel`` the (major,
    minor) that ``minKernel`` filters compare with (default: the running kernel).

    Returns ``None`` for a profile with neither ``defaultAction`` nor ``syscalls`` (Docker runs
    such a container without a filter). Raises :class:`~barque.errors.InvalidArgumentError`
    for a malformed profile: both ``architectures`` and ``archMap``, a rule with both
    ``name`` and ``names`` or with neither, an unknown action or operator, bad types.
    The input is not modified and the result shares nothing with it.
    """
    if not isinstance(doc, Mapping):
        raise _bad("the document must be a JSON object")
    syscalls = doc.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise _bad("syscalls must be a list")
    default_action = doc.get("defaultAction") or ""
    if not default_action and not syscalls:
        return None
    if default_action not in _ACTIONS:
        raise _bad(f"unknown defaultAction {default_action!r}")
    if doc.get("architectures") and doc.get("archMap"):
        raise _bad("both 'architectures' and 'archMap' are specified, use one")

    go_arch = normalize_arch(arch) if arch else host_arch()
    kernel = kernel or kernel_version()
    bounding = {c.upper() for c in caps}

    out: dict[str, Any] = {"defaultAction": default_action}
    for key in _PASSTHROUGH:
        if doc.get(key) is not None:
            value = doc[key]
            out[key] = list(value) if isinstance(value, list) else value
    architectures = list(_str_list(doc.get("architectures"), "architectures"))
    arch_map = doc.get("archMap") or []
    if not isinstance(arch_map, list):
        raise _bad("archMap must be a list")
    native = _NATIVE.get(go_arch)
    for entry in arch_map:
        if not isinstance(entry, dict) or not isinstance(entry.get("architecture"), str):
            raise _bad("each archMap entry needs an 'architecture'")
        if native is not None and entry["architecture"] == native:
            architectures.append(native)
            architectures.extend(_str_list(entry.get("subArchitectures"),
                                           "archMap subArchitectures"))
            break
    out["architectures"] = architectures

    rules: list[dict[str, Any]] = []
    for i, call in enumerate(syscalls):
        where = f"syscalls[{i}]"
        if not isinstance(call, dict):
            raise _bad(f"{where} must be an object")
        names = list(_str_list(call.get("names"), f"{where}.names"))
        if call.get("name"):
            if names:
                raise _bad(f"{where}: use either 'name' or 'names'")
            if not isinstance(call["name"], str):
                raise _bad(f"{where}.name must be a string")
            names = [call["name"]]
        if not names:
            raise _bad(f"{where} names no syscall")
        action = call.get("action")
        if action not in _ACTIONS:
            raise _bad(f"{where}: unknown action {action!r}")
        ex_caps, ex_arches, ex_kernel = _filter(call.get("excludes"), f"{where}.excludes")
        in_caps, in_arches, in_kernel = _filter(call.get("includes"), f"{where}.includes")
        if go_arch in ex_arches or any(c in bounding for c in ex_caps):
            continue
        if ex_kernel is not None and kernel >= ex_kernel:
            continue
        if in_arches and go_arch not in in_arches:
            continue
        if not all(c in bounding for c in in_caps):
            continue
        if in_kernel is not None and kernel < in_kernel:
            continue
        rule: dict[str, Any] = {"names": names, "action": action}
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = _int(call["errnoRet"], f"{where}.errnoRet")
        args = _oci_args(call.get("args"), where)
        if args:
            rule["args"] = args
        rules.append(rule)
    out["syscalls"] = rules
    return out


@functools.lru_cache(maxsize=64)
def _default_json(caps: frozenset[str], arch: str, kernel: tuple[int, int]) -> str:
    """The converted default profile, cached as JSON text: immutable, cheap to copy out."""
    return json.dumps(convert_docker_profile(default_docker_profile(), caps, arch, kernel))


def default_profile(caps: Iterable[str], arch: str | None = None,
                    kernel: tuple[int, int] | None = None) -> dict[str, Any]:
    """Docker's default profile, in OCI ``linux.seccomp`` form, for this bounding set.

    ``caps`` are ``CAP_``-prefixed names (case-insensitive); ``arch`` defaults to the host's,
    ``kernel`` to the running kernel. Built once per (caps, arch, kernel) per process; every
    call returns a fresh dict the caller may modify.
    """
    key = frozenset(c.upper() for c in caps)
    go_arch = normalize_arch(arch) if arch else host_arch()
    profile: dict[str, Any] = json.loads(_default_json(key, go_arch, kernel or kernel_version()))
    return profile
