"""The benchmark suite's report logic (scripts/bench/suite.py) on synthetic numbers.

Pure logic: nothing is timed or run here; timed assertions do not belong in tests."""

from __future__ import annotations

import importlib.util
import sys
import zlib
from pathlib import Path

import pytest

SUITE_PATH = Path(__file__).resolve().parents[1] / "scripts" / "bench" / "suite.py"


@pytest.fixture(scope="module")
def suite():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_suite", SUITE_PATH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_suite"] = mod
    spec.loader.exec_module(mod)
    return mod


def row(case: str, tool: str, samples: list[float], unit: str = "ms", anchor: bool = False,
        **kw) -> dict:
    return {"case": case, "tool": tool, "samples": samples, "unit": unit, "anchor": anchor, **kw}


def synthetic() -> list[dict]:
    return [
        row("a", "runc run", [40.0] * 10, anchor=True),
        row("a", "crun run", [16.0, 15.0, 17.0], anchor=True),
        row("a", "barque-runtime run", [14.0, 13.0, 15.0]),           # PASS both
        row("d", "barque run --rm (CLI)", [250.0, 260.0, 240.0]),      # MISS both
        row("d", "docker run --rm", [500.0, 510.0], anchor=True),
        row("d", "engine.containers.run (Python)", [12.0]),            # PASS (< crun 16)
        row("e-gzip", "barque pull", [2.0, 2.2, 1.9], unit="s"),
        row("e-gzip", "docker pull", [10.0], unit="s", anchor=True),   # 2.0 <= 2.5: PASS
        row("e-gzip", "gunzip + untar floor", [1.0], unit="s", anchor=True),  # 2.0 > 1.3: MISS
        row("f", "openssl dgst -sha256", [100.0], anchor=True),
        row("f", "barque sha256_file", [110.0]),                      # 110 <= 111.1: PASS
        row("g", "barque-shim", [2100.0], unit="kB"),                  # > 2048: MISS
        row("h", "barque ps", [], error="exit 1: boom"),
    ]


def status(evaluated: list[dict], case: str, tool: str, target: str) -> str:
    return next(t["status"] for t in evaluated
                if t["case"] == case and t["tool"] == tool and t["target"] == target)


def test_targets_pass_miss_and_na(suite) -> None:  # type: ignore[no-untyped-def]
    ev = suite.evaluate_targets(synthetic())
    assert status(ev, "a", "barque-runtime run", "≤ crun") == "PASS"
    assert status(ev, "a", "barque-runtime run", "≤ 0.5× runc") == "PASS"
    assert status(ev, "d", "barque run --rm (CLI)", "≤ runc run") == "MISS"
    assert status(ev, "d", "barque run --rm (CLI)", "≤ 0.1× docker") == "MISS"
    assert status(ev, "d", "engine.containers.run (Python)", "< crun run") == "PASS"
    assert status(ev, "e-gzip", "barque pull", "≤ 0.25× docker pull") == "PASS"
    assert status(ev, "e-gzip", "barque pull", "≤ 1.3× floor") == "MISS"
    assert status(ev, "e-zstd", "barque pull", "≤ 0.25× docker pull (gzip)") == "n/a"
    assert status(ev, "f", "barque sha256_file", "≥ 0.9× openssl GB/s") == "PASS"
    assert status(ev, "g", "barque-shim", "≤ 2 MB") == "MISS"
    ratio = next(t["ratio"] for t in ev if t["target"] == "≤ 0.5× runc")
    assert ratio == pytest.approx(14.0 / 40.0)


def test_sha256_limit_is_ten_percent_of_throughput(suite) -> None:  # type: ignore[no-untyped-def]
    rows = [row("f", "openssl dgst -sha256", [100.0], anchor=True),
            row("f", "barque sha256_file", [112.0])]  # 0.89x openssl's GB/s
    assert status(suite.evaluate_targets(rows), "f", "barque sha256_file",
                  "≥ 0.9× openssl GB/s") == "MISS"


