"""Finalize Lambda, fed by FinalizeQueue: finishes a run once its last range committed (statistics,
report, finding lists, digest). Its own function so that it alone carries the memory and the S3 and SNS
permissions a million-vulnerability run needs, and the range workers stay small."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from vanta_vuln_sync.handlers.container import current_container
from vanta_vuln_sync.handlers.records import finalize_record

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Process a batch of Finalize messages; returns the partial batch response."""
    # No Vanta client: Finalize reads S3 and the table only, and its role cannot read the secret.
    return current_container().process_batch(event, context, metrics, finalize_record, vanta=False)
