"""A registry that stalls, trickles or sends too much, in front of the real registry
(throttle_proxy): the pull ends with one line naming the registry and the layer, resumes
where it stopped, and leaves nothing that spoils the next pull."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import barque
from throttle_proxy import ThrottleProxy

pytestmark = pytest.mark.registry

#: A hang guard only (today's barque would wait 120 s per read): no assertion is timed.
HANG = 120


def _config(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    return path


def _layer_ranges(proxy: ThrottleProxy, layer: str) -> list[str]:
    return [h.get("Range", "") for m, p, h in proxy.requests if m == "GET" and p.endswith(layer)]


def _layer(fx) -> str:  # type: ignore[no-untyped-def]
    return fx.manifest["layers"][0]["digest"]


def test_a_stalled_blob_times_out_and_each_retry_resumes(fixture_images, registry,
                                                         tmp_path) -> None:
    fx = fixture_images["busybox"]
    layer = _layer(fx)
    root = tmp_path / "root"
    config = _config(tmp_path, read_timeout=1, download_retries=2, download_retry_backoff=0.1)
    # 16 KiB of the layer, then silence.
    with ThrottleProxy(registry.host, bytes_per_second=1, only=frozenset({layer})) as proxy:
        ref = fx.ref.replace(registry.host, proxy.host)
        failed = barque(root, "--config", str(config), "pull", ref, check=False, timeout=HANG)
        assert failed.returncode == 1
        assert failed.stderr.count("\n") == 1, failed.stderr
        assert proxy.host in failed.stderr and layer in failed.stderr
        assert "no data for 1 s (read_timeout)" in failed.stderr
        assert "gave up after 2 attempts" in failed.stderr
        assert _layer_ranges(proxy, layer) == ["", "bytes=16384-"]  # the retry resumed
        assert barque(root, "images", "-q").stdout == ""

        proxy.bytes_per_second = 0
        proxy.requests.clear()
        barque(root, "--config", str(config), "pull", "-q", ref, timeout=HANG)
        assert _layer_ranges(proxy, layer) == ["bytes=32768-"]  # the next pull resumed too
    assert len(barque(root, "images", "-q").stdout.split()) == 1


def test_a_trickling_blob_is_given_up_by_the_speed_rule(fixture_images, registry,
                                                        tmp_path) -> None:
    fx = fixture_images["busybox"]
    layer = _layer(fx)
    root = tmp_path / "root"
    # One byte a second never goes idle for read_timeout; the speed rule catches it.
    config = _config(tmp_path, low_speed_limit=1000, low_speed_time=1, download_retries=1)
    with ThrottleProxy(registry.host, bytes_per_second=1, chunk_bytes=1,
                       only=frozenset({layer})) as proxy:
        ref = fx.ref.replace(registry.host, proxy.host)
        failed = barque(root, "--config", str(config), "pull", ref, check=False, timeout=HANG)
    assert failed.returncode == 1
    assert failed.stderr.count("\n") == 1, failed.stderr
    assert proxy.host in failed.stderr and layer in failed.stderr
    assert "too slow" in failed.stderr and "under low_speed_limit 1000 bytes/s" in failed.stderr
    assert barque(root, "images", "-q").stdout == ""


def test_bad_config_values_are_one_line(tmp_path) -> None:
    config = _config(tmp_path, read_timeout=0)
    failed = barque(tmp_path / "root", "--config", str(config), "images", check=False)
    assert failed.returncode == 1
    assert failed.stderr == f"Error: invalid config file {config}: read_timeout must be " \
                            "positive\n"


def test_a_registry_sending_too_much_spoils_no_later_pull(fixture_images, registry,
                                                          tmp_path) -> None:
    fx = fixture_images["busybox"]
    layer = _layer(fx)
    root = tmp_path / "root"
    with ThrottleProxy(registry.host, prefix=b"\0" * 100, only=frozenset({layer})) as proxy:
        lying = barque(root, "pull", fx.ref.replace(registry.host, proxy.host), check=False)
    assert lying.returncode == 1
    assert "larger than its descriptor" in lying.stderr and layer in lying.stderr
    assert list((root / "ingest").glob("*.partial")) == []
    barque(root, "pull", "-q", fx.ref)  # the honest registry: nothing left to mismatch
    assert len(barque(root, "images", "-q").stdout.split()) == 1


def test_a_partial_that_fails_verification_is_fetched_again(fixture_images, tmp_path) -> None:
    fx = fixture_images["busybox"]
    layer = _layer(fx)
    root = tmp_path / "root"
    barque(root, "images")  # makes the store
    # A complete partial of wrong bytes, as a registry that sent too much left it before.
    (root / "ingest" / f"{layer[7:]}.partial").write_bytes(
        bytes(fx.manifest["layers"][0]["size"]))
    out = barque(root, "pull", fx.ref).stdout
    assert "Discarding a partial download that failed verification" in out
    assert len(barque(root, "images", "-q").stdout.split()) == 1
    assert list((root / "ingest").glob("*.partial")) == []
