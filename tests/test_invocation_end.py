"""The end of a worker invocation: a share of its time left unused, drawn once, so a fleet's ends spread;
and the reserve for the hand-off, which grows with the hand-offs AWS made slow."""

from __future__ import annotations

import random

import pytest

from vanta_vuln_sync.handlers.container import staggered_remaining
from vanta_vuln_sync.run.deadline import HandOffTimes
from vanta_vuln_sync.settings import SettingsError, settings_from_env


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


def test_the_hand_off_reserve_grows_to_twice_the_slowest_recent_hand_off_and_comes_back() -> None:
    times = HandOffTimes(size=3)
    # Given no hand-off yet, the configured reserve holds
    assert times.reserve(1.5) == 1.5
    # When AWS is slow, the reserve is twice the slowest of the last three
    for seconds in (0.2, 2.0, 0.4):
        times.record(seconds)
    assert times.reserve(1.5) == pytest.approx(4.0)
    # And once three faster ones followed, the configured reserve holds again
    for seconds in (0.3, 0.3, 0.3):
        times.record(seconds)
    assert times.reserve(1.5) == 1.5
