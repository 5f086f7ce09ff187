"""Restart policies' decisions and Docker's back-off (barque.restarts), and ``--restart``'s
parsing with the docker CLI's and dockerd's wording."""

from __future__ import annotations

from pathlib import Path

import pytest
from barque.errors import InvalidArgumentError
from barque.models import RestartPolicy
from barque.restarts import (FIRST_DELAY, MAX_DELAY, next_delay, parse_flag, should_restart,
                             validate)
from helpers import barque


def test_the_backoff_doubles_from_100ms_to_a_minute_and_resets_after_10s_of_running() -> None:
    delays = [0.0]
    for _ in range(12):
        delays.append(next_delay(delays[-1], ran_for=0.5))
    assert delays[1:9] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]
    assert delays[9:] == [25.6, 51.2, MAX_DELAY, MAX_DELAY]
    assert next_delay(MAX_DELAY, ran_for=10.0) == FIRST_DELAY
    assert next_delay(3.2, ran_for=9.9) == 6.4


@pytest.mark.parametrize("name,code,count,by_hand,expected", [
    ("no", 1, 0, False, False),
    ("always", 0, 7, False, True),
    ("always", 137, 0, True, False),
    ("unless-stopped", 0, 3, False, True),
    ("unless-stopped", 143, 0, True, False),
    ("on-failure", 0, 0, False, False),
    ("on-failure", 1, 0, False, True),
    ("on-failure", 143, 0, True, False),
])
def test_which_exits_are_restarted(name: str, code: int, count: int, by_hand: bool,
                                   expected: bool) -> None:
    assert should_restart(RestartPolicy(name=name), code, count, by_hand) is expected


def test_on_failure_stops_after_its_maximum_and_zero_is_no_limit() -> None:
    limited = RestartPolicy(name="on-failure", maximum_retry_count=2)
    assert [should_restart(limited, 1, n, False) for n in range(4)] == [True, True, False, False]
    assert should_restart(RestartPolicy(name="on-failure"), 1, 1000, False)


def test_a_starting_daemon_restarts_always_even_after_a_stop_by_hand_and_nothing_else() -> None:
    assert should_restart(RestartPolicy(name="always"), 137, 0, True, daemon_starting=True)
    assert not should_restart(RestartPolicy(name="unless-stopped"), 137, 0, True,
                              daemon_starting=True)


def test_the_flag_reads_a_policy_and_a_count() -> None:
    assert parse_flag("on-failure:3") == RestartPolicy(name="on-failure", maximum_retry_count=3)
    assert parse_flag("always") == RestartPolicy(name="always")
    assert parse_flag("on-failure") == RestartPolicy(name="on-failure")


@pytest.mark.parametrize("text,message", [
    ("on-failure:x", "invalid restart policy format: maximum retry count must be an integer"),
    ("always:2", "invalid restart policy: maximum retry count can only be used with "
                 "'on-failure'"),
    ("on-failure:-1", "invalid restart policy: maximum retry count cannot be negative"),
    ("sometimes", "invalid restart policy: unknown policy 'sometimes'; use one of 'no', "
                  "'always', 'on-failure', or 'unless-stopped'"),
])
def test_bad_flags_are_refused_in_dockers_words(text: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        parse_flag(text)
    assert str(raised.value) == message


def test_restart_with_rm_is_a_conflict_at_either_door() -> None:
    with pytest.raises(InvalidArgumentError, match="^conflicting options: cannot specify both "
                                                   "--restart and --rm$"):
        parse_flag("always", auto_remove=True)
    with pytest.raises(InvalidArgumentError, match="^can't create 'AutoRemove' container with "
                                                   "restart policy$"):
        validate(RestartPolicy(name="always"), auto_remove=True)
    validate(RestartPolicy(name="no"), auto_remove=True)


def test_the_cli_refuses_a_bad_policy_in_one_line(tmp_path: Path) -> None:
    for flags, message in [
            (["--restart", "on-failure:x"],
             "invalid restart policy format: maximum retry count must be an integer"),
            (["--rm", "--restart", "always"],
             "conflicting options: cannot specify both --restart and --rm")]:
        proc = barque(tmp_path / "root", "create", "--network", "none", *flags, "busybox",
                      check=False)
        assert (proc.returncode, proc.stderr.strip().splitlines()) == (125, [
            f"Error: {message}"])
