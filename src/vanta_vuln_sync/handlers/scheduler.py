"""Scheduler Lambda, fed by RequestQueue: each SyncRequest starts (or joins) a run and enqueues its ranges."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from vanta_vuln_sync.handlers.container import current_container
from vanta_vuln_sync.handlers.records import sync_request_record

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Process a batch of SyncRequests; returns the partial batch response."""
    return current_container().process_batch(event, context, metrics, sync_request_record)
