"""The system service: what the store holds (``system df``) and removing all that is unused
at once (``system prune``), over the image, container and volume services."""

from __future__ import annotations

import msgspec

from .diskusage import tree_size

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from .engine import Engine


class UsageRow(msgspec.Struct):
    """One row of ``system df``: Docker's TYPE, TOTAL, ACTIVE, SIZE and RECLAIMABLE."""

    type: str
    total: int
    active: int
    size: int
    reclaimable: int


class SystemPruneReport(msgspec.Struct):
    containers: list[str]
    volumes: list[str]
    images: list[dict[str, str]]
    space_reclaimed: int


class SystemService:
    """Obtain it as ``Engine(...).system``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def df(self) -> list[UsageRow]:
        """Images, Containers, Local Volumes and Build Cache (barque builds nothing: zero)."""
        engine = self._engine
        images = engine.images.usage()
        containers = engine.containers.list(all=True)
        active = [c for c in containers if c.status in ("running", "paused")]
        rw = {c.id: engine.containers.sizes(c)[0] for c in containers}
        active_ids = {c.id for c in active}
        volumes = engine.volumes.list()
        volume_sizes = {v.name: tree_size(v.mountpoint) for v in volumes}
        used = {v.name for v in volumes if engine.volumes.users(v.name)}
        return [
            UsageRow("Images", images.total, images.active, images.size, images.reclaimable),
            UsageRow("Containers", len(containers), len(active), sum(rw.values()),
                     sum(size for cid, size in rw.items() if cid not in active_ids)),
            UsageRow("Local Volumes", len(volumes), len(used), sum(volume_sizes.values()),
                     sum(size for name, size in volume_sizes.items() if name not in used)),
            UsageRow("Build Cache", 0, 0, 0, 0),
        ]

    def prune(self, *, all: bool = False, volumes: bool = False) -> SystemPruneReport:
        """Docker's ``system prune``: stopped containers first (their images and volumes then
        count as unused), with ``volumes`` the anonymous volumes no container uses, then
        dangling images -- every unused one with ``all`` -- and stale partial downloads."""
        engine = self._engine
        removed_containers, reclaimed = engine.containers.prune()
        removed_volumes: list[str] = []
        if volumes:
            removed_volumes, volume_bytes = engine.volumes.prune()
            reclaimed += volume_bytes
        images = engine.images.prune(all=all)
        return SystemPruneReport(removed_containers, removed_volumes, images.deleted,
                                 reclaimed + images.space_reclaimed)

