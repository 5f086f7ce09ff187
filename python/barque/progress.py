"""How long-running work (pull, push, save, load, import, commit; later build) reports
progress, and how it is cancelled.

Services call a :class:`Progress` and never print; the CLI supplies a renderer, library users
may pass their own or get :class:`NullProgress`. Statuses and their order follow Docker's pull
output. A long call's ``cancel`` argument is a :class:`Cancel` (``threading.Event``): it is
checked between steps and at the last point before the store changes, and a cancelled call
raises :class:`barque.errors.OperationCancelledError`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol
else:  # a plain base class at run time: importing typing costs start-up time
    Protocol = object


class Progress(Protocol):
    def message(self, text: str) -> None:
        """A line about the whole operation ("Digest: sha256:...")."""

    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        """A layer's status: 'Pulling fs layer', 'Waiting', 'Downloading' (with bytes),
        'Verifying Checksum', 'Pull complete', 'Already exists'; for a push 'Preparing',
        'Pushing' (with bytes), 'Pushed', 'Layer already exists', 'Mounted from REPO'; for
        a save 'Saving layer' (bytes) and 'Layer saved'; for a load 'Loading layer' (bytes,
        per archive member); for an import 'Importing' (bytes read) and 'Imported'; for a
        commit 'Writing layer' (changes written of all) and 'Committed'."""


class NullProgress:
    def message(self, text: str) -> None:
        pass

    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        pass


class Cancel(Protocol):
    """What a long call's ``cancel`` argument must offer: ``threading.Event`` does."""

    def is_set(self) -> bool:
        """True once the caller wants the call to stop."""


def check_cancelled(cancel: Cancel | None, what: str) -> None:
    """Raise OperationCancelledError when ``cancel`` is set: long calls check it between
    steps (a chunk, a layer, an entry), never while the store is half changed."""
    if cancel is not None and cancel.is_set():
        from .errors import OperationCancelledError

        raise OperationCancelledError(f"{what} cancelled")


class CancellingProgress:
    """Passes reports on to ``progress`` and raises OperationCancelledError from a layer's
    report once ``cancel`` is set: for code that reports from inside its loops (a push's
    uploads) but does not know about cancelling. Whole-operation messages never raise, so
    the final "Status:" line after a commit point cannot undo a finished call."""

    def __init__(self, progress: Progress, cancel: Cancel | None, what: str) -> None:
        self._progress = progress
        self._cancel = cancel
        self._what = what

    def message(self, text: str) -> None:
        self._progress.message(text)

    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        check_cancelled(self._cancel, self._what)
        self._progress.layer(layer_id, status, current, total)
