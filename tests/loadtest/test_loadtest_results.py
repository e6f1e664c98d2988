"""Results people look at: CSV, JSON, the markdown summary and the plots, from measured points."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from loadtest.baseline import BaselineResult
from loadtest.embedded import PointResult, _unscaled_seconds
from loadtest.points import Point
from loadtest.results import baseline_key, merge_rerun, rerender, write_all
from loadtest.sweep import exit_status


def _result(point: Point, wall_s: float) -> PointResult:
    return PointResult(
        point=point,
        status="succeeded",
        wall_s=wall_s,
        fetch_s=wall_s - 1.0,
        pages=200,
        requests=210,
        retries=1,
        throttled=0,
        max_requests_in_60s=210,
        invocations=12,
        cold_starts=point.concurrency,
        peak_concurrency=point.concurrency,
        worker_ms_median=9000.0,
        gb_seconds=30.0,
        aws_requests={"sqs": 100, "dynamodb-write": 300},
        cost_usd=0.01,
        peak_rss_growth_mb=30.0,
        memory_mb={"worker": 256, "scheduler": 256, "finalize": 1769},
    )


def test_every_point_lands_in_csv_json_summary_and_plots_with_baseline_ratios(tmp_path: Path) -> None:
    points = [Point(concurrency=c, latency_s=2.0) for c in (2, 5)]
    results = [_result(points[0], 24.0), _result(points[1], 12.0)]
    # The baseline took 48 s (scaled) for the dataset: 2x and 4x slower than the two points.
    baseline = BaselineResult(points[0], status="finished", wall_s=48.0, pages=192, requests=192, throttled=0)

    written = write_all(tmp_path, results, {baseline_key(points[0]): baseline}, mode="quick", notes=["n"])

    with (tmp_path / "points.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["speedup_vs_baseline"]) for r in rows] == [2.0, 4.0]
    assert [float(r["time_over_bound"]) for r in rows] == [round(24.0 / 11.52, 3), round(12.0 / 11.52, 3)]
    assert [float(r["time_over_bound_at_scale"]) for r in rows] == [float(r["time_over_bound"]) for r in rows]
    assert json.loads((tmp_path / "points.json").read_text())["points"][1]["aws_requests"]["sqs"] == 100
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count("\n| ✓ |") == 2
    assert "| 2 | 100 | 12000 | finished |" in summary
    for name in ("time_over_bound.png", "pages_per_minute.png", "cost_per_1000_pages.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    assert len(written) == 7


def test_cost_is_compared_with_the_floor_and_with_the_baseline_priced_at_the_worker_memory(
    tmp_path: Path,
) -> None:
    # Given a 192-page tenant at 100/min (a 115.2 s real bound) whose sync cost $0.01 with 256 MB workers,
    # and a baseline that took 480 s real for it
    point = Point(concurrency=2, latency_s=2.0)
    baseline = BaselineResult(point, status="finished", wall_s=48.0, pages=192, requests=192, throttled=0)

    # When the sweep writes them
    write_all(tmp_path, [_result(point, 24.0)], {baseline_key(point): baseline}, mode="quick", notes=[])

    # Then the floor is one 256 MB container for 115.2 s, and the baseline is priced at 256 MB, not 512
    price = 0.0000133334
    floor = 115.2 * 0.25 * price
    baseline_requests = 0.20 / 1_000_000 + 0.05 / 10_000 + 3 * 0.005 / 1000
    baseline_at_256 = 480 * 0.25 * price + baseline_requests
    with (tmp_path / "points.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert float(row["floor_cost_per_1000_pages_usd"]) == round(floor / 192 * 1000, 5)
    assert float(row["cost_over_floor"]) == round(0.01 / floor, 2) == 26.04
    assert float(row["baseline_cost_equal_memory_usd"]) == round(baseline_at_256, 6)
    assert float(row["cost_vs_baseline_equal_memory"]) == round(0.01 / baseline_at_256, 2) == 6.17
    assert float(row["cost_vs_baseline"]) == round(0.01 / (480 * 0.5 * price + baseline_requests), 2)
    assert (row["worker_memory_mb"], row["scheduler_memory_mb"], row["finalize_memory_mb"]) == (
        "256",
        "256",
        "1769",
    )
    assert "| 0.0500 | 256 / 256 / 1769 | 26.04 | 30 | 2 | 6.17 |" in (tmp_path / "summary.md").read_text()


def test_rerender_prices_saved_points_at_the_memory_they_ran_at_and_keeps_a_written_heading(
    tmp_path: Path,
) -> None:
    # Given results saved before the memory was recorded, under a heading written by hand
    points = [Point(concurrency=c, latency_s=2.0) for c in (2, 5)]
    baseline = BaselineResult(points[0], status="finished", wall_s=48.0, pages=192, requests=192, throttled=0)
    write_all(
        tmp_path,
        [_result(points[0], 24.0), _result(points[1], 12.0)],
        {baseline_key(points[0]): baseline},
        mode="full",
        notes=["n"],
    )
    document = json.loads((tmp_path / "points.json").read_text())
    for saved in document["points"]:
        for key in list(saved):
            if "memory_mb" in key or "floor" in key or "equal_memory" in key:
                del saved[key]
    (tmp_path / "points.json").write_text(json.dumps(document))
    summary = (tmp_path / "summary.md").read_text().replace("# Load test results (full)", "# By hand\n\nWhy.")
    (tmp_path / "summary.md").write_text(summary)

    # Then without their memory they cannot be priced
    with pytest.raises(ValueError, match="no worker memory"):
        rerender(tmp_path, note="again")

    # When they are re-rendered at the memory they ran at (the worker at 1,024 MB, no Finalize function)
    rerender(tmp_path, note="priced again", memory_mb={"worker": 1024, "scheduler": 256, "finalize": None})

    # Then the baseline is priced at 1,024 MB, the floor stays at 256 MB, and the rest of the summary stays
    price = 0.0000133334
    baseline_at_1024 = 480 * price + 0.20 / 1_000_000 + 0.05 / 10_000 + 3 * 0.005 / 1000
    with (tmp_path / "points.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["cost_vs_baseline_equal_memory"] for r in rows] == [str(round(0.01 / baseline_at_1024, 2))] * 2
    assert [r["cost_over_floor"] for r in rows] == ["26.04", "26.04"]
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("# By hand\n\nWhy.\n")
    assert "- n\n- priced again\n\n| point |" in text
    assert text.count("| 1024 / 256 / - | 26.04 |") == 2
    assert "| 2 | 100 | 12000 | finished |" in text
    assert json.loads((tmp_path / "points.json").read_text())["notes"] == ["n", "priced again"]


def test_stretches_without_vanta_requests_count_once_in_the_real_equivalent_time() -> None:
    point = Point(concurrency=2, latency_s=2.0)  # 10x time scale, bound 11.52 s as run
    result = _result(point, 14.0)
    result.unscaled_s = 2.0  # cold starts and Finalize: as long at any scale
    assert result.wall_real_s == pytest.approx(12.0 * 10 + 2.0)
    assert result.ratio_real == pytest.approx((12.0 * 10 + 2.0) / 115.2)
    assert result.ratio == 14.0 / 11.52


def test_unscaled_stretches_are_before_planning_between_planning_and_workers_and_after_the_last() -> None:
    accepted = [10.5, 10.7, 10.9, 13.0, 13.1, 20.0]  # three planning requests, then the workers'
    scheduler = [(10.2, 11.5)]  # the scheduler invocation ends after its last request
    unscaled = _unscaled_seconds(accepted, scheduler, started=10.0, ended=23.0)
    assert unscaled == pytest.approx(0.5 + (13.0 - 10.9) + 3.0)


def test_baseline_that_cannot_finish_in_15_minutes_says_so_and_projects_its_time() -> None:
    point = Point(concurrency=1, latency_s=2.0, vulnerabilities=125_000)
    # 30 pages in 8.1 s scaled: 2.7 s a page in real time, 333 pages in 15 minutes.
    sampled = BaselineResult(point, status="sampled", wall_s=8.1, pages=30, requests=30, throttled=0)

    assert sampled.max_pages_in_budget == 333
    assert not sampled.finishes_in_budget
    assert sampled.projected_wall_s == sampled.per_page_s * point.minimum_pages


def test_a_rerun_replaces_its_points_and_keeps_the_rest(tmp_path: Path) -> None:
    points = [Point(concurrency=c, latency_s=2.0) for c in (2, 5)]
    baseline = BaselineResult(points[0], status="finished", wall_s=48.0, pages=192, requests=192, throttled=0)
    full, rerun = tmp_path / "full", tmp_path / "rerun"
    write_all(
        full,
        [_result(points[0], 24.0), _result(points[1], 12.0)],
        {baseline_key(points[0]): baseline},
        mode="full",
        notes=["n"],
    )
    write_all(rerun, [_result(points[0], 16.0)], {}, mode="full", notes=["r"])

    merge_rerun(full, rerun, note="W2 again after a fix")

    with (full / "points.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["wall_s"]) for r in rows] == [16.0, 12.0]
    assert [float(r["speedup_vs_baseline"]) for r in rows] == [3.0, 4.0]
    assert "W2 again after a fix" in (full / "summary.md").read_text()


def test_point_with_a_timed_out_invocation_is_marked_failed_everywhere_even_when_its_run_succeeded(
    tmp_path: Path,
) -> None:
    # Given two points whose runs succeeded, one with a worker invocation that outlived its timeout
    points = [Point(concurrency=c, latency_s=2.0) for c in (2, 5)]
    clean, killed = _result(points[0], 24.0), _result(points[1], 12.0)
    clean.extra["timing"] = {
        "worker": {"invocations": 9, "timed_out": 0, "timeout_s": 30, "p50_s": 12.0, "max_s": 25.5},
        "scheduler": {"invocations": 1, "timed_out": 0, "timeout_s": 12, "p50_s": 6.0, "max_s": 6.0},
    }
    killed.extra["timing"] = {
        "worker": {"invocations": 9, "timed_out": 1, "timeout_s": 30, "p50_s": 12.0, "max_s": 30.1},
        "scheduler": {"invocations": 1, "timed_out": 0, "timeout_s": 12, "p50_s": 6.0, "max_s": 6.0},
    }

    # When the sweep writes them
    write_all(tmp_path, [clean, killed], {}, mode="quick", notes=[])

    # Then the killed one failed in the CSV, the JSON, the summary and the exit status; durations are
    # real-equivalent (x 10)
    with (tmp_path / "points.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["verdict"] for r in rows] == ["passed", "failed"]
    assert rows[1]["failed_because"] == "1 timed-out invocation(s)"
    assert [r["timed_out_invocations"] for r in rows] == ["0", "1"]
    assert (rows[1]["worker_timeout_real_s"], rows[1]["worker_max_real_s"]) == ("300.0", "301.0")
    assert rows[0]["worker_p50_real_s"] == "120.0"
    detail = json.loads((tmp_path / "points.json").read_text())["points"]
    assert [p["verdict"] for p in detail] == ["passed", "failed"]
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count("\n| ✓ |") == 1
    assert "\n| ✗ 1 timed-out invocation(s) |" in summary
    assert "| 120 / 301 / 300 | 1 |" in summary
    assert (exit_status([clean]), exit_status([clean, killed])) == (0, 1)


def test_point_whose_run_did_not_finish_fails_without_any_timed_out_invocation() -> None:
    result = _result(Point(concurrency=2, latency_s=2.0), 24.0)
    result.status = "timed out"

    assert result.failures == ["run timed out"]
    assert exit_status([result]) == 1


def test_point_whose_run_published_other_counts_than_the_tenant_or_is_flagged_fails() -> None:
    point = Point(concurrency=2, latency_s=2.0, vulnerabilities=1_000)
    tenant = dict(point.records)
    exact = _result(point, 24.0)
    exact.extra = {"published": {"records": tenant, "exact": True}, "tenant_records": tenant}
    short = _result(point, 24.0)
    fewer = {**tenant, "vulnerabilities": 992}
    short.extra = {"published": {"records": fewer, "exact": True}, "tenant_records": tenant}
    flagged = _result(point, 24.0)
    flagged.extra = {"published": {"records": tenant, "exact": False}, "tenant_records": tenant}

    assert exact.failures == []
    assert short.failures == [f"published {fewer} records, the tenant holds {tenant}"]
    assert flagged.failures == ["the run is flagged not exact"]
    assert exit_status([exact, flagged]) == 1
