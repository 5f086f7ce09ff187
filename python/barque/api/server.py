"""``barque daemon``'s server: Unix sockets, the pool blocking calls run on, shutdown.

The socket file appears only ready: it is bound under a temporary name in the same
directory, given mode 0660 and listened on, then renamed into place, so a client never finds
a socket that refuses it or has the wrong mode. On SIGTERM or SIGINT the server stops
accepting, removes its socket files (only those still its own) and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import InvalidArgumentError
from .http import Offload, serve_connection
from .routes import Router, common_headers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..engine import Engine

log = logging.getLogger("barque.api")

#: Threads for blocking engine calls: each waiting client (``wait``, ``logs``) holds one,
#: so there are many more than CPUs.
POOL_THREADS = 64

DEFAULT_HOST = "unix:///run/barque/barque.sock"


def socket_path(host: str) -> Path:
    """The path of a ``-H`` address; only ``unix://`` is served so far."""
    scheme, sep, rest = host.partition("://")
    if not sep:
        raise InvalidArgumentError(f"invalid host {host!r}: use unix:///path/to/socket")
    if scheme != "unix":
        raise InvalidArgumentError(f"host {host!r}: only unix:// sockets are served by barque "
                                   "yet (tcp:// is not)")
    if not rest.startswith("/"):
        raise InvalidArgumentError(f"invalid host {host!r}: the socket path must be absolute")
    return Path(rest)


def bind_unix(path: Path) -> socket.socket:
    """A listening socket at ``path``, made atomically (see the module docstring). A stale
    socket file left by a killed daemon is replaced; a live one is refused."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if path.is_socket():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            probe.connect(str(path))
        except OSError:
            pass  # nobody answers: stale
        else:
            raise InvalidArgumentError(f"{path}: another daemon is listening there")
        finally:
            probe.close()
    elif path.exists():
        raise InvalidArgumentError(f"{path}: exists and is not a socket")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(str(temporary))
        os.chmod(temporary, 0o660)
        sock.listen(128)
        os.rename(temporary, path)
    except BaseException:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return sock


def _remove_if_ours(path: Path, inode: int) -> None:
    """Remove the socket file unless another daemon has replaced it since."""
    try:
        st = path.lstat()
        if st.st_ino == inode and stat.S_ISSOCK(st.st_mode):
            path.unlink()
    except FileNotFoundError:
        pass


async def _serve(engine: Engine, hosts: list[str], ready: Callable[[], None] | None) -> None:
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="barque-api")
    busy = [0]

    async def offload(call: Callable[[], object]) -> object:
        busy[0] += 1
        try:
            return await loop.run_in_executor(pool, call)
        finally:
            busy[0] -= 1

    # The store is opened before the first client: a root that cannot be used fails the
    # daemon's start, not every request.
    await offload(lambda: engine.images.list())
    from ..restarts import Watcher

    # The daemon keeps the restart policies; containers are left running when it stops.
    # It starts watching once its sockets listen: a daemon refused for a socket in use
    # must not first take over another's watch.
    restarts = Watcher(engine)
    router = Router(engine)
    headers = common_headers()
    typed_offload: Offload = offload

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, router, typed_offload, headers)

    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    servers, sockets = [], []
    try:
        for host in hosts:
            path = socket_path(host)
            sock = bind_unix(path)
            sockets.append((path, path.lstat().st_ino))  # the file's, not the socket's
            servers.append(await asyncio.start_unix_server(client, sock=sock, limit=1 << 20))
            log.info("API listening on %s", path)
        restarts.start()
        if ready is not None:
            ready()
        await stopping.wait()
        log.info("stopping: signal received")
    finally:
        for server in servers:
            server.close()
        for path, inode in sockets:
            _remove_if_ours(path, inode)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        restarts.stop()
    # Calls still running (a client's `wait` on a container that runs on) cannot be
    # interrupted; the interpreter would join their threads at exit and never leave.
    pool.shutdown(wait=False, cancel_futures=True)
    if busy[0]:
        log.info("leaving %d blocked call(s) behind", busy[0])
        logging.shutdown()
        os._exit(0)


def serve(engine: Engine, hosts: list[str], ready: Callable[[], None] | None = None) -> None:
    """Serve the Engine API for ``engine`` on ``hosts`` (``unix:///path``) until SIGTERM or
    SIGINT. ``ready`` is called once every socket listens."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("the API server handles signals: run it on the main thread")
    for host in hosts:
        socket_path(host)  # every address is checked before any socket is made
    asyncio.run(_serve(engine, hosts, ready))
