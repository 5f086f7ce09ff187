"""The options of ``run``/``create``, ``ps`` and ``pull``, each declared once.

Those commands have two parsers: the launcher's fast path (:mod:`barque.cli.launcher`, which
must not import typer, click or rich: about 100 ms) and typer's app (``--help``, and the
errors Docker words). Both are derived from the classes here, whose fields are the options:
the annotation gives the kind (``bool``: a switch, ``list[T]``: repeatable, else one value) and
the value's type, :func:`flag` gives the spelling (Docker's), the help text and the default.
The same class is the record the command's implementation receives (:class:`RunArgs`).

Imports nothing: the fast path loads this module on each of those commands before it knows
whether the command will get as far as a service, and typer's app loads it for ``--help``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    F = TypeVar("F", bound=Callable[..., Any])
else:
    def dataclass_transform(**_kwargs):  # noqa: D103 - for type checkers only (PEP 681)
        return lambda metaclass: metaclass

#: A switch (``--rm``), an option with one value (``--name x``), or one given many times.
BOOL, VALUE, REPEATABLE = "bool", "value", "repeatable"

#: What a value's annotation may name, and the function that reads it from its text. click's
#: INT and FLOAT read them the same way (``int()``, ``float()``), so the two parsers accept the
#: same values; the fast path leaves a value it cannot read to typer, which words the error.
_CONVERTERS: dict[str, Callable[[str], Any]] = {"str": str, "int": int, "float": float}

_UNSET: Any = object()


class Flag:
    """One option: how it is spelled (``long``, ``short``, and ``negation`` for a switch that
    can be turned off), the field its value goes to (``dest``), its kind, the function that
    reads its value, and what ``--help`` says of it."""

    __slots__ = ("long", "short", "negation", "dest", "kind", "convert", "metavar", "help",
                 "default")

    def __init__(self, long: str, short: str | None, negatable: bool, help: str,
                 metavar: str | None, default: Any) -> None:
        self.long = long
        self.short = short
        self.negation = "--no-" + long[2:] if negatable else None
        self.help = help
        self.metavar = metavar
        self.default = default
        self.dest = ""  # the rest is read from the field the flag is assigned to
        self.kind = VALUE
        self.convert: Callable[[str], Any] = str

    @property
    def names(self) -> tuple[str, ...]:
        """Every spelling that sets the field (the negation clears it)."""
        return (self.long,) if self.short is None else (self.long, self.short)

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every spelling of the option, its negation included."""
        return self.names if self.negation is None else (*self.names, self.negation)

    def _bind(self, owner: str, dest: str, annotation: str) -> None:
        """Take the field's name, and its kind and type from its annotation's text (``bool``,
        ``list[str]``, ``int | None``...)."""
        self.dest = dest
        text = annotation.removesuffix(" | None")
        optional = text != annotation
        if text.startswith("list[") and text.endswith("]"):
            self.kind, text = REPEATABLE, text[5:-1]
        elif text == "bool":
            self.kind = BOOL
        if self.kind == BOOL:
            self.convert = bool
            if self.default is _UNSET:
                self.default = False
        elif text in _CONVERTERS:
            self.convert = _CONVERTERS[text]
        else:
            raise TypeError(f"{owner}.{dest}: no converter for {annotation!r}")
        if self.kind == REPEATABLE:
            if self.default is not _UNSET:
                raise TypeError(f"{owner}.{dest}: a repeatable option starts empty")
            self.default = []
        elif self.default is _UNSET:
            if self.kind == VALUE and not optional:
                raise TypeError(f"{owner}.{dest}: {annotation} needs a default")
            self.default = None
        if self.negation is not None and self.kind != BOOL:
            raise TypeError(f"{owner}.{dest}: only a switch can be negated")

    def __repr__(self) -> str:
        return f"Flag({self.long!r} -> {self.dest}, {self.kind})"


def flag(long: str, short: str | None = None, *, help: str, metavar: str | None = None,
         default: Any = _UNSET, negatable: bool = False) -> Any:
    """Declare the field it is assigned to as an option, spelled ``long`` (and ``short``);
    ``negatable`` adds ``--no-<long>``. The default is False for a switch, [] for a
    repeatable option, None for another, unless given."""
    return Flag(long, short, negatable, help, metavar, default)


