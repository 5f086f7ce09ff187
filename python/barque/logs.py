"""Reading containers' json-file logs, as ``docker logs`` does.

The supervisor writes one JSON object per line, Docker's format::

    {"log":"hello\\n","stream":"stdout","time":"2026-11-26T17:00:00.123456789Z"}

and rotates ``<id>-json.log`` to ``.1``, ``.2``... (``.1`` newest). Readers go oldest first.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from .errors import InvalidArgumentError

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from io import BufferedReader


class LogEntry(msgspec.Struct, frozen=True):
    stream: str  # "stdout" or "stderr"
    data: bytes
    time: str  # RFC 3339 with nanoseconds, as written

    @property
    def timestamp(self) -> float:
        return parse_time(self.time)


def parse_time(text: str) -> float:
    """An RFC 3339 time (nanoseconds allowed) as Unix seconds."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not m:
        raise ValueError(text)
    base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    zone = m.group(3)
    offset = 0 if zone == "Z" else (1 if zone[0] == "+" else -1) * (
        int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    fraction = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.replace(tzinfo=timezone.utc).timestamp() - offset + fraction


_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: Unix seconds (``1700000000[.5]``), an RFC 3339 time or date
    (``2026-11-26``, ``2026-11-26T17:00:00Z``), or a duration before now (``10m``, ``1h30m``)."""
    now = time.time() if now is None else now
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ns|us|ms|s|m|h))+", text):
        return now - sum(float(n) * _UNIT[u] for n, u in _RELATIVE.findall(text))
    for candidate in (text, text + "Z", text + "T00:00:00Z"):
        try:
            return parse_time(candidate)
        except ValueError:
            continue
    raise InvalidArgumentError(f"invalid value for \"since\": {text!r} "
                               "(a timestamp, an RFC 3339 time, or a duration such as 10m)")


def log_files(current: Path) -> list[Path]:
    """The log's files, oldest first: ``.N`` ... ``.1``, then the current one."""
    rotated = []
    n = 1
    while (p := current.with_name(f"{current.name}.{n}")).exists():
        rotated.append(p)
        n += 1
    return list(reversed(rotated)) + ([current] if current.exists() else [])


def _decode(line: bytes) -> LogEntry | None:
    try:
        obj = json.loads(line)
        return LogEntry(obj.get("stream", "stdout"), obj.get("log", "").encode(),
                        obj.get("time", ""))
    except (ValueError, AttributeError):
        return None  # a torn last line of a crash, or garbage: skipped, as Docker does


def entries(current: Path, *, tail: int | None = None, since: float | None = None,
            until: float | None = None, follow: bool = False,
            running: Callable[[], bool] = lambda: False, poll: float = 0.1
            ) -> Iterator[LogEntry]:
    """The entries of a log, oldest first: the last ``tail`` (None or < 0: all) of those
    between ``since`` and ``until``; then, with ``follow``, those written later, until
    ``running()`` turns false and the log has been read to its end. Rotation while following
    is survived: the file is reopened when the path names a new one."""
    # Open the current file before reading the rotated ones: what is written meanwhile is
    # then in the file we hold, not lost between two reads.
    current_file = _open(current)
    backlog: deque[LogEntry] = deque(maxlen=tail if tail is not None and tail >= 0 else None)
    for path in log_files(current)[:-1] if current_file else log_files(current):
        try:
            with open(path, "rb") as f:
                for line in f:
                    _keep(backlog, line, since, until)
        except FileNotFoundError:  # rotated away while we read
            continue
    reader = _LineReader(current_file)
    for line in reader.lines():
        _keep(backlog, line, since, until)
    yield from backlog
    if not follow:
        reader.close()
        return
    try:
        while True:
            got = False
            for line in reader.lines():
                got = True
                entry = _decode(line)
                if entry is not None and _in_window(entry, since, until):
                    yield entry
            if got:
                continue
            if reader.replaced(current):
                reader = _LineReader(_open(current))
                continue
            if not running():
                for line in reader.lines():
                    entry = _decode(line)
                    if entry is not None and _in_window(entry, since, until):
                        yield entry
                return
            time.sleep(poll)
    finally:
        reader.close()


def _open(path: Path) -> BufferedReader | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def _keep(backlog: deque[LogEntry], line: bytes, since: float | None,
          until: float | None) -> None:
    entry = _decode(line)
    if entry is not None and _in_window(entry, since, until):
        backlog.append(entry)


class _LineReader:
    """Complete lines of a growing file (a partial last line waits for its newline)."""

    def __init__(self, f: BufferedReader | None) -> None:
        self.f = f
        self.partial = b""
        self.inode = os.fstat(f.fileno()).st_ino if f else None

    def lines(self) -> Iterator[bytes]:
        if self.f is None:
            return
        for line in iter(self.f.readline, b""):
            if not line.endswith(b"\n"):
                self.partial += line
                return
            yield self.partial + line
            self.partial = b""

    def replaced(self, path: Path) -> bool:
        try:
            return os.stat(path).st_ino != self.inode
        except FileNotFoundError:
            return False

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def _in_window(entry: LogEntry, since: float | None, until: float | None) -> bool:
    if since is None and until is None:
        return True
    try:
        t = entry.timestamp
    except ValueError:
        return False
    return (since is None or t >= since) and (until is None or t <= until)
