"""Worker Lambda, fed by PageQueue: runs PageRange steps (up to RANGES_IN_FLIGHT at once); the last range
sends Finalize to the Finalize function (handlers/finalize.py)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from vanta_vuln_sync.container import current_container
from vanta_vuln_sync.pipeline.records import process_page_message

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Process a batch of PageRange messages; returns the partial batch response."""
    container = current_container()

    def remaining() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000.0

    async def record_handler(record: SQSRecord) -> None:
        services = await container.services(metrics)
        await process_page_message(record.body, record.message_id, services=services, remaining=remaining)

    return container.process_batch(event, record_handler, context)
