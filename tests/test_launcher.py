"""The launcher's fast parser: what it takes itself, and what it leaves to the full CLI."""

from __future__ import annotations

import pytest

from barque.cli.launcher import parse_ps, parse_run


def test_run_options_bundled_and_attached_values() -> None:
    kind, args, root, config = parse_run(
        ["--root", "/r", "run", "-it", "--rm", "-eA=1", "-e", "B=2", "--name=x", "-v", "v:/d",
         "--no-sig-proxy", "busybox", "sh", "-c", "echo -e"])
    assert (kind, root, config) == ("run", "/r", None)
    assert (args.interactive, args.tty, args.rm, args.sig_proxy) == (True, True, True, False)
    assert args.env == ["A=1", "B=2"] and args.name == "x" and args.volume == ["v:/d"]
    # options after the image belong to the command
    assert args.image == "busybox" and args.command == ["sh", "-c", "echo -e"]


def test_container_create_and_typed_values() -> None:
    kind, args, _, _ = parse_run(["container", "create", "--pids-limit", "20", "--cpus=0.5",
                                  "img"])
    assert kind == "create" and args.pids_limit == 20 and args.cpus == 0.5


@pytest.mark.parametrize("argv", [
    ["run", "--help", "img"],            # help is typer's
    ["run", "--bogus", "img"],           # unknown option: typer words the error
    ["run", "--pids-limit", "x", "img"],  # bad value: likewise
    ["run", "-e"],                       # missing value
    ["run", "--rm"],                     # no image
    ["pull", "img"],                     # not a fast command
])
def test_everything_else_goes_to_the_full_parser(argv) -> None:
    assert parse_run(argv) is None


def test_ps() -> None:
    values, root, _ = parse_ps(["--root=/r", "ps", "-aq", "--filter", "status=exited", "-f",
                                "name=x", "--format", "json"])
    assert root == "/r"
    assert values == {"all": True, "quiet": True, "filter": ["status=exited", "name=x"],
                      "format": "json"}
    assert parse_ps(["container", "ls", "-a"]) == ({"all": True}, None, None)
    assert parse_ps(["ls"]) is None            # not `barque ls`
    assert parse_ps(["ps", "extra"]) is None   # an operand: typer's error
    assert parse_ps(["ps", "--last", "3"]) is None
