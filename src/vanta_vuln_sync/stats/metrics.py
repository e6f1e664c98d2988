"""CloudWatch metrics from a run's statistics (Powertools EMF), for alarms and the dashboard."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import Metrics, MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from .model import SEVERITIES

OPEN_VULNERABILITIES = "OpenVulnerabilities"
OVERDUE_VULNERABILITIES = "OverdueVulnerabilities"
SEVERITY_DIMENSION = "Severity"


def emit_metrics(metrics: Metrics, stats: dict[str, Any]) -> None:
    """Emit `OpenVulnerabilities` and `OverdueVulnerabilities` per `Severity` (one EMF blob each, so
    each carries its own dimension value, plus `service`) and in total, from a stats.json dict.

    The total overdue count goes on `metrics` itself and is flushed with the handler's other metrics;
    per-severity values are flushed immediately as single metrics with the handler's default dimensions.
    """
    vulns = stats["vulnerabilities"]
    # Powertools adds `service` to the handler's own metrics; the single metrics carry it too, so the
    # dashboard and alarms address every series by (service, Severity).
    dimensions = {**({"service": metrics.service} if metrics.service else {}), **metrics.default_dimensions}
    overdue_by = vulns["sla"]["overdue_by_severity"]
    # single_metric prints even when POWERTOOLS_METRICS_DISABLED is set (the local runtime sets it).
    for severity in SEVERITIES if not is_metrics_disabled() else ():
        for name, value in (
            (OPEN_VULNERABILITIES, vulns["by_severity"].get(severity, 0)),
            (OVERDUE_VULNERABILITIES, overdue_by.get(severity, 0)),
        ):
            with single_metric(
                name=name,
                unit=MetricUnit.Count,
                value=value,
                namespace=metrics.namespace,
                default_dimensions=dimensions,
            ) as metric:
                metric.add_dimension(name=SEVERITY_DIMENSION, value=severity)
    metrics.add_metric(name=OVERDUE_VULNERABILITIES, unit=MetricUnit.Count, value=vulns["sla"]["overdue"])
    metrics.add_metric(name=OPEN_VULNERABILITIES, unit=MetricUnit.Count, value=vulns["active"])