@dataclass_transform(kw_only_default=True)
class _OptionsMeta(type):
    """Makes a class body's annotated fields a record (keyword ``__init__``, ``==``,
    ``repr``) and collects its :func:`flag` fields into the class's option table
    (:func:`table`). Not msgspec, not dataclasses: this module loads before anything knows
    that a service will be needed (msgspec's import costs ~40 ms cold, mostly typing and
    inspect), and typer's app loads it for ``--help`` too."""

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any],
                **kwargs: Any) -> _OptionsMeta:
        found: list[Flag] = [spec for base in bases
                             for spec in getattr(base, "__cli_flags__", ())]
        fields: list[str] = [field for base in bases
                             for field in getattr(base, "__cli_fields__", ())]
        defaults: dict[str, Any] = {}
        for base in bases:
            defaults.update(getattr(base, "__cli_defaults__", {}))
        own = []
        for dest, annotation in namespace.get("__annotations__", {}).items():
            value = namespace.pop(dest, _UNSET)
            if isinstance(value, Flag):
                # A string under `from __future__ import annotations`, else the type itself.
                value._bind(name, dest, annotation.__name__ if type(annotation) is type
                            else str(annotation))
                found.append(value)
                value = value.default
            if value is not _UNSET:
                defaults[dest] = value
            fields.append(dest)
            own.append(dest)
        namespace["__slots__"] = tuple(own)
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        cls.__cli_flags__ = tuple(found)
        cls.__cli_fields__ = tuple(fields)
        cls.__cli_defaults__ = defaults
        return cls

    __cli_flags__: tuple[Flag, ...]
    __cli_fields__: tuple[str, ...]
    __cli_defaults__: dict[str, Any]


class Options(metaclass=_OptionsMeta):
    """A command's options: subclasses declare them as fields assigned a :func:`flag`, and
    an instance holds one command line's values (given by keyword; a list default is a
    fresh empty list per instance)."""

    def __init__(self, **values: Any) -> None:
        cls = type(self)
        for name in cls.__cli_fields__:
            if name in values:
                value = values.pop(name)
            elif name in cls.__cli_defaults__:
                value = cls.__cli_defaults__[name]
                if type(value) is list:
                    value = list(value)
            else:
                raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
            setattr(self, name, value)
        if values:
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument "
                            f"{next(iter(values))!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in type(self).__cli_fields__)

    __hash__ = None  # type: ignore[assignment]  # compared by value and mutable, as a dataclass

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__cli_fields__)
        return f"{type(self).__name__}({shown})"


def table(cls: type[Options]) -> tuple[Flag, ...]:
    """The options declared on ``cls`` with :func:`flag`, in declaration order."""
    return cls.__cli_flags__


def typer_options(cls: type[Options]) -> Callable[[F], F]:
    """Decorate a typer command whose ``**options`` stand for ``cls``'s options: its
    signature (which typer reads) gets one ``typer.Option`` parameter per flag, in the table's
    order, so the command parses, documents and defaults them as the fast path does."""

    def decorate(function: F) -> F:
        import inspect
        from typing import Annotated, Optional

        import typer

        signature = inspect.signature(function, eval_str=True)
        kept = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        added = []
        for spec in table(cls):
            if spec.kind == BOOL:
                annotation: Any = bool
            elif spec.kind == REPEATABLE:
                # A runtime type, which mypy cannot follow into a type expression.
                annotation = list[spec.convert]  # type: ignore[name-defined]
            elif spec.default is None:
                annotation = Optional[spec.convert]
            else:
                annotation = spec.convert
            declared = spec.long if spec.negation is None else f"{spec.long}/{spec.negation}"
            option = typer.Option(declared, *(spec.short,) if spec.short else (),
                                  help=spec.help, metavar=spec.metavar)
            added.append(inspect.Parameter(
                spec.dest, inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[annotation, option],
                default=[] if spec.kind == REPEATABLE else spec.default))
        setattr(function, "__signature__", signature.replace(parameters=[*kept, *added]))
        return function

    return decorate


#: The --format help of listing commands, in the docker CLI's words.
FORMAT_HELP = ("Format output using a custom template: 'table' (the default), 'table "
               "TEMPLATE' (with column headers), 'json' (one JSON object per line), or a Go "
               "template such as '{{.ID}}\\t{{.Names}}'.")


