"""Powertools' metrics in the entry points when they are switched off (POWERTOOLS_METRICS_DISABLED, as the
embedded runtime and anyone not publishing EMF sets it): nothing printed, nothing kept."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from vanta_vuln_sync.handlers import container


class _Container:
    """Stands in for the thread's container: each batch adds one data point, as a step does."""

    class settings:
        worker_stagger = 0.0

    def process_batch(
        self, event: Any, context: Any, metrics: Metrics, work: Any, **_: Any
    ) -> dict[str, Any]:
        metrics.add_metric(name="PagesFetched", unit=MetricUnit.Count, value=1)
        return {"batchItemFailures": []}


class _Context:
    function_name = "worker"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:worker"
    memory_limit_in_mb = 256
    aws_request_id = "request"


def test_switched_off_metrics_are_neither_printed_nor_kept_across_invocations(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "VantaVulnSyncTest")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setattr(container, "current_container", _Container)
    handler = container.batch_handler(lambda *_: None)
    # Powertools prints a metric's values once it holds 100, whether or not metrics are switched off
    for _ in range(150):
        assert handler({"Records": []}, _Context()) == {"batchItemFailures": []}
    assert '"_aws"' not in capsys.readouterr().out
    assert Metrics().metric_set == {}
