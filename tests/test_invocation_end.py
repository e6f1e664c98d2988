"""The end of a worker invocation: a share of its time left unused, drawn once, so a fleet's ends spread;
and the recent durations that grow the hand-off reserve and the attempt allowance when AWS or Vanta slow
down."""

from __future__ import annotations

import random

import pytest

from vanta_vuln_sync.handlers.container import staggered_remaining
from vanta_vuln_sync.run.deadline import handoff_reserve, take_on_seconds
from vanta_vuln_sync.settings import SettingsError, settings_from_env
from vanta_vuln_sync.vanta import RecentDurations


class Context:
    """A context whose remaining time is set by the test (milliseconds)."""

    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def test_invocations_stop_early_by_different_amounts_up_to_the_stagger_share() -> None:
    rng = random.Random(7)
    early = []
    for _ in range(200):
        context = Context(300_000)
        remaining = staggered_remaining(context, 0.1, rng)  # type: ignore[arg-type]
        left = remaining()
        early.append(300.0 - left)
        # The share is drawn once an invocation: the clock then runs on from it
        context.millis -= 10_000
        assert remaining() == pytest.approx(left - 10.0)
    assert all(0.0 <= e <= 30.0 for e in early)
    assert max(early) - min(early) > 25.0, "the ends spread over most of the stagger"


def test_no_stagger_leaves_the_invocations_time_as_it_is() -> None:
    assert staggered_remaining(Context(12_345), 0.0)() == pytest.approx(12.345)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["-0.1", "0.6", "much"])
def test_a_stagger_outside_0_to_half_is_refused_with_its_name(raw: str) -> None:
    env = {"STATE_TABLE": "t", "DATA_BUCKET": "b", "PAGE_QUEUE_URL": "q", "WORKER_STAGGER": raw}
    with pytest.raises(SettingsError, match=r"WORKER_STAGGER must be a share between 0 and 0\.5"):
        settings_from_env(env)


def test_recent_durations_keep_the_slowest_of_the_last_few() -> None:
    times = RecentDurations(size=3)
    # Given nothing recorded, there is nothing to go by
    assert times.slowest() == 0.0
    assert not times
    # When AWS (or Vanta) is slow once, the slowest of the last three says so
    for seconds in (0.2, 2.0, 0.4):
        times.record(seconds)
    assert times.slowest() == pytest.approx(2.0)
    # And once three faster ones followed, it is forgotten
    for seconds in (0.3, 0.3, 0.3):
        times.record(seconds)
    assert times.slowest() == pytest.approx(0.3)
    assert len(times) == 3


def test_the_handoff_reserve_is_doubled_until_the_container_has_timed_a_handoff_then_follows_them() -> None:
    handoffs = RecentDurations()
    # A cold container: nothing timed yet, so twice the configured 15 s
    assert handoff_reserve(15.0, handoffs) == 30.0
    # Hand-offs as fast as the setting assumes: the configured reserve
    handoffs.record(0.4)
    assert handoff_reserve(15.0, handoffs) == 15.0
    # One slow hand-off (AWS slowed down): twice it, while it is among the last 32
    handoffs.record(9.0)
    assert handoff_reserve(15.0, handoffs) == 18.0
    for _ in range(32):
        handoffs.record(0.5)
    assert handoff_reserve(15.0, handoffs) == 15.0


def test_a_step_is_taken_on_only_with_its_reserve_and_two_more_left() -> None:
    # Given the default 15 s reserve: a cold container (no hand-off timed) keeps 30 s for a hand-off
    handoffs = RecentDurations()
    assert take_on_seconds(15.0, handoffs) == 60.0
    # Fast hand-offs: three reserves, 45 s
    handoffs.record(2.0)
    assert take_on_seconds(15.0, handoffs) == 45.0
    # Hand-offs grown slow (20 s): the step will keep 40 s, so taking it on needs 70 s, where a fixed
    # three reserves (45 s) left it 5 s, less than one attempt's allowance
    handoffs.record(20.0)
    assert take_on_seconds(15.0, handoffs) == handoff_reserve(15.0, handoffs) + 30.0 == 70.0
