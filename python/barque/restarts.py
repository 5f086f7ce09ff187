"""Restart policies: which exits are restarted, after what delay, and who restarts them.

The policy is kept in the container's row (``HostConfig.RestartPolicy``) by every front
door; the daemon applies it. One watcher per store (in ``barque daemon``) binds an abstract
datagram socket named after the store's root. Wherever a container's exit is recorded
(:meth:`ContainerService._finish`, reached from the supervisor's exit command, a ``wait``
or a foreground ``run``), its ID is sent there: the watcher learns of every exit, including
those of containers the barque CLI started, without a thread or a poll per container. The
socket also answers "is a watcher alive" (a datagram connect is refused when nobody is
bound) and keeps a second daemon on the same store from watching twice.

Docker's rules (its restart manager): ``no`` never; ``always`` every exit; ``unless-stopped``
unless stopped by hand; ``on-failure[:N]`` a non-zero exit, at most N times (0: no limit).
Before each restart ``RestartCount`` grows and the watcher waits 100 ms, doubled after every
restart up to one minute, and back to 100 ms once the container had run for 10 s. A ``stop``
or ``kill`` through any door marks the container stopped by hand: never restarted, except an
``always`` one when a daemon starts. A user's ``start`` clears the mark and the count.

The per-container state is three small files in the container's directory (removed with
it), each written by one party: ``restart-count`` (the watcher; a user's start resets it),
``stopped-by-hand`` (stop and kill; a user's start removes it) and ``restart-due`` (the
watcher, while a restart waits out its delay: ``inspect`` shows ``restarting`` then).
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import logging
import os
import select
import socket
import threading
import time
from pathlib import Path

from .errors import ContainerNotFoundError, InvalidArgumentError

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from .engine import Engine
    from .models import RestartPolicy

log = logging.getLogger("barque.restarts")

POLICIES = ("no", "always", "on-failure", "unless-stopped")
#: Docker's back-off: the first delay, its cap, and how long a run must last to reset it.
FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0

_COUNT, _STOPPED, _DUE = "restart-count", "stopped-by-hand", "restart-due"


# -- the policy ---------------------------------------------------------------------------

def parse_flag(text: str, auto_remove: bool = False) -> RestartPolicy:
    """``--restart``'s value as the docker CLI reads it (its wording for a bad count and for
    ``--rm``); the name itself is checked by :func:`validate`, as Docker's daemon does."""
    from .models import RestartPolicy

    name, sep, count = text.partition(":")
    policy = RestartPolicy(name=name or "no")
    if sep and count:
        try:
            policy.maximum_retry_count = int(count)
        except ValueError:
            raise InvalidArgumentError("invalid restart policy format: maximum retry count "
                                       "must be an integer") from None
    if auto_remove and policy.name != "no":
        raise InvalidArgumentError("conflicting options: cannot specify both --restart "
                                   "and --rm")
    validate(policy)
    return policy


def validate(policy: RestartPolicy, auto_remove: bool = False) -> None:
    """Docker's daemon's checks of a create body's ``RestartPolicy``, in its words."""
    name, count = policy.name, policy.maximum_retry_count
    if name in ("", "no", "always", "unless-stopped"):
        if count and name:  # "" with a count: what clients before Docker 25 sent
            message = ("invalid restart policy: maximum retry count can only be used with "
                       "'on-failure'")
            raise InvalidArgumentError(message + (" and cannot be negative" if count < 0
                                                  else ""))
    elif name == "on-failure":
        if count < 0:
            raise InvalidArgumentError("invalid restart policy: maximum retry count cannot "
                                       "be negative")
    else:
        raise InvalidArgumentError(
            f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
            "'on-failure', or 'unless-stopped'")
    if auto_remove and policy.restarts:
        raise InvalidArgumentError("can't create 'AutoRemove' container with restart policy")


def should_restart(policy: RestartPolicy, exit_code: int, restart_count: int,
                   stopped_by_hand: bool, daemon_starting: bool = False) -> bool:
    """Whether an exited container is restarted. ``daemon_starting``: the decision a daemon
    makes for the containers it finds exited, where ``always`` ignores a stop by hand."""
    name = policy.name
    if name == "always":
        return daemon_starting or not stopped_by_hand
    if stopped_by_hand:
        return False
    if name == "unless-stopped":
        return True
    if name == "on-failure":
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit <= 0 or restart_count < limit)
    return False


def next_delay(previous: float, ran_for: float) -> float:
    """The wait before the next restart, given the last one's (0: none yet) and how long the
    container ran before this exit."""
    if ran_for >= RESET_AFTER or previous <= 0:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


# -- a container's restart state ----------------------------------------------------------

def restart_count(bundle: Path) -> int:
    try:
        return int((bundle / _COUNT).read_text())
    except (FileNotFoundError, ValueError):
        return 0


def stopped_by_hand(bundle: Path) -> bool:
    return (bundle / _STOPPED).exists()


def record_stop_by_hand(bundle: Path) -> None:
    """A ``stop``/``kill``: marked before the signal, so the exit it causes is never
    restarted, nor a restart already waiting out its delay."""
    with contextlib.suppress(FileNotFoundError):  # removed meanwhile
        (bundle / _STOPPED).touch()


def record_user_start(bundle: Path) -> None:
    """A user's ``start``/``restart`` begins afresh, as Docker resets its restart manager."""
    for name in (_STOPPED, _COUNT):
        with contextlib.suppress(FileNotFoundError):
            (bundle / name).unlink()


