"""Tables and listings printed the way the docker CLI prints them."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..humanize import human_duration, human_size
from .gotemplate import GoStruct, arity, go_quote

if TYPE_CHECKING:
    from ..containers import Container
    from ..images import Image


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Docker's tabwriter layout: cells padded by 3 spaces, columns at least 10 wide."""
    table = [list(headers)] + [list(r) for r in rows]
    widths = [max(10, max(len(r[i]) for r in table) + 3) for i in range(len(headers))]
    lines = []
    for r in table:
        cells = [c.ljust(widths[i]) for i, c in enumerate(r[:-1])] + [r[-1]]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


def _since(dt: datetime | None) -> str:
    if dt is None:
        return "N/A"
    return human_duration(time.time() - dt.timestamp()) + " ago"


def _split_repo_tag(familiar_ref: str) -> tuple[str, str]:
    name, _, tag = familiar_ref.rpartition(":")
    if "/" in tag or not name:
        return familiar_ref, "<none>"
    return name, tag


def image_rows(images: Sequence[Image], wanted: str | None, no_trunc: bool) -> list[dict[str, Any]]:
    """One row per (repository, tag) of each image, as ``docker images --format json`` keys."""
    rows = []
    for image in images:
        image_id = image.id if no_trunc else image.short_id
        created = image.created
        digest_by_repo: dict[str, str] = {}
        for d in image.digests:
            repo, _, digest = d.partition("@")
            digest_by_repo.setdefault(repo, digest)
        pairs = [_split_repo_tag(t) for t in image.tags]
        if not pairs:
            pairs = [(d.partition("@")[0], "<none>") for d in image.digests[:1]] or [("<none>", "<none>")]
        for repo, tag in pairs:
            if wanted and not _matches(wanted, repo, tag):
                continue
            rows.append({
                "Containers": "N/A",
                "CreatedAt": (created.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
                              if created else ""),
                "CreatedSince": _since(created),
                "Digest": digest_by_repo.get(repo, "<none>"),
                "ID": image_id,
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": human_size(image.size),
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": human_size(image.size),
            })
    return rows


def _matches(wanted: str, repo: str, tag: str) -> bool:
    want_repo, _, want_tag = wanted.partition(":") if "/" not in wanted.rpartition(":")[2] else (wanted, "", "")
    if want_repo.startswith("docker.io/"):
        want_repo = want_repo.removeprefix("docker.io/").removeprefix("library/")
    return repo == want_repo and (not want_tag or tag == want_tag)


def print_image_table(rows: Sequence[dict[str, Any]], digests: bool) -> None:
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    body = [[r["Repository"], r["Tag"]] + ([r["Digest"]] if digests else [])
            + [r["ID"], r["CreatedSince"], r["Size"]] for r in rows]
    sys.stdout.write(render_table(headers, body) + "\n")


def deleted_images_text(entries: Sequence[Mapping[str, str]]) -> str:
    """Docker's ``Deleted Images:`` block of a prune (``untagged: ...``/``deleted: ...`` lines
    and a blank one), or nothing when no image went."""
    if not entries:
        return ""
    lines = ["Deleted Images:"]
    lines += [f"{key.lower()}: {value}" for entry in entries for key, value in entry.items()]
    return "\n".join(lines) + "\n\n"


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def print_history(image: Image, *, human: bool, no_trunc: bool, quiet: bool) -> None:
    rows = image.history
    if quiet:
        sys.stdout.write("".join(f"{r['Id'] if no_trunc else _short(r['Id'])}\n" for r in rows))
        return
    body = []
    for r in rows:
        created = r["Created"]
        if human:
            from ..images import parse_created

            created = _since(parse_created(created))
        by = " ".join(r["CreatedBy"].replace("\t", " ").split(" "))
        body.append([r["Id"] if no_trunc else _short(r["Id"]), created,
                     by if no_trunc else _ellipsis(by, 45),
                     human_size(r["Size"]) if human else str(r["Size"]), r["Comment"]])
    sys.stdout.write(render_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], body) + "\n")


def _short(image_id: str) -> str:
    return image_id[7:19] if image_id.startswith("sha256:") else image_id


def _status(c: Container) -> str:
    now = time.time()
    if c.status == "running":
        return "Up " + human_duration(now - c.started_at)
    if c.status == "paused":
        return "Up " + human_duration(now - c.started_at) + " (Paused)"
    if c.status == "exited":
        return f"Exited ({c.exit_code}) {human_duration(now - c.finished_at)} ago"
    return "Created"


