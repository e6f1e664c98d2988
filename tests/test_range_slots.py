"""A run's range slots size themselves: enough ranges in flight to use the rate limit at the round trip the
scheduler measured, with a margin, never fewer than the minimum nor more than workers x ranges in flight."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vanta_vuln_sync.run.schedule import planned_slots
from vanta_vuln_sync.run.sizing import (
    CONTAINER_RANGES,
    FULL_PAGE_FACTOR,
    HELD_PAGES,
    MIN_RANGE_SLOTS,
    MIN_STEP_PAGES,
    PAGE_WORK_SECONDS,
    container_ranges,
    range_slots,
    step_pages,
)
from vanta_vuln_sync.run.split import compact, max_compact_slots
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


def _at(per_minute: int, page_cpu_seconds: float = 0.09) -> Settings:
    vanta = VantaSettings(rate_limit_per_minute=per_minute)
    return Settings(
        vanta=vanta, state_table="t", data_bucket="b", page_queue_url="q", page_cpu_seconds=page_cpu_seconds
    )


def test_runs_at_100_a_minute_are_compact_at_every_latency_to_5_s() -> None:
    # Given the template's 5 workers x 10 ranges in flight, 100 requests a minute, answers of 0.2 to 5 s
    for round_trip in (0.2, 1.0, 2.0, 5.0):
        # Then the run's ranges fit in one container: it splits them and they take each other on
        assert compact(range_slots(100, round_trip, cap=50), _at(100))
    # And a container runs that many at once, more than a batch's RangesInFlight
    assert container_ranges(10) == CONTAINER_RANGES >= range_slots(100, 5.0, cap=50)
    # While a run that needs more ranges (240/min at 5 s) is planned as a wave across containers
    assert not compact(range_slots(240, 5.0, cap=100), _at(240))


def test_a_limit_one_container_cannot_keep_pace_with_has_no_compact_run() -> None:
    # Given 1,000 requests a minute: at 0.09 CPU-s a page, 1.5 of a 256 MB container's CPU
    # Then even its fewest slots are planned as a wave across containers (and its lists probed)
    assert max_compact_slots(_at(1000)) == 0
    assert not compact(MIN_RANGE_SLOTS, _at(1000))
    # And the load test's 1,000 a minute at a tenth of the time (its CPU a page divided by the scale too)
    # is shaped as production's 100 a minute
    assert max_compact_slots(_at(1000, 0.009)) == max_compact_slots(_at(100)) == CONTAINER_RANGES


def test_a_container_holds_the_pages_of_ten_full_steps_however_many_ranges_it_runs() -> None:
    # Given the template's page budget of 50: up to RangesInFlight's 10 steps each read all of it
    assert step_pages(50, 1) == step_pages(50, 10) == 50
    assert 10 * step_pages(50, 10) == HELD_PAGES
    # When a compact run's 40 ranges share one container, each commits after its share and goes on
    assert step_pages(50, 40) == HELD_PAGES // 40
    assert 40 * step_pages(50, 40) <= HELD_PAGES
    # And a step never commits after fewer than MIN_STEP_PAGES, nor more than its own budget
    assert step_pages(50, 1000) == MIN_STEP_PAGES
    assert step_pages(3, 40) == 3


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
