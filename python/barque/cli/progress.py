"""Pull progress on a terminal (one live line per layer, like Docker) or as plain lines."""

from __future__ import annotations

import threading
from typing import TextIO

from ..humanize import human_size


class PullRenderer:
    """Implements :class:`barque.progress.Progress` for the CLI.

    On a terminal, layer lines are redrawn in place; otherwise each status change is printed
    once (byte counts are not, so logs stay short).
    """

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._tty = out.isatty()
        self._order: list[str] = []
        self._lines: dict[str, str] = {}
        self._status: dict[str, str] = {}
        self._drawn = 0

    def message(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()
            if self._tty:
                self._drawn = 0
                self._order = []

    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        line = f"{layer_id}: {status}"
        if current is not None and total:
            line += f"  {_bar(current, total)} {human_size(current)}/{human_size(total)}"
        with self._lock:
            if not self._tty:
                if self._status.get(layer_id) != status:
                    self._status[layer_id] = status
                    self._out.write(line + "\n")
                    self._out.flush()
                return
            if layer_id not in self._lines:
                self._order.append(layer_id)
            self._lines[layer_id] = line
            self._redraw()

    def _redraw(self) -> None:
        up = f"\x1b[{self._drawn}A" if self._drawn else ""
        body = "".join(f"\x1b[2K{self._lines[i]}\n" for i in self._order)
        self._out.write(up + body)
        self._out.flush()
        self._drawn = len(self._order)

    def close(self) -> None:
        pass


def _bar(current: int, total: int, width: int = 40) -> str:
    filled = min(width, int(width * current / total)) if total else 0
    head = ">" if filled < width else ""
    return "[" + "=" * max(0, filled - 1) + head + " " * (width - filled) + "]"
