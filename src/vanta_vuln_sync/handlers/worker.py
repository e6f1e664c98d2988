"""Worker Lambda, fed by PageQueue: runs PageRange steps (up to RANGES_IN_FLIGHT at once); the last range
sends Finalize to the Finalize function (handlers/finalize.py)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from vanta_vuln_sync.handlers.container import current_container
from vanta_vuln_sync.handlers.records import page_record

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Process a batch of PageRange messages; returns the partial batch response."""
    container = current_container()
    stagger = container.settings.worker_stagger
    return container.process_batch(event, context, metrics, page_record, stagger=stagger)
