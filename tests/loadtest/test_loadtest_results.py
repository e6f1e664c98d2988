"""Results people look at: CSV, JSON, the markdown summary and the plots, from measured points."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from loadtest.baseline import BaselineResult
from loadtest.embedded import PointResult
from loadtest.points import Point
from loadtest.results import baseline_key, write_all


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
    assert json.loads((tmp_path / "points.json").read_text())["points"][1]["aws_requests"]["sqs"] == 100
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count("\n| ✓ |") == 2
    assert "| 2 | 100 | 12000 | finished |" in summary
    for name in ("time_over_bound.png", "pages_per_minute.png", "cost_per_1000_pages.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    assert len(written) == 7


def test_baseline_that_cannot_finish_in_15_minutes_says_so_and_projects_its_time() -> None:
    point = Point(concurrency=1, latency_s=2.0, vulnerabilities=125_000)
    # 30 pages in 8.1 s scaled: 2.7 s a page in real time, 333 pages in 15 minutes.
    sampled = BaselineResult(point, status="sampled", wall_s=8.1, pages=30, requests=30, throttled=0)

    assert sampled.max_pages_in_budget == 333
    assert not sampled.finishes_in_budget
    assert sampled.projected_wall_s == sampled.per_page_s * point.minimum_pages
