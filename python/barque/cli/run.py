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
    from ..models import ContainerCreate
    from ..runtime.spec import RunOptions

NETWORK_NOTICE = ("barque: no bridge network yet; the container gets --network none "
                  "(pass --network host or none to silence this)")


def run_or_create(kind: str, args: RunArgs) -> int:
    """``kind`` is ``run`` or ``create``; returns the command's exit code."""
    refused = refuse_unapplied(args)
    if refused is not None:
        return refused
    body = container_create(args)
    progress = None
    if not engine().images.exists(args.image):
        from .progress import PullRenderer

        sys.stderr.write(f"Unable to find image '{args.image}' locally\n")
        progress = PullRenderer(sys.stderr)
    service = engine().containers
    if kind == "create":
        container = service.create_from(body, name=args.name, pull=True, progress=progress)
        _warn(container.warnings)
        print(container.id)
        return 0
    sys.stdout.flush()
    if args.detach:
        container = service.run_from(body, name=args.name, progress=progress, detach=True)
        print(container.id)
        return 0
    if args.tty:
        if args.interactive and not os.isatty(0):
            from ..errors import InvalidArgumentError

            raise InvalidArgumentError("the input device is not a TTY")
        # A terminal goes through the supervisor, which holds the pty: detaching
        # (ctrl-p ctrl-q) then leaves the container running.
        container = service.create_from(body, name=args.name, pull=True, progress=progress)
        _warn(container.warnings)
        return start_attached(container.id, interactive=args.interactive, tty=True,
                              auto_remove=args.rm)
    # Without detach, run returns the container's exit code.
    code: int = service.run_from(body, name=args.name, progress=progress,
                                 sig_proxy=args.sig_proxy,
                                 stdin=0 if args.interactive else None)
    return code


def container_create(args: RunArgs) -> ContainerCreate:
    """The command line as Docker's create body (what ``docker run`` sends its daemon): the
    flags' checks and messages are those of :func:`barque.models.options.body_from_options`."""
    from ..containers import CreateOptions
    from ..models.options import body_from_options

    options = _run_options(args)
    options.command = list(args.command) or None
    create = CreateOptions(name=args.name, auto_remove=args.rm, labels=_labels(args.label),
                           stop_signal=args.stop_signal, open_stdin=args.interactive,
                           log_driver=args.log_driver, log_opts=_log_opts(args.log_opt),
                           volumes=list(args.volume), mounts=list(args.mount),
                           tmpfs=list(args.tmpfs), volumes_from=list(args.volumes_from))
    body = body_from_options(args.image, options, create)
    # As docker run does: a foreground container's output is attached, and -i attaches and
    # closes (StdinOnce) its stdin.
    body.attach_stdout = body.attach_stderr = not args.detach
    body.attach_stdin = body.stdin_once = args.interactive and not args.detach
    _host_flags(args, body)
    if args.restart != "no":
        from ..restarts import parse_flag, watcher_alive

        body.host_config.restart_policy = parse_flag(args.restart, auto_remove=args.rm)
        if not watcher_alive(engine().root):
            # Docker's restarts are its daemon's too; this store has none running.
            sys.stderr.write("WARNING: no barque daemon watches this store: the restart "
                             "policy is kept and applied once one runs (barque daemon)\n")
    return body


def _host_flags(args: RunArgs, body: ContainerCreate) -> None:
    """The flags the model applies beyond the older options: ``--dns*``, ``--add-host``,
    ``--ulimit``, ``--shm-size``, ``--sysctl``, ``--expose`` (Docker's syntax for each)."""
    from ..errors import InvalidArgumentError
    from ..models import Ulimit
    from ..runtime.cgroups import parse_memory

    host = body.host_config
    host.dns, host.dns_search, host.dns_options = (
        list(args.dns), list(args.dns_search), list(args.dns_option))
    host.extra_hosts = list(args.add_host) or None
    ulimits = []
    for item in args.ulimit:
        name, eq, limits = item.partition("=")
        soft, _, hard = limits.partition(":")
        try:
            ulimits.append(Ulimit(name=name, soft=int(soft), hard=int(hard or soft)))
        except ValueError:
            raise InvalidArgumentError(
                f'invalid argument "{item}" for "--ulimit" flag: want NAME=SOFT[:HARD]'
            ) from None
        if not eq or not name:
            raise InvalidArgumentError(
                f'invalid argument "{item}" for "--ulimit" flag: want NAME=SOFT[:HARD]')
    host.ulimits = ulimits
    if args.shm_size:
        host.shm_size = parse_memory(args.shm_size)
    sysctls = {}
    for item in args.sysctl:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InvalidArgumentError(
                f'invalid argument "{item}" for "--sysctl" flag: sysctl must be NAME=VALUE')
        sysctls[key] = value
    if sysctls:
        host.sysctls = sysctls
    if args.expose:
        ports = dict(body.exposed_ports or {})
        for item in args.expose:
            port, _, proto = item.partition("/")
            first, _, last = port.partition("-")
            if not first.isdigit() or (last and not last.isdigit()):
                raise InvalidArgumentError(f"invalid range format for --expose: {item}")
            for number in range(int(first), int(last or first) + 1):
                ports[f"{number}/{proto or 'tcp'}"] = {}
        body.exposed_ports = ports


def _warn(warnings: list[str]) -> None:
    for line in warnings:
        sys.stderr.write(f"WARNING: {line}\n")


def start_attached(container_id: str, *, interactive: bool, tty: bool,
                   auto_remove: bool) -> int:
    """Start a container under its supervisor and relay this terminal to it until it exits
    (its exit code) or the user detaches (0)."""
    from .. import attach

    service = engine().containers
    size = (attach.window_size(0) or attach.window_size(1)) if tty else None
    session = service.start_attached(container_id, tty_size=size)
    with session:
        code = session.relay(stdin=interactive, tty=tty)
    if code is None:
        if tty:
            sys.stderr.write("\r\n")
        return 0
    if auto_remove:
        # The supervisor's exit command removes the container: wait for it, so that the
        # container is gone when this command returns, as with Docker.
        session.wait_supervisor_gone(timeout=30)
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
        env=environment(args.env, args.env_file), workdir=args.workdir, user=args.user,
        group_add=list(args.group_add),
        hostname=args.hostname, tty=args.tty, read_only=args.read_only,
        privileged=args.privileged, devices=list(args.device), cap_add=list(args.cap_add),
        cap_drop=list(args.cap_drop),
        security_opt=list(args.security_opt), network=network, memory=args.memory,
        pids_limit=args.pids_limit, cpus=args.cpus, init=args.init)


def _notice_once() -> None:
    """The no-bridge notice, on the first run/create of a store only: the marker's exclusive
    creation is atomic, so of two first commands at once one prints it."""
    if engine().containers.first_network_default():
        sys.stderr.write(NETWORK_NOTICE + "\n")


def environment(env: list[str], env_files: list[str]) -> list[str]:
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