class RunArgs(Options):
    """Everything ``barque run``/``create`` accept, as parsed from the command line: the image
    and command (operands), then the options in ``--help``'s order."""

    image: str
    command: list[str] = []
    rm: bool = flag("--rm", help="Automatically remove the container when it exits.")
    name: str | None = flag("--name", help="Assign a name to the container.")
    env: list[str] = flag("--env", "-e", help="Set environment variables.")
    env_file: list[str] = flag("--env-file", help="Read in a file of environment variables.")
    workdir: str | None = flag("--workdir", "-w", help="Working directory inside the container.")
    user: str | None = flag("--user", "-u",
                            help="Username or UID (format: <name|uid>[:<group|gid>]).")
    group_add: list[str] = flag("--group-add", help="Add additional groups to join.")
    hostname: str | None = flag("--hostname", "-h", help="Container host name.")
    entrypoint: str | None = flag("--entrypoint",
                                  help="Overwrite the default ENTRYPOINT of the image.")
    network: str | None = flag("--network", help="'none' or 'host'.")
    read_only: bool = flag("--read-only",
                           help="Mount the container's root filesystem as read only.")
    privileged: bool = flag("--privileged", help="Give extended privileges to this container.")
    device: list[str] = flag("--device", help="Add a host device to the container: "
                             "HOST[:CONTAINER][:PERMISSIONS].")
    cap_add: list[str] = flag("--cap-add", help="Add Linux capabilities.")
    cap_drop: list[str] = flag("--cap-drop", help="Drop Linux capabilities.")
    security_opt: list[str] = flag("--security-opt", help="Security options.")
    label: list[str] = flag("--label", "-l", help="Set meta data on a container.")
    memory: str | None = flag("--memory", "-m", help="Memory limit (e.g. 16m, 1g).")
    pids_limit: int | None = flag("--pids-limit",
                                  help="Tune container pids limit (-1 for unlimited).")
    cpus: float | None = flag("--cpus", help="Number of CPUs.")
    detach: bool = flag("--detach", "-d",
                        help="Run container in background and print container ID.")
    interactive: bool = flag("--interactive", "-i", help="Keep STDIN open even if not attached.")
    tty: bool = flag("--tty", "-t", help="Allocate a pseudo-TTY.")
    init: bool = flag("--init", help="Run an init inside the container that forwards signals "
                      "and reaps processes.")
    stop_signal: str | None = flag("--stop-signal", help="Signal to stop the container.")
    log_driver: str = flag("--log-driver", help="Logging driver: json-file or none.",
                           default="json-file")
    log_opt: list[str] = flag("--log-opt", help="Log driver options (max-size=, max-file=).")
    volume: list[str] = flag("--volume", "-v", help="Bind mount a volume: "
                             "[NAME:|/HOST:]/PATH[:ro|rw|nocopy].")
    mount: list[str] = flag("--mount", help="Attach a filesystem mount: "
                            "type=volume|bind|tmpfs,source=,target=,readonly,...")
    tmpfs: list[str] = flag("--tmpfs", help="Mount a tmpfs directory: /PATH[:size=..,mode=..].")
    volumes_from: list[str] = flag("--volumes-from", help="Mount volumes from the specified "
                                   "container(s): CONTAINER[:ro|rw].")
    # Docker's spelling, help and defaults; those in NOT_APPLIED are parsed, not applied yet.
    publish: list[str] = flag("--publish", "-p", help="Publish a container's port(s) to the "
                              "host: [IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL].")
    publish_all: bool = flag("--publish-all", "-P",
                             help="Publish all exposed ports to random ports.")
    expose: list[str] = flag("--expose", help="Expose a port or a range of ports.")
    restart: str = flag("--restart", default="no", help="Restart policy to apply when a "
                        "container exits: no, always, unless-stopped, on-failure[:MAX].")
    dns: list[str] = flag("--dns", help="Set custom DNS servers.")
    dns_search: list[str] = flag("--dns-search", help="Set custom DNS search domains.")
    dns_option: list[str] = flag("--dns-option", help="Set DNS options.")
    add_host: list[str] = flag("--add-host", help="Add a custom host-to-IP mapping (host:ip).")
    ulimit: list[str] = flag("--ulimit", help="Ulimit options: NAME=SOFT[:HARD].")
    shm_size: str | None = flag("--shm-size", help="Size of /dev/shm (e.g. 64m).")
    sysctl: list[str] = flag("--sysctl", help="Sysctl options: NAME=VALUE.")
    cpu_shares: int | None = flag("--cpu-shares", "-c", help="CPU shares (relative weight).")
    cpuset_cpus: str | None = flag("--cpuset-cpus",
                                   help="CPUs in which to allow execution (0-3, 0,1).")
    oom_score_adj: int | None = flag("--oom-score-adj",
                                     help="Tune host's OOM preferences (-1000 to 1000).")
    ipc: str | None = flag("--ipc", help="IPC mode to use.")
    pid: str | None = flag("--pid", help="PID namespace to use.")
    uts: str | None = flag("--uts", help="UTS namespace to use.")
    cgroupns: str | None = flag("--cgroupns", help="Cgroup namespace to use: host or private.")
    stop_timeout: int | None = flag("--stop-timeout",
                                    help="Timeout (in seconds) to stop a container.")
    platform: str | None = flag("--platform", help="Set platform if the image is "
                                "multi-platform: os/arch[/variant].")
    pull: str = flag("--pull", default="missing",
                     help="Pull image before running: always, missing or never.")
    attach: list[str] = flag("--attach", "-a", help="Attach to STDIN, STDOUT or STDERR.")
    health_cmd: str | None = flag("--health-cmd", help="Command to run to check health.")
    health_interval: str | None = flag("--health-interval",
                                       help="Time between running the check (ms|s|m|h).")
    health_retries: int | None = flag("--health-retries", help="Consecutive failures needed "
                                      "to report unhealthy.")
    health_timeout: str | None = flag("--health-timeout", help="Maximum time to allow one "
                                      "check to run (ms|s|m|h).")
    health_start_period: str | None = flag("--health-start-period", help="Start period for "
                                           "the container to initialize before starting "
                                           "health-retries countdown (ms|s|m|h).")
    no_healthcheck: bool = flag("--no-healthcheck",
                                help="Disable any container-specified HEALTHCHECK.")
    sig_proxy: bool = flag("--sig-proxy", negatable=True, default=True,
                           help="Proxy received signals to the process (run only).")


