"""Resolve ``docker run --user`` against the image's ``/etc/passwd`` and ``/etc/group``.

The rules are runc's ``user.GetExecUser`` (what Docker calls for ``--user``), so a container
runs as the same uid/gid/supplementary groups under barque as under Docker:

- ``USER`` is ``user[:group]``; either part may be a name or a number.
- ``user`` is looked up in passwd by uid (when numeric) or by name; the first match wins. A
  numeric uid with no passwd entry is fine (gid 0, home ``/``); an unknown name is an error.
- With an explicit ``group``, it is looked up in group by gid or name and replaces the primary
  gid; a numeric gid with no entry is fine; an unknown name is an error. No supplementary
  groups are added in that form.
- Without an explicit group, the supplementary gids are those of every group whose member list
  names the matched user (the primary gid is not repeated unless the file lists it).
- An empty ``USER`` means uid 0 (looked up like a numeric uid, so root's home is found).

:func:`process_groups` then adds what Docker's daemon adds on top of runc: the primary gid
first (Docker's fix for CVE-2022-36109, so ``id`` lists it among the groups), and the
``--group-add`` groups.

Pure functions over bytes: nothing here touches the host's user database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import msgspec

from ..errors import InvalidArgumentError

__all__ = ["ExecUser", "PasswdEntry", "GroupEntry", "parse_passwd", "parse_group",
           "resolve_user", "resolve_group_add", "process_groups"]

#: Largest uid/gid runc accepts (``math.MaxInt32``).
MAX_ID = 2**31 - 1

_NUMERIC = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.Atoi accepts (no spaces or '_')

ERR_NO_PASSWD = "no matching entries in passwd file"
ERR_NO_GROUP = "no matching entries in group file"


class PasswdEntry(msgspec.Struct, frozen=True):
    """One ``/etc/passwd`` line: ``name:password:uid:gid:gecos:home:shell``."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str


class GroupEntry(msgspec.Struct, frozen=True):
    """One ``/etc/group`` line: ``name:password:gid:member,member``."""

    name: str
    gid: int
    members: tuple[str, ...]


class ExecUser(msgspec.Struct, frozen=True):
    """The identity a container process runs as.

    ``additional_gids`` are the supplementary groups (``process.user.additionalGids``), in the
    order the group file lists them; ``home`` is the passwd home (``/`` when unknown), which
    is what the runtime puts in ``HOME`` when the environment does not set it.
    """

    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = msgspec.field(default=())
    home: str = "/"


def _atoi(text: str) -> int | None:
    """Go's ``strconv.Atoi``: an optionally signed decimal, else ``None``."""
    return int(text) if _NUMERIC.fullmatch(text) else None


def _lenient_int(text: str) -> int:
    """runc's parser stores a malformed number field as 0; so do we."""
    value = _atoi(text.strip())
    return 0 if value is None else value


def _lines(data: bytes) -> list[list[str]]:
    """Split a colon-separated database into fields, skipping blank and comment lines."""
    rows: list[list[str]] = []
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        rows.append(line.split(":"))
    return rows


def parse_passwd(data: bytes) -> list[PasswdEntry]:
    """Parse ``/etc/passwd`` content; missing trailing fields are empty, bad numbers are 0."""
    entries = []
    for f in _lines(data):
        f += [""] * (7 - len(f))
        entries.append(PasswdEntry(name=f[0], uid=_lenient_int(f[2]), gid=_lenient_int(f[3]),
                                   home=f[5], shell=f[6]))
    return entries


def parse_group(data: bytes) -> list[GroupEntry]:
    """Parse ``/etc/group`` content; the member list is comma-separated, empties dropped."""
    entries = []
    for f in _lines(data):
        f += [""] * (4 - len(f))
        members = tuple(m.strip() for m in f[3].split(",") if m.strip())
        entries.append(GroupEntry(name=f[0], gid=_lenient_int(f[2]), members=members))
    return entries


