"""One tiny sweep point end to end: the real template in moto, the real handlers, the simulator.

It takes ~25 s on two busy cores: the one end-to-end check that the sweep's measurements are real.
"""

from __future__ import annotations

import pytest
from loadtest.embedded import run_point
from loadtest.points import Point

pytestmark = pytest.mark.integration  # the embedded world (moto, simulator, pollers)


def test_point_measures_a_whole_sync_within_the_limit_when_run_on_the_embedded_runtime() -> None:
    # 400 vulnerabilities: 4 + 2 + 1 pages at the least; 1,000 a minute (200/min at 5x) keeps it short.
    # Deadlines scale too: the scheduler's 120 s timeout is 24 s here, and planning (~45 requests, a
    # first container's set-up at full length) must fit it, as it must fit 120 s at 200/min.
    point = Point(concurrency=2, latency_s=0.5, rate_limit=200, vulnerabilities=400, time_scale=5.0)

    result = run_point(point, timeout=60.0)

    assert result.status == "succeeded", result.extra.get("last_errors")
    assert result.passed, result.failures
    assert result.extra["timing"]["scheduler"]["timeout_s"] == 24
    assert result.extra["timing"]["worker"]["timeout_s"] == 180
    assert result.extra["records"] == 400 + 200 + 40
    # what it published is the tenant, and it says it is exact
    tenant = {"vulnerabilities": 400, "vulnerability-remediations": 200, "vulnerable-assets": 40}
    assert result.extra["published"] == {"records": tenant, "exact": True}
    assert result.pages >= point.minimum_pages
    assert 0 < result.max_requests_in_60s <= point.simulated_rate
    assert result.invocations >= 2  # the scheduler and at least one worker batch, timed by the shim
    assert result.aws_requests.get("s3-put", 0) >= 3  # raw pages and the run's outputs
    assert result.cost_usd > 0