#: RunArgs fields parsed from the command line that ``run_or_create`` does not apply to the
#: container yet. A flag here is refused rather than silently ignored; each leaves this set
#: when the container model carries it.
NOT_APPLIED = frozenset({
    "publish", "publish_all", "cpu_shares", "cpuset_cpus", "oom_score_adj",
    "ipc", "pid", "uts", "cgroupns", "stop_timeout", "platform", "pull", "attach",
    "health_cmd", "health_interval", "health_retries", "health_timeout", "health_start_period",
    "no_healthcheck",
})


def refuse_unapplied(args: RunArgs) -> int | None:
    """Exit code 125, after one line naming the first option given that barque parses but
    does not apply yet; None when there is none. An option left at its default is no
    request (``--restart no``, ``--pull missing`` are what barque does)."""
    import sys

    for spec in table(RunArgs):
        if spec.dest in NOT_APPLIED and getattr(args, spec.dest) != spec.default:
            sys.stderr.write(f"barque: {spec.long} is not supported yet\n")
            sys.stderr.flush()
            return 125
    return None


class PsArgs(Options):
    """``ps``'s options: the keyword arguments of :func:`barque.cli.listing.ps`."""

    all: bool = flag("--all", "-a", help="Show all containers.")
    quiet: bool = flag("--quiet", "-q", help="Only display container IDs.")
    no_trunc: bool = flag("--no-trunc", help="Don't truncate output.")
    format: str | None = flag("--format", help=FORMAT_HELP)
    filter: list[str] = flag("--filter", "-f",
                             help="Filter: status=, name=, id=, label=, ancestor=, volume=.")
    size: bool = flag("--size", "-s", help="Display total file sizes.")


class PullArgs(Options):
    """``pull``'s options: the keyword arguments of :func:`barque.cli.pulling.pull_image`
    besides the reference."""

    quiet: bool = flag("--quiet", "-q", help="Suppress verbose output.")
    platform: str | None = flag("--platform", help="Pull this platform (os/arch[/variant]) "
                                "from a multi-platform image.")
