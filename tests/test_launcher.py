"""The launcher's fast parser: what it takes itself, and what it leaves to the full CLI."""

from __future__ import annotations

import pytest

from barque.cli.launcher import parse_ps, parse_pull, parse_run


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
    _, args, _, _ = parse_run(["run", "--device", "/dev/fuse", "--device=/dev/kmsg:/dev/k:r",
                               "img"])
    assert args.device == ["/dev/fuse", "/dev/kmsg:/dev/k:r"]


@pytest.mark.parametrize("argv", [
    ["run", "--help", "img"],            # help is typer's
    ["run", "--bogus", "img"],           # unknown option: typer words the error
    ["run", "--pids-limit", "x", "img"],  # bad value: likewise
    ["create", "--cpus=abc", "img"],     # (so both print test_flag_errors' one line)
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


def test_pull() -> None:
    assert parse_pull(["--root", "/r", "pull", "-q", "busybox"]) == (
        {"quiet": True, "reference": "busybox"}, "/r", None)
    assert parse_pull(["image", "pull", "--platform=linux/arm64", "--quiet", "a/b:1"]) == (
        {"platform": "linux/arm64", "quiet": True, "reference": "a/b:1"}, None, None)
    assert parse_pull(["pull", "busybox", "-q"]) is None   # options after the operand: typer's
    assert parse_pull(["pull", "--help"]) is None
    assert parse_pull(["pull"]) is None
    assert parse_pull(["pull", "-a", "busybox"]) is None
    assert parse_pull(["images", "pull"]) is None


def test_fast_commands_do_not_import_typer(tmp_path) -> None:
    """The point of the fast path: a failing pull (nothing listens on port 1) gets as far as
    the network and reports like the full CLI, without typer ever being imported."""
    import subprocess
    import sys

    # The fast path leaves with os._exit: the probe reports from there.
    probe = ("import os, sys\n"
             "from barque.cli.launcher import main\n"
             "sys.argv = ['barque', '--root', sys.argv[1], 'pull', '-q', '127.0.0.1:1/x/y:z']\n"
             "leave = os._exit\n"
             "def report(code):\n"
             "    print('typer' in sys.modules, file=sys.stderr)\n"
             "    sys.stderr.flush()\n"
             "    leave(code)\n"
             "os._exit = report\n"
             "main()\n")
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "root")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("Error: ") and proc.stderr.rstrip().endswith("False")


def test_the_forkserver_reads_the_front_ends_request_format() -> None:
    # The bytes rust/barque-cli's request::encode is tested to produce for these values.
    from barque.cli.forkserver import decode

    payload = (b"BRQ1" + bytes([2, 0, 0, 0, 3, 0, 0, 0]) + b"run"
               + bytes([0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0]) + b"A=b" + (0o027).to_bytes(4, "little"))
    assert decode(payload) == (["run", ""], {"A": "b"}, 0o027)
    with pytest.raises(ValueError):
        decode(b"nope" + payload[4:])
    with pytest.raises(ValueError):
        decode(payload[:14])  # "run" cut short
