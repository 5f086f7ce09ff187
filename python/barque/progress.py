"""How long-running work (pull, push, later build) reports progress.

Services call a :class:`Progress`; the CLI supplies a renderer, library users may pass their own
or get :class:`NullProgress`. Statuses and their order follow Docker's pull output.
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
        'Pushing' (with bytes), 'Pushed', 'Layer already exists', 'Mounted from REPO'."""


class NullProgress:
    def message(self, text: str) -> None:
        pass

    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        pass
