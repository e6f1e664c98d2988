"""Cost estimates at the published prices."""

from __future__ import annotations

import pytest
from loadtest.pricing import billed_gb_seconds, estimate_cost


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
