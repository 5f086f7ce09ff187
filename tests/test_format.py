"""``--format`` and ``inspect -f`` Go templates through the CLI, on real containers, images
and volumes, as a Docker user writes them: fields by the docker CLI's names, ``table`` with
its header row and aligned columns, ``json``, and an unknown field failing in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import barque

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)"),
]

NET = ("--network", "none")


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_images):  # type: ignore[no-untyped-def]
    """A store with busybox, one running container (web), one exited (done), a volume."""
    root = tmp_path_factory.mktemp("format") / "root"
    ref = fixture_images["busybox"].ref
    barque(root, "pull", "-q", ref)
    barque(root, "volume", "create", "--label", "tier=db", "data")
    barque(root, "run", "-d", *NET, "--name", "web", "-l", "role=front", "-v", "data:/data",
           ref, "sleep", "600")
    barque(root, "run", *NET, "--name", "done", ref, "true")
    yield root
    barque(root, "rm", "-f", "web", "done", check=False)


@pytest.fixture
def busybox(fixture_images) -> str:  # type: ignore[no-untyped-def]
    return fixture_images["busybox"].ref


def _ids(root: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in barque(root, "ps", "-a", "--format", "json")
            .stdout.splitlines()]
    return {r["Names"]: r["ID"] for r in rows}


def test_ps_custom_format_prints_the_fields_not_the_table(store: Path) -> None:
    ids = _ids(store)
    out = barque(store, "ps", "--format", "{{.ID}} {{.Names}}").stdout
    assert out == f"{ids['web']} web\n"
    out = barque(store, "ps", "-a", "--format", '{{.Names}}:{{.State}}:{{.Label "role"}}').stdout
    assert sorted(out.splitlines()) == ["done:exited:", "web:running:front"]


def test_ps_table_format_has_docker_headers_and_aligned_columns(store: Path) -> None:
    out = barque(store, "ps", "-a", "--format", r"table {{.Names}}\t{{.Status}}").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["NAMES", "STATUS"]
    # tabwriter: column one is the widest cell plus 3 spaces, at least 10 wide
    assert lines[0] == "NAMES     STATUS"
    body = sorted(lines[1:])
    assert body[0].startswith("done      Exited (0) ")
    assert body[1].startswith("web       Up ")


def test_ps_json_and_quiet_with_a_format(store: Path) -> None:
    rows = [json.loads(line) for line in barque(store, "ps", "--format", "json").stdout
            .splitlines()]
    assert [r["Names"] for r in rows] == ["web"]
    assert rows[0]["Mounts"] == "data" and rows[0]["Networks"] == "none"
    assert rows[0]["Command"] == '"sleep 600"'
    # fields that are lists are lists on the empty row ps checks its template on, too
    assert barque(store, "ps", "--format", "{{range .IPAddresses}}x{{end}}{{len .IPAddresses}}"
                  ).stdout == "0\n"
    quiet = barque(store, "ps", "-q", "--format", "{{.Names}}")
    assert quiet.stdout == rows[0]["ID"] + "\n"  # -q wins, with Docker's warning
    assert "Ignoring custom format" in quiet.stderr


def test_ps_template_showing_size_turns_sizes_on_and_table_keyword_is_the_default(
        store: Path) -> None:
    import re

    out = barque(store, "ps", "--format", "{{.Names}} {{.Size}}").stdout
    assert re.fullmatch(r"web \S+ \(virtual \S+\)\n", out), out
    # without .Size in the template Docker does not ask for sizes: "0B"
    assert json.loads(barque(store, "ps", "--format", "json").stdout)["Size"] == "0B"
    assert barque(store, "ps", "--format", "table").stdout == barque(store, "ps").stdout


def test_the_fast_path_and_the_typer_command_print_the_same(store: Path) -> None:
    import subprocess
    import sys

    typer_only = [sys.executable, "-c", "import sys; sys.argv[0] = 'barque'; "
                  "from barque.cli.main import main; main()"]
    for fmt in (r'table {{.ID}}\t{{.Names}}\t{{.State}}\t{{.Label "role"}}', "{{.Names}}",
                "{{.Foo}}"):
        fast = barque(store, "ps", "-a", "--format", fmt, check=False)
        typed = subprocess.run([*typer_only, "--root", str(store), "ps", "-a", "--format", fmt],
                               capture_output=True, text=True)
        assert (fast.returncode, fast.stdout, fast.stderr) == \
            (typed.returncode, typed.stdout, typed.stderr)


def test_unknown_field_fails_with_one_line_and_exit_1(store: Path, busybox: str) -> None:
    for args, type_name in ((("ps", "--format", "{{.Foo}}"), "*formatter.ContainerContext"),
                            (("images", "--format", "{{.Foo}}"), "*formatter.imageContext"),
                            (("volume", "ls", "--format", "{{.Foo}}"),
                             "*formatter.volumeContext"),
                            (("history", "--format", "{{.Foo}}", busybox),
                             "*formatter.historyContext")):
        proc = barque(store, *args, check=False)
        assert proc.returncode == 1, proc
        assert proc.stdout == ""
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].endswith(
            f'template: :1:2: executing "" at <.Foo>: can\'t evaluate field Foo in type '
            f'{type_name}'), lines[0]
    proc = barque(store, "ps", "--format", "{{.ID}", check=False)
    assert (proc.returncode, proc.stderr) == (
        1, 'failed to parse template: template: :1: unexpected "}" in operand\n')


def test_images_format(store: Path, fixture_images) -> None:  # type: ignore[no-untyped-def]
    image = fixture_images["busybox"]
    out = barque(store, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert out == f"{image.ref}\n"
    table = barque(store, "images", "--format", r"table {{.Repository}}\t{{.ID}}").stdout
    header, row = table.splitlines()
    assert header.startswith("REPOSITORY") and header.endswith("IMAGE ID")
    assert row.split() == [image.ref.rpartition(":")[0], json.loads(barque(
        store, "images", "--format", "json").stdout)["ID"]]


def test_volume_ls_and_inspect_format(store: Path) -> None:
    assert barque(store, "volume", "ls", "--format", "{{.Name}}").stdout == "data\n"
    out = barque(store, "volume", "ls", "--format", '{{.Name}} {{.Label "tier"}} {{.Driver}}')
    assert out.stdout == "data db local\n"
    mountpoint = barque(store, "volume", "inspect", "-f", "{{.Mountpoint}}", "data").stdout
    assert mountpoint == f"{store}/volumes/data/_data\n"
    assert Path(mountpoint.strip()).is_dir()


def test_history_format(store: Path, fixture_images) -> None:  # type: ignore[no-untyped-def]
    layers = fixture_images["layers"].ref
    barque(store, "pull", "-q", layers)
    full = barque(store, "history", "--no-trunc", "--format", "{{.CreatedBy}}", layers).stdout
    as_json = [json.loads(line) for line in barque(
        store, "history", "--no-trunc", "--format", "json", layers).stdout.splitlines()]
    assert full.splitlines() == [r["CreatedBy"] for r in as_json]
    assert any(r["CreatedBy"] for r in as_json)
    short = barque(store, "history", "--format", "{{.CreatedBy}}", layers).stdout.splitlines()
    assert len(short) == len(as_json) and all(len(line) <= 45 for line in short)
    table = barque(store, "history", "--format", r"table {{.ID}}\t{{.Size}}", layers).stdout
    assert table.splitlines()[0] == "IMAGE          SIZE"


def test_inspect_format_on_container_and_image(store: Path, busybox: str) -> None:
    out = barque(store, "inspect", "-f", "{{.State.Status}} {{.Name}}", "web", "done").stdout
    assert out == "running /web\nexited /done\n"
    assert barque(store, "inspect", "--format", '{{index .Config.Labels "role"}}',
                  "web").stdout == "front\n"
    config = json.loads(barque(store, "inspect", "-f", "{{json .Config}}", busybox).stdout)
    full = json.loads(barque(store, "inspect", busybox).stdout)[0]
    assert config == full["Config"]
    # a list field the image's JSON leaves out reads as Go's empty slice, not an error
    assert barque(store, "image", "inspect", "-f", "{{len .Config.Env}}", busybox).stdout == \
        str(len(full["Config"].get("Env") or [])) + "\n"
    env = barque(store, "inspect", "-f", "{{range $i, $e := .Config.Env}}{{$i}}={{$e}}\n{{end}}",
                 "web").stdout
    container_env = json.loads(barque(store, "inspect", "web").stdout)[0]["Config"]["Env"]
    # each object's result ends with a newline of its own
    assert container_env and env == "".join(f"{i}={e}\n" for i, e in enumerate(container_env)) \
        + "\n"


def test_inspect_unknown_key_is_an_error(store: Path) -> None:
    proc = barque(store, "inspect", "-f", "{{.State.Nope}}", "web", check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == ('template parsing error: template: :1:2: executing "" at '
                           '<.State.Nope>: map has no entry for key "Nope"\n')
