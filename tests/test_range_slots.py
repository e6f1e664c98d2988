"""A run's range slots size themselves: enough ranges in flight to use the rate limit at the round trip the
scheduler measured, with a margin, never fewer than the minimum nor more than workers x ranges in flight."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vanta_vuln_sync.run.schedule import planned_slots
from vanta_vuln_sync.run.sizing import (
    FULL_PAGE_FACTOR,
    MIN_RANGE_SLOTS,
    PAGE_WORK_SECONDS,
    range_slots,
)
from vanta_vuln_sync.settings import Settings, SettingsError, VantaSettings, settings_from_env
from vanta_vuln_sync.vanta import RecentDurations

REQUIRED = {"STATE_TABLE": "t", "DATA_BUCKET": "b", "PAGE_QUEUE_URL": "q"}


def test_a_fast_vanta_at_the_default_limit_gets_the_minimum_not_the_fleets_fifty_slots() -> None:
    # Given 50 requests a minute and answers in 50 ms or in a second (the load test's production points)
    # Then a handful of ranges keep the limit used, not the 5 x 10 the fleet could hold
    assert range_slots(50, 0.05, cap=50) == MIN_RANGE_SLOTS
    assert range_slots(50, 1.0, cap=50) == 4
    assert range_slots(100, 0.1, cap=50) == MIN_RANGE_SLOTS


def test_five_second_answers_at_100_a_minute_get_twice_the_ranges_the_limit_needs() -> None:
    # Given 100 requests a minute and survey answers of 5 s
    slots = range_slots(100, 5.0, cap=200)
    # Then the ranges in flight, each taking a full page's round trip and its work per request, can
    # send twice the limit: half of them may be paused at a hand-off and the limit is still used
    per_range_per_second = 1 / (FULL_PAGE_FACTOR * 5.0 + PAGE_WORK_SECONDS)
    assert slots * per_range_per_second >= 2 * 100 / 60
    assert slots == 35
    # And more than Little's law's bare 100 / 60 x 5 s = 8.3 requests in flight
    assert slots > math.ceil(100 / 60 * 5.0)


def test_the_slots_never_pass_workers_times_ranges_in_flight() -> None:
    assert range_slots(100, 5.0, cap=10) == 10
    # a limit so high that the fleet's own page work is the bound (the tests' 60,000/min): every slot
    assert range_slots(60_000, 0.002, cap=50) == 50
    # a fleet smaller than the minimum keeps its own size
    assert range_slots(50, 0.05, cap=2) == 2


def test_no_timed_answer_plans_every_slot_as_before() -> None:
    assert range_slots(50, None, cap=50) == 50


@given(
    per_minute=st.integers(1, 1000),
    round_trip=st.floats(0.0, 60.0),
    slower=st.floats(0.0, 30.0),
    cap=st.integers(1, 1000),
)
def test_slots_grow_with_the_round_trip_and_stay_between_the_minimum_and_the_cap(
    per_minute: int, round_trip: float, slower: float, cap: int
) -> None:
    slots = range_slots(per_minute, round_trip, cap)
    assert min(MIN_RANGE_SLOTS, cap) <= slots <= cap
    assert range_slots(per_minute, round_trip + slower, cap) >= slots
    assert range_slots(per_minute + 1, round_trip, cap) >= slots


def _settings(range_slots: int | None = None, per_minute: int = 100) -> Settings:
    return Settings(
        vanta=VantaSettings(rate_limit_per_minute=per_minute),
        state_table="t",
        data_bucket="b",
        page_queue_url="q",
        worker_max_concurrency=5,
        ranges_in_flight=10,
        range_slots=range_slots,
    )


def test_the_scheduler_sizes_from_the_mean_of_its_surveys_answers() -> None:
    # Given a scheduler whose survey requests took 4 to 6 s at 100 a minute
    answers = RecentDurations()
    for seconds in (4.0, 5.0, 6.0):
        answers.record(seconds)
    # Then it plans for their mean, 5 s; before any answer, every slot of the fleet
    assert planned_slots(_settings(), answers) == range_slots(100, 5.0, cap=50) == 35
    assert planned_slots(_settings(), RecentDurations()) == 50


def test_a_fixed_range_slots_setting_is_planned_whatever_vanta_answers() -> None:
    answers = RecentDurations()
    answers.record(0.01)
    assert planned_slots(_settings(range_slots=50), answers) == 50
    assert planned_slots(_settings(range_slots=7), answers) == 7


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, None), ("", None), ("auto", None), (" AUTO ", None), ("12", 12)]
)
def test_range_slots_reads_auto_or_a_number(raw: str | None, expected: int | None) -> None:
    env = REQUIRED if raw is None else {**REQUIRED, "RANGE_SLOTS": raw}
    assert settings_from_env(env).range_slots == expected


@pytest.mark.parametrize("raw", ["0", "-3", "many", "1.5", "fifty"])
def test_a_bad_range_slots_value_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^RANGE_SLOTS must be `auto` or a whole number"):
        settings_from_env({**REQUIRED, "RANGE_SLOTS": raw})