def restarting(root: Path, bundle: Path) -> bool:
    """Whether a restart of the container is waiting out its delay (a watcher that died
    left its mark behind: not restarting then)."""
    return (bundle / _DUE).exists() and watcher_alive(root)


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except FileNotFoundError:  # the container was removed meanwhile
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


# -- exit notices ---------------------------------------------------------------------------

def _address(root: Path) -> bytes:
    """The watcher's abstract socket name: per store, nothing on disk to go stale."""
    digest = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:32]
    return b"\0barque-restarts-" + digest.encode()


def notify_exit(root: Path, container_id: str) -> None:
    """Tell the store's watcher, if one runs, that ``container_id`` exited (best effort: a
    daemon that is starting finds exited containers itself)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        with contextlib.suppress(OSError):
            sock.sendto(container_id.encode(), _address(root))


def watcher_alive(root: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(_address(root))
        except OSError:
            return False
    return True


# -- the watcher ----------------------------------------------------------------------------

class Watcher:
    """Applies the restart policies of one store's containers, on one thread, until
    :meth:`stop`. Running containers are left alone when it stops (live restore)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._root = engine.store.paths.root
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._due: list[tuple[float, str]] = []  # (monotonic time, container ID), a heap
        self._pending: set[str] = set()
        self._delays: dict[str, float] = {}  # each container's last delay (the back-off)

    def start(self) -> bool:
        """Bind the store's socket and start watching; False when another process watches
        this store already."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(_address(self._root))
        except OSError:
            sock.close()
            log.warning("another daemon applies the restart policies of %s", self._root)
            return False
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="barque-restarts", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        if self._sock is None or self._thread is None:
            return
        self._stopping = True
        notify_exit(self._root, "")  # wakes the thread
        self._thread.join(timeout=10)
        self._sock.close()
        self._sock = None

    def _run(self) -> None:
        assert self._sock is not None
        try:
            self._restore()
        except Exception:
            log.exception("restoring the containers' restart policies failed")
        while not self._stopping:
            timeout = max(0.0, self._due[0][0] - time.monotonic()) if self._due else None
            readable, _, _ = select.select([self._sock], [], [], timeout)
            if readable:
                with contextlib.suppress(BlockingIOError, InterruptedError):
                    while not self._stopping:
                        container_id = self._sock.recv(256, socket.MSG_DONTWAIT).decode()
                        if container_id:
                            self._guard(self._exited, container_id)
            while self._due and self._due[0][0] <= time.monotonic() and not self._stopping:
                _, container_id = heapq.heappop(self._due)
                self._pending.discard(container_id)
                self._guard(self._restart, container_id)

    def _guard(self, step: object, container_id: str) -> None:
        try:
            step(container_id)  # type: ignore[operator]
        except ContainerNotFoundError:
            self._delays.pop(container_id, None)  # removed meanwhile
        except Exception:
            log.exception("restart policy of %s", container_id[:12])

    def _restore(self) -> None:
        """What a starting daemon does (Docker's): ``always`` and ``unless-stopped``
        containers found exited start at once, as a user's start; an ``on-failure`` one that
        failed while no daemon watched takes its counted, delayed restart."""
        service = self._engine.containers
        for container in service.list(all=True):
            policy = container.model.host_config.restart_policy
            if not policy.restarts or container.status != "exited":
                continue
            bundle = self._engine.store.paths.container(container.id)
            if policy.name == "on-failure":
                self._guard(self._exited, container.id)
            elif should_restart(policy, container.exit_code, restart_count(bundle),
                                stopped_by_hand(bundle), daemon_starting=True):
                log.info("starting %s (restart policy %s)", container.short_id, policy.name)
                try:
                    service.start(container.id)
                except Exception as e:
                    log.warning("starting %s failed: %s", container.short_id, e)

    def _exited(self, container_id: str) -> None:
        if container_id in self._pending:
            return  # a second notice of the same exit
        container = self._engine.containers.get(container_id)
        if container.status != "exited":
            return  # restarted or started again since
        policy = container.model.host_config.restart_policy
        bundle = self._engine.store.paths.container(container.id)
        count = restart_count(bundle)
        if not should_restart(policy, container.exit_code, count, stopped_by_hand(bundle)):
            self._delays.pop(container.id, None)
            return
        delay = next_delay(self._delays.get(container.id, 0.0),
                           container.finished_at - container.started_at)
        self._delays[container.id] = delay
        # The mark first: an inspect between the two never sees the new count on a container
        # that looks finally exited.
        _write(bundle / _DUE, str(time.time() + delay))
        _write(bundle / _COUNT, str(count + 1))
        heapq.heappush(self._due, (time.monotonic() + delay, container.id))
        self._pending.add(container.id)

    def _restart(self, container_id: str) -> None:
        service = self._engine.containers
        bundle = self._engine.store.paths.container(container_id)
        try:
            container = service.get(container_id)
            if container.status != "exited" or stopped_by_hand(bundle):
                return
            service.start(container_id, keep_restart_count=True)
        except ContainerNotFoundError:
            raise
        except Exception as e:
            # Docker gives up on a container whose restart cannot start; its error is kept.
            log.warning("restarting %s failed: %s", container_id[:12], e)
            self._delays.pop(container_id, None)
            return
        finally:
            with contextlib.suppress(FileNotFoundError):
                (bundle / _DUE).unlink()
        if stopped_by_hand(bundle):  # a stop that came while this start was under way
            service.stop(container_id)
