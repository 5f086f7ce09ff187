"""``run`` and ``create``: the one implementation behind both command-line parsers (typer's,
and the launcher's fast path), free of typer so the fast path does not import it."""

from __future__ import annotations

import os
import sys

from .context import engine
from .flags import RunArgs as RunArgs  # declared with the options it holds
from .flags import refuse_unapplied

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from ..runtime.spec import RunOptions

NETWORK_NOTICE = ("barque: no bridge network yet; the container gets --network none "
                  "(pass --network host or none to silence this)")


def run_or_create(kind: str, args: RunArgs) -> int:
    """``kind`` is ``run`` or ``create``; returns the command's exit code."""
    refused = refuse_unapplied(args)
    if refused is not None:
        return refused
    from ..containers import CreateOptions

    options = _run_options(args)
    create = CreateOptions(name=args.name, auto_remove=args.rm, labels=_labels(args.label),
                           stop_signal=args.stop_signal, open_stdin=args.interactive,
                           log_driver=args.log_driver, log_opts=_log_opts(args.log_opt),
                           volumes=list(args.volume), mounts=list(args.mount),
                           tmpfs=list(args.tmpfs), volumes_from=list(args.volumes_from))
    progress = None
    if not engine().images.exists(args.image):
        from .progress import PullRenderer

        sys.stderr.write(f"Unable to find image '{args.image}' locally\n")
        progress = PullRenderer(sys.stderr)
    service = engine().containers
    command = args.command or None
    if kind == "create":
        container = service.create(args.image, command, options=options, create=create,
                                   pull=True, progress=progress)
        print(container.id)
        return 0
    sys.stdout.flush()
    if args.detach:
        container = service.run(args.image, command, options=options, create=create,
                                progress=progress, detach=True)
        print(container.id)
        return 0
    if args.tty:
        if args.interactive and not os.isatty(0):
            from ..errors import InvalidArgumentError

            raise InvalidArgumentError("the input device is not a TTY")
        # A terminal goes through the supervisor, which holds the pty: detaching
        # (ctrl-p ctrl-q) then leaves the container running.
        container = service.create(args.image, command, options=options, create=create,
                                   pull=True, progress=progress)
        return start_attached(container.id, interactive=args.interactive, tty=True,
                              auto_remove=args.rm)
    # Without detach, run returns the container's exit code.
    code: int = service.run(args.image, command, options=options, create=create,
                            progress=progress, sig_proxy=args.sig_proxy,
                            stdin=0 if args.interactive else None)
    return code


def start_attached(container_id: str, *, interactive: bool, tty: bool,
                   auto_remove: bool) -> int:
    """Start a container under its supervisor and relay this terminal to it until it exits
    (its exit code) or the user detaches (0)."""
    import contextlib

    from .. import attach
    from ..runtime import supervisor

    service = engine().containers
    size = (attach.window_size(0) or attach.window_size(1)) if tty else None
    try:
        service.start(container_id, hold_output=True, tty_size=size)
    except BaseException:
        service._abandon(container_id, auto_remove)
        raise
    state = engine().store.paths.run_state(container_id)
    with contextlib.closing(attach.connect(state)) as sock:
        code = attach.relay(sock, stdin=interactive, tty=tty)
    if code is None:
        if tty:
            sys.stderr.write("\r\n")
        return 0
    if auto_remove:
        # The supervisor's exit command removes the container: wait for it, so that the
        # container is gone when this command returns, as with Docker.
        import time

        deadline = time.monotonic() + 30
        while supervisor.shim_alive(state) and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        # Recorded as exited before this returns (the supervisor's exit command may not have
        # run yet), so that a `rm` straight after sees a stopped container, as with Docker.
        service.wait(container_id)
    return code


def _run_options(args: RunArgs) -> RunOptions:
    from ..errors import BarqueError
    from ..runtime.spec import RunOptions

    network = args.network
    if network is None:
        _notice_once()
        network = "none"
    if network not in ("none", "host"):
        raise BarqueError(f"network {network} not found: barque supports 'none' and 'host'")
    entrypoint = args.entrypoint
    return RunOptions(
        entrypoint=None if entrypoint is None else ([entrypoint] if entrypoint else []),
        env=_environment(args.env, args.env_file), workdir=args.workdir, user=args.user,
        group_add=list(args.group_add),
        hostname=args.hostname, tty=args.tty, read_only=args.read_only,
        privileged=args.privileged, devices=list(args.device), cap_add=list(args.cap_add),
        cap_drop=list(args.cap_drop),
        security_opt=list(args.security_opt), network=network, memory=args.memory,
        pids_limit=args.pids_limit, cpus=args.cpus, init=args.init)


def _notice_once() -> None:
    """The no-bridge notice, on the first run/create of a store only: the marker's exclusive
    creation is atomic, so of two first commands at once one prints it."""
    try:
        fd = os.open(engine().store.paths.network_notice_marker,
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        return
    except OSError:
        pass  # a store we cannot mark: better said every time than never
    else:
        os.close(fd)
    sys.stderr.write(NETWORK_NOTICE + "\n")


def _environment(env: list[str], env_files: list[str]) -> list[str]:
    """Docker's -e rules: K=V as given, a bare K takes the caller's value (or is dropped)."""
    entries: list[str] = []
    for path in env_files:
        with open(path) as f:
            entries += [line.strip() for line in f if line.strip() and not line.startswith("#")]
    entries += env
    out = []
    for entry in entries:
        if "=" in entry:
            out.append(entry)
        elif entry in os.environ:
            out.append(f"{entry}={os.environ[entry]}")
    return out


def _labels(labels: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (label.partition("=") for label in labels)}


def _log_opts(items: list[str]) -> dict[str, str]:
    from ..errors import InvalidArgumentError

    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"invalid key value pair format in log opts: {item}")
        opts[key] = value
    return opts
