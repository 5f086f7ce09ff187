"""`exec -t` gives a real terminal of the container's own: a pty of its devpts (so `tty`
prints /dev/pts/N, as under `run -it`), of the caller's window size, following resizes, owned
by the exec'd user, and the process's exit code comes back. Driven through a real pty, as a
user at a terminal would."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from helpers import Terminal, barque, cli

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)"),
]


@pytest.fixture(scope="module")
def container(tmp_path_factory, fixture_images):  # type: ignore[no-untyped-def]
    """(store, name) of a detached busybox container without a terminal of its own."""
    root = tmp_path_factory.mktemp("exec-tty") / "root"
    barque(root, "run", "-d", "--network", "none", "--name", "box",
           fixture_images["busybox"].ref, "sleep", "600")
    yield root, "box"
    barque(root, "rm", "-f", "box", check=False)


def test_exec_it_is_a_terminal_of_the_containers_devpts(container) -> None:
    root, name = container
    term = Terminal(root, "exec", "-it", name, "sh", rows=21, cols=77)
    term.read_until(b"# ")
    tty = term.command("tty", "T1").strip()
    assert re.fullmatch(r"/dev/pts/\d+", tty), tty
    # The same pty is in the container's /dev/pts (its own devpts instance) and is the
    # shell's controlling terminal and stdio.
    listed = term.command("ls /dev/pts; readlink /proc/$$/fd/0; readlink /proc/$$/fd/2", "T2")
    assert listed.split() == sorted(["ptmx", tty.rsplit("/", 1)[1]]) + [tty, tty]
    assert term.command("stty size", "T3").strip() == "21 77"
    term.resize(30, 90)
    # The resize reaches the pty asynchronously: the shell reads the size again until it
    # sees the new one (a timeout means it never came).
    term.command("while [ \"$(stty size)\" != '30 90' ]; do sleep 0.05; done", "T4")
    assert term.command("stty size", "T5").strip() == "30 90"
    assert term.command("echo $TERM", "T6").strip() == "xterm"
    os.write(term.fd, b"exit 5\r")
    assert term.exit_code() == 5


def test_exec_it_as_another_user_owns_its_terminal(container) -> None:
    root, name = container
    term = Terminal(root, "exec", "-it", "-u", "nobody", name, "sh", rows=24, cols=80)
    term.read_until(b"$ ")
    tty = term.command("tty", "U1").strip()
    assert re.fullmatch(r"/dev/pts/\d+", tty), tty
    assert term.command(f"stat -c %U {tty}", "U2").strip() == "nobody"
    assert term.command("id -u", "U3").strip() == "65534"
    os.write(term.fd, b"exit\r")
    assert term.exit_code() == 0


def test_exec_t_without_i_needs_no_terminal_on_our_side(container) -> None:
    root, name = container
    # As with Docker: the output comes through the pty (so \r\n), the code through exec.
    out = subprocess.run([*cli(), "--root", str(root), "exec", "-t", name, "tty"],
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert re.fullmatch(rb"/dev/pts/\d+\r\n", out.stdout), out
    assert out.returncode == 0
    code = subprocess.run([*cli(), "--root", str(root), "exec", "-t", name, "sh", "-c",
                           "exit 3"], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=60).returncode
    assert code == 3
    missing = barque(root, "exec", "-t", name, "nope", check=False)
    assert missing.returncode == 127
    assert 'exec: "nope": executable file not found in $PATH' in missing.stderr


def test_exec_it_refuses_an_input_that_is_not_a_terminal(container) -> None:
    root, name = container
    proc = subprocess.run([*cli(), "--root", str(root), "exec", "-it", name, "true"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == "Error: the input device is not a TTY\n"