def _check_range(value: int) -> int:
    if not 0 <= value <= MAX_ID:
        raise InvalidArgumentError(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def resolve_user(spec: str | None, lookup: Callable[[str], bytes | None]) -> ExecUser:
    """Resolve a ``--user``/image ``User`` string inside an image.

    ``lookup(path)`` returns the content of ``/etc/passwd`` or ``/etc/group`` in the image's
    root filesystem, or ``None`` when the file is absent (then only numeric ids resolve).

    Raises :class:`~barque.errors.InvalidArgumentError` with runc's wording:
    ``unable to find user NAME: no matching entries in passwd file``,
    ``unable to find group NAME: no matching entries in group file``, or the range error for
    ids outside ``0..2**31-1``.
    """
    spec = spec or ""
    user_arg, _, group_arg = spec.partition(":")
    uid_arg = _atoi(user_arg)
    gid_arg = _atoi(group_arg)

    passwd_data = lookup("/etc/passwd")
    passwd = parse_passwd(passwd_data) if passwd_data is not None else []

    uid, gid, home = 0, 0, "/"
    matched_name = ""
    if user_arg == "":
        users = [u for u in passwd if u.uid == 0]
    elif uid_arg is not None:
        users = [u for u in passwd if u.uid == uid_arg]
    else:
        users = [u for u in passwd if u.name == user_arg]
    if users:
        first = users[0]  # first match wins, even if there are more
        matched_name, uid, gid, home = first.name, first.uid, first.gid, first.home
    elif user_arg != "":
        if uid_arg is None:
            raise InvalidArgumentError(f"unable to find user {user_arg}: {ERR_NO_PASSWD}")
        uid = _check_range(uid_arg)

    sgids: tuple[int, ...] = ()
    if group_arg != "" or matched_name != "":
        group_data = lookup("/etc/group")
        groups_db = parse_group(group_data) if group_data is not None else []
        if group_arg == "":
            matches = [g for g in groups_db if matched_name in g.members]
        elif gid_arg is not None:
            matches = [g for g in groups_db if g.gid == gid_arg]
        else:
            matches = [g for g in groups_db if g.name == group_arg]
        if group_arg != "":
            if matches:
                gid = matches[0].gid
            elif gid_arg is None:
                raise InvalidArgumentError(f"unable to find group {group_arg}: {ERR_NO_GROUP}")
            else:
                gid = _check_range(gid_arg)
        else:
            sgids = tuple(g.gid for g in matches)

    return ExecUser(uid=uid, gid=gid, additional_gids=sgids, home=home or "/")


def resolve_group_add(groups: Sequence[str],
                      lookup: Callable[[str], bytes | None]) -> tuple[int, ...]:
    """The gids of ``--group-add`` values (names or gids) in the image's ``/etc/group``.

    A name or gid found in the file takes that entry's gid; an unknown number is used as it
    is; an unknown name raises :class:`~barque.errors.InvalidArgumentError` with Docker's
    ``Unable to find group NAME: no matching entries in group file``. Repeats are dropped;
    the order is the command line's.
    """
    if not groups:
        return ()
    group_data = lookup("/etc/group")
    groups_db = parse_group(group_data) if group_data is not None else []
    gids: list[int] = []
    for wanted in groups:
        match = next((g for g in groups_db if g.name == wanted or str(g.gid) == wanted), None)
        if match is not None:
            gid = match.gid
        else:
            number = _atoi(wanted)
            if number is None:
                raise InvalidArgumentError(f"Unable to find group {wanted}: {ERR_NO_GROUP}")
            gid = _check_range(number)
        if gid not in gids:
            gids.append(gid)
    return tuple(gids)


def process_groups(user: ExecUser, group_add: Sequence[str],
                   lookup: Callable[[str], bytes | None]) -> tuple[int, ...]:
    """The supplementary groups a container process gets, as Docker's daemon sets
    ``process.user.additionalGids``: the primary gid, the user's groups from the image's
    ``/etc/group``, then the ``--group-add`` groups (repeats dropped, first place kept)."""
    ordered: list[int] = []
    for gid in (user.gid, *user.additional_gids, *resolve_group_add(group_add, lookup)):
        if gid not in ordered:
            ordered.append(gid)
    return tuple(ordered)
