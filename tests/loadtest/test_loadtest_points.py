"""The sweep's points: the bound N / R, time scaling, and the grids' promises."""

from __future__ import annotations

import pytest
from loadtest.deadlines import production_deadlines, template_defaults
from loadtest.points import Point, full_points, production_points, quick_points


def test_bound_is_minimum_pages_over_simulated_limit_when_time_is_scaled() -> None:
    point = Point(concurrency=5, latency_s=2.0, rate_limit=100, vulnerabilities=12_000, time_scale=10.0)

    # 120 + 60 + 12 pages of 100 records; 192 pages at 1,000 a minute.
    assert point.minimum_pages == 192
    assert point.simulated_rate == 1000
    assert point.simulated_latency == pytest.approx(0.2)
    assert point.bound_seconds == pytest.approx(11.52)


def test_point_is_refused_when_scaled_limit_passes_the_template_maximum() -> None:
    with pytest.raises(ValueError, match="template's maximum"):
        Point(concurrency=2, latency_s=1.0, rate_limit=200, time_scale=10.0)


def test_fleet_is_told_the_configured_limit_when_it_differs_from_vantas() -> None:
    point = Point(concurrency=2, latency_s=1.0, rate_limit=50, configured_limit=100, time_scale=10.0)

    assert (point.simulated_rate, point.fleet_limit) == (500, 1000)


def test_full_grid_has_2000_page_syncs_at_every_concurrency_from_2_to_20_latency_limit_and_cursor() -> None:
    points = full_points()

    grid = {
        (p.concurrency, p.latency_s, p.cursor_style, p.rate_limit) for p in points if p.minimum_pages >= 2000
    }
    for concurrency in (2, 5, 10, 20):
        for latency in (0.2, 1.0, 2.0, 5.0):
            assert (concurrency, latency, "arrayconnection", 100) in grid
        for latency in (0.2, 2.0, 5.0):
            assert (concurrency, latency, "opaque", 100) in grid
            assert (concurrency, latency, "arrayconnection", 50) in grid
    assert (1, 2.0, "arrayconnection", 100) in grid
    assert {p.ranges_in_flight for p in points} >= {2, 10}
    assert {p.rate_limit for p in points} >= {50, 100}
    assert any(p.configured_limit and p.configured_limit > p.rate_limit for p in points)
    assert len({p.name for p in points}) == len(points)


def test_grid_points_run_at_a_rate_one_process_keeps_up_with_and_keep_their_real_limit() -> None:
    # The grid proper (the misconfigured point and the production points aside)
    grid = [p for p in full_points() if p.time_scale != 1.0 and p.configured_limit is None]

    for point in grid:
        assert point.simulated_rate == 1000, point.name
        # What is scaled is time, not the limit: the ratio to the bound and every deadline follow
        real_bound = point.minimum_pages / point.rate_limit * 60
        assert point.bound_seconds * point.time_scale == pytest.approx(real_bound)
        assert point.deadlines.worker_timeout == pytest.approx(900 / point.time_scale, abs=1)


def test_quick_points_are_small_enough_to_finish_in_minutes() -> None:
    points = quick_points()

    assert sum(p.bound_seconds for p in points) < 90
    assert {p.cursor_style for p in points} == {"arrayconnection", "opaque"}


def test_full_grid_ends_with_unscaled_300_page_points_at_the_templates_defaults_and_5_10_20_workers() -> None:
    defaults = template_defaults()

    production = [p for p in full_points() if p.time_scale == 1.0]

    assert production == production_points()
    assert sorted(p.concurrency for p in production) == [int(defaults["WorkerMaxConcurrency"]), 10, 20]
    for point in production:
        assert point.minimum_pages >= 300
        assert point.rate_limit == point.fleet_limit == int(defaults["VantaRateLimitPerMinute"]) == 50
        assert point.page_budget == int(defaults["PageBudget"])
        assert point.ranges_in_flight == int(defaults["RangesInFlight"])
        assert point.deadlines == production_deadlines()
    assert len({p.name for p in production}) == 3


def test_a_partial_sweep_writes_beside_the_whole_sweeps_results_never_over_them() -> None:
    from loadtest.sweep import DEFAULT_OUT, default_out

    assert default_out(full=True, only="") == DEFAULT_OUT / "full"
    assert default_out(full=False, only="") == DEFAULT_OUT
    only = "c5-rif10-lat0.2-r50"
    assert default_out(full=True, only=only) == DEFAULT_OUT / "full" / "only" / only
    # Text that is not a name stays one folder below `only/`
    assert default_out(full=False, only="a/../b") == DEFAULT_OUT / "only" / "a_.._b"
    assert default_out(full=False, only="..") == DEFAULT_OUT / "only" / "_"