def container_rows(containers: Iterable[Container], no_trunc: bool,
                   sizes: Callable[[Container], tuple[int, int]] | None = None,
                   ) -> list[dict[str, Any]]:
    """``sizes``: with ``ps -s``, a function giving (writable, virtual) bytes of a container."""
    from ..containers import command_of

    rows: list[dict[str, Any]] = []
    for c in containers:
        size = ""
        if sizes is not None:
            rw, virtual = sizes(c)
            size = f"{human_size(rw)} (virtual {human_size(virtual)})"
        stored = c.model
        cmd = " ".join(command_of(stored.config))
        labels = stored.config.labels or {}
        mounts = stored.mounts or []
        mount_names = [m.name or m.source for m in mounts]
        rows.append({
            "ID": c.id if no_trunc else c.short_id,
            "Image": c.image,
            "Command": go_quote(cmd if no_trunc else _ellipsis(cmd, 20)),
            "CreatedAt": datetime.fromtimestamp(c.created, timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S +0000 UTC"),
            "RunningFor": human_duration(time.time() - c.created) + " ago",
            "Status": _status(c),
            "State": c.status,
            "Ports": "",
            "Names": c.name,
            "Labels": ",".join(sorted(f"{k}={v}" for k, v in labels.items())),
            "LocalVolumes": str(sum(1 for m in mounts if m.driver == "local")),
            "Mounts": ",".join(n if no_trunc else _ellipsis(n, 15) for n in mount_names),
            "Networks": stored.host_config.network_mode or "none",
            "Platform": None, "HealthStatus": "", "IPAddresses": [],
            **({"Size": size} if sizes is not None else {}),
        })
    return rows


#: The docker CLI's column names for each listing's fields (its SubHeaderContext maps):
#: a ``table`` template's header row is the template run on these.
CONTAINER_HEADER = {
    "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
    "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
    "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS", "Platform": "PLATFORM",
    "HealthStatus": "HEALTH STATUS", "IPAddresses": "IP ADDRESSES",
}
IMAGE_HEADER = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
    "Containers": "CONTAINERS", "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}
VOLUME_HEADER = {
    "ID": "ID", "Name": "VOLUME NAME", "Group": "GROUP", "Driver": "DRIVER", "Scope": "SCOPE",
    "Availability": "AVAILABILITY", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS",
    "Links": "LINKS", "Size": "SIZE", "Status": "STATUS",
}
HISTORY_HEADER = {
    "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
}


def row_context(type_name: str, row: Mapping[str, Any], labels: Mapping[str, str] | None = None,
                computed: Mapping[str, Callable[[], str]] | None = None) -> GoStruct:
    """A listing row as the docker CLI's template context: its fields are methods (so
    ``{{json .}}`` has them all, by name), ``Label "k"`` reads one label, ``computed``
    fields are worked out only when a template asks for them."""
    methods: dict[str, Callable[..., Any]] = {k: _constant(v) for k, v in row.items()}
    methods.update(computed or {})
    if labels is not None:
        methods["Label"] = lambda name: labels.get(name, "")
    return GoStruct(type_name, methods, json=lambda: {
        k: m() for k, m in sorted(methods.items()) if arity(m) == 0})


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def container_context(row: Mapping[str, Any] | None, labels: Mapping[str, str],
                      size: Callable[[], str]) -> GoStruct:
    """``row`` None: an empty row (``ps`` checks its template on one)."""
    if row is None:  # each field its type's zero value, as an empty Go context has
        row = {**dict.fromkeys(CONTAINER_HEADER, ""), "Platform": None, "IPAddresses": []}
    return row_context("*formatter.ContainerContext",
                       {k: v for k, v in row.items() if k != "Size"}, labels, {"Size": size})


def history_rows(image: Image, *, human: bool, no_trunc: bool) -> list[dict[str, Any]]:
    """``image history`` rows with the docker CLI's field names and values."""
    from ..images import parse_created

    rows = []
    for r in image.history:
        created_dt = parse_created(r["Created"]) if r["Created"] else None
        created_at = (created_dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                      if created_dt else "")
        by = r["CreatedBy"].replace("\t", " ")
        rows.append({
            "ID": r["Id"] if no_trunc else _short(r["Id"]),
            "CreatedAt": created_at,
            "CreatedSince": _since(created_dt) if human else created_at,
            "CreatedBy": by if no_trunc else _ellipsis(by, 45),
            "Size": human_size(r["Size"]) if human else str(r["Size"]),
            "Comment": r["Comment"],
        })
    return rows


def print_container_table(rows: Sequence[dict[str, Any]]) -> None:
    headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    body = [[r["ID"], r["Image"], r["Command"], r["RunningFor"], r["Status"], r["Ports"],
             r["Names"]] for r in rows]
    if rows and "Size" in rows[0]:
        headers.append("SIZE")
        for line, r in zip(body, rows):
            line.append(r["Size"])
    sys.stdout.write(render_table(headers, body) + "\n")


STATS_HEADER = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                "BLOCK I/O", "PIDS"]


def stats_row(stats: Mapping[str, Any], no_trunc: bool) -> list[str]:
    """One ``docker stats`` row from Docker's stats JSON, with the docker CLI's arithmetic
    and units (memory in binary units, I/O in decimal ones). barque's containers have no
    network interfaces of their own nor block I/O accounting yet: those read 0B / 0B."""
    from ..humanize import binary_size
    from ..stats import cpu_percent, memory_used

    memory = stats.get("memory_stats") or {}
    used, limit = memory_used(dict(memory)), int(memory.get("limit") or 0)
    container_id = str(stats.get("id") or "")
    return [container_id if no_trunc else container_id[:12],
            str(stats.get("name") or "").removeprefix("/"),
            f"{cpu_percent(dict(stats)):.2f}%",
            f"{binary_size(used)} / {binary_size(limit)}",
            f"{used / limit * 100 if limit else 0.0:.2f}%",
            f"{human_size(0)} / {human_size(0)}", f"{human_size(0)} / {human_size(0)}",
            str((stats.get("pids_stats") or {}).get("current", 0))]