def test_report_table(suite) -> None:  # type: ignore[no-untyped-def]
    env = {"date": "2026-01-01 00:00 UTC", "cpu": "Test CPU", "cores": 2, "kernel": "6.0",
           "cgroup": "hybrid", "versions": {"runc": "runc 1.1.5"}, "mode": "full"}
    md = suite.render_report(synthetic(), env, {"(h) barque ps": "exit 1: boom\nlast line"})
    lines = md.splitlines()
    assert "# barque benchmark suite — 2026-01-01 00:00 UTC" in lines[0]
    assert any("Test CPU, 2 cores, kernel 6.0, cgroup hybrid" in x for x in lines)
    assert "- runc: runc 1.1.5" in lines
    table = [x for x in lines if x.startswith("| ")]
    assert table[0].startswith("| case | tool | median | spread")
    # every table line has the same number of cells (no stray newline or pipe from an error)
    assert len({x.count("|") for x in table}) == 1
    brt = next(x for x in table if "| barque-runtime run |" in x)
    assert "14.0 ms" in brt and "0.35× runc run" in brt and "0.88× crun run" in brt
    assert brt.rstrip(" |").endswith("PASS PASS")
    runc = next(x for x in table if "| runc run |" in x)
    assert "p10–p90" in runc and "PASS" not in runc and "MISS" not in runc
    cli = next(x for x in table if "barque run --rm (CLI)" in x)
    assert "MISS MISS" in cli and "(a)" in cli  # cross-case ratio to runc from case (a)
    pull = next(x for x in table if "| e-gzip | barque pull |" in x)
    assert "0.20× docker pull" in pull and "2.00× gunzip + untar floor" in pull
    assert "PASS MISS" in pull
    assert any("| h | barque ps |" in x and "FAILED: exit 1: boom" in x for x in table)
    assert "- **MISS** (g) barque-shim ≤ 2 MB: 2100 vs limit 2048" in lines
    assert any(x.startswith("4 of 11 targets missed") for x in lines)
    assert "- (h) barque ps: `last line`" in lines


def test_spread_and_percentile(suite) -> None:  # type: ignore[no-untyped-def]
    xs = [float(x) for x in range(1, 12)]  # 11 samples: p10-p90
    kind, lo, hi = suite.spread(xs)
    assert kind == "p10–p90" and lo == pytest.approx(2.0) and hi == pytest.approx(10.0)
    assert suite.spread([3.0, 1.0, 2.0]) == ("min–max", 1.0, 3.0)
    assert suite.percentile([5.0], 99) == 5.0


def test_plain_png_is_a_valid_png(suite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "chart.png"
    suite._plain_png(synthetic(), out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # IHDR's CRC is right
    length = int.from_bytes(data[8:12], "big")
    chunk = data[12:16 + length]
    assert int.from_bytes(data[16 + length:20 + length], "big") == zlib.crc32(chunk)


def test_an_anchors_missing_feature_is_a_note_not_a_failure(suite) -> None:  # type: ignore[no-untyped-def]
    rows = [row("e-zstd", "docker pull", [], unit="s", anchor=True,
                error="exit 1:\n failed to register layer: archive/tar: invalid tar header"),
            row("e-zstd", "barque pull", [], unit="s", error="exit 1: boom")]
    errors = {"(e-zstd) docker pull": rows[0]["error"], "(e-zstd) barque pull": "exit 1: boom"}
    notes: list[str] = []
    suite.reclassify(rows, errors, notes)
    assert list(errors) == ["(e-zstd) barque pull"]  # barque's own failure stays a failure
    assert rows[0]["error"] == "" and "zstd" in rows[0]["note"] and len(notes) == 1


def test_the_cli_rows_use_the_default_forkserver_directory(suite, tmp_path, monkeypatch
                                                          ) -> None:  # type: ignore[no-untyped-def]
    """The suite must time what users get: no private BARQUE_FORKSERVER_DIR, the server
    started by a first command, and every later `barque` required to be served by it. A
    stand-in `barque` records how it is called (nothing is timed)."""
    calls = tmp_path / "calls"
    fake = tmp_path / "barque"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$BARQUE_FORKSERVER ${{BARQUE_FORKSERVER_DIR:-default}} $*" >> {calls}\n'
        'case "$*" in *info*) echo \'{"ClientInfo": {"FastPath": '
        '{"Directory": "/run/barque/forkserver/0123456789abcdef"}}}\';; esac\n')
    fake.chmod(0o755)
    monkeypatch.setenv("BARQUE_FORKSERVER_DIR", str(tmp_path / "private"))
    monkeypatch.setenv("BARQUE_FORKSERVER", "off")
    bench = object.__new__(suite.Suite)
    bench.barque, bench.work, bench.notes = str(fake), tmp_path, []
    bench.start_forkserver()
    first, second = calls.read_text().splitlines()
    assert first == "auto default --version"
    assert second.startswith("require default --root ") and second.endswith(" info --format json")
    assert "BARQUE_FORKSERVER_DIR" not in suite.os.environ
    assert suite.os.environ["BARQUE_FORKSERVER"] == "require"
    assert any("/run/barque/forkserver/0123456789abcdef" in note for note in bench.notes)
