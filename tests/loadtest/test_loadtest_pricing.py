"""Cost estimates at the published prices."""

from __future__ import annotations

import pytest
from loadtest.baseline import baseline_cost
from loadtest.pricing import (
    billed_gb_seconds,
    estimate_cost,
    floor_cost,
    per_thousand_pages,
    real_equivalent_cost,
)


def test_billed_duration_rounds_each_invocation_up_to_the_millisecond() -> None:
    # 1.2 ms bills 2 ms, 998.0 ms bills 998 ms: 1,000 ms at 1,024 MB is one GB-second.
    assert billed_gb_seconds([1.2, 998.0], 1024) == pytest.approx(1.0)
    assert billed_gb_seconds([1000.0], 512) == pytest.approx(0.5)


def test_cost_adds_lambda_and_every_request_kind_at_its_price() -> None:
    cost = estimate_cost(
        gb_seconds=1000.0,
        invocations=1_000_000,
        requests={
            "sqs": 1_000_000,
            "dynamodb-write": 1_000_000,
            "dynamodb-read": 1_000_000,
            "s3-put": 1000,
            "s3-get": 1000,
            "secrets": 10_000,
            "other": 5,
        },
    )

    assert cost.lambda_compute == pytest.approx(0.0133334)
    assert cost.lambda_requests == pytest.approx(0.20)
    assert cost.sqs == pytest.approx(0.40)
    assert cost.dynamodb == pytest.approx(1.25 + 0.25)
    assert cost.s3 == pytest.approx(0.005 + 0.0004)
    assert cost.secrets == pytest.approx(0.05)
    assert cost.per_thousand_pages(1000) == pytest.approx(cost.total)


def test_floor_is_one_256_mb_container_waiting_out_the_bound() -> None:
    # 2,000 pages at 100/min: a 1,200 s bound; one 256 MB (0.25 GB) container for 1,200 s.
    floor = floor_cost(2000, 100)

    assert floor == pytest.approx(1200 * 0.25 * 0.0000133334)
    assert per_thousand_pages(floor, 2000) == pytest.approx(1200 * 0.25 * 0.0000133334 / 2)
    # Half the limit, twice the wait; the floor per page does not depend on the tenant's size.
    assert floor_cost(2000, 50) == pytest.approx(2 * floor)
    assert per_thousand_pages(floor_cost(301, 50), 301) == pytest.approx(1.2 * 0.25 * 0.0133334)


def test_baseline_costs_its_lambda_time_at_the_memory_asked_plus_its_few_requests() -> None:
    requests = 0.20 / 1_000_000 + 0.05 / 10_000 + 3 * 0.005 / 1000  # one invocation, one secret, 3 PUTs

    at_256 = baseline_cost(3600.0, 256)

    assert at_256 == pytest.approx(3600 * 0.25 * 0.0000133334 + requests)
    assert baseline_cost(3600.0, 1024) - requests == pytest.approx(4 * (at_256 - requests))
    assert baseline_cost(3600.0) == baseline_cost(3600.0, 512)


def test_per_thousand_pages_of_no_page_is_zero() -> None:
    assert per_thousand_pages(1.0, 0) == 0.0


def test_a_scaled_run_costs_its_waiting_times_the_scale_and_its_cpu_bound_time_and_requests_as_run() -> None:
    # Given a run at 10x: 30 GB-s of workers waiting on Vanta, 5 GB-s of Finalize, $0.01 of requests
    as_run = estimate_cost(gb_seconds=35.0, invocations=0, requests={"sqs": 25_000})

    # When it is priced in real time
    real = real_equivalent_cost(as_run, scaled_gb_seconds=30.0, time_scale=10.0)

    # Then the waiting counts 10 times, Finalize and the requests once
    assert real == pytest.approx((300.0 + 5.0) * 0.0000133334 + 0.01)
    assert real_equivalent_cost(as_run, scaled_gb_seconds=30.0, time_scale=1.0) == pytest.approx(as_run.total)
