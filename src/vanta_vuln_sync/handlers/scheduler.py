"""Scheduler Lambda, fed by RequestQueue: each SyncRequest starts (or joins) a run and enqueues its ranges."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from vanta_vuln_sync.handlers.container import current_container
from vanta_vuln_sync.handlers.records import process_sync_request

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Process a batch of SyncRequests; returns the partial batch response."""
    container = current_container()

    def remaining() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000.0

    async def record_handler(record: SQSRecord) -> None:
        services = await container.services(metrics)
        sent = record.attributes.sent_timestamp
        sent_at = datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None
        await process_sync_request(
            record.body, record.message_id, sent_at, services=services, remaining=remaining
        )

    return container.process_batch(event, record_handler, context)
