"""What a Lambda handler receives: the SQS event and the context object, built as Lambda builds them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# The system attributes Lambda copies into each record (SQS names them; Lambda keeps the same names).
_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "MessageGroupId",
    "MessageDeduplicationId",
    "SequenceNumber",
    "AWSTraceHeader",
)


class EmulatedContext:
    """The context object of one invocation; `get_remaining_time_in_millis()` counts down from the timeout.

    Carries the attributes Powertools and our handlers read (`aws_request_id`, `function_name`,
    `invoked_function_arn`, `memory_limit_in_mb`, `log_group_name`, ...).
    """

    def __init__(
        self,
        *,
        function_name: str,
        function_arn: str,
        memory_limit_in_mb: int,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/[$LATEST]{self.aws_request_id.replace('-', '')}"
        self.identity: object | None = None
        self.client_context: object | None = None
        self._clock = clock
        self._deadline = clock() + timeout_seconds

    @property
    def deadline(self) -> float:
        """The monotonic time at which Lambda would end this invocation."""
        return self._deadline

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout; 0 once it has passed."""
        return max(0, int((self._deadline - self._clock()) * 1000))


def _record_message_attributes(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    # SQS answers StringValue/BinaryValue/DataType; Lambda's event spells them in lower camel case.
    converted: dict[str, dict[str, Any]] = {}
    for name, value in attributes.items():
        binary = value.get("BinaryValue")
        converted[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": binary.decode("ascii") if isinstance(binary, bytes) else binary,
            "stringListValues": list(value.get("StringListValues", [])),
            "binaryListValues": list(value.get("BinaryListValues", [])),
            "dataType": value.get("DataType", "String"),
        }
    return converted


def sqs_event(messages: Sequence[Mapping[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS poller passes for `messages` (as ReceiveMessage returned them)."""
    records = []
    for message in messages:
        system = message.get("Attributes", {})
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {name: system[name] for name in _RECORD_ATTRIBUTES if name in system},
                "messageAttributes": _record_message_attributes(message.get("MessageAttributes", {})),
                "md5OfBody": message.get("MD5OfBody"),
                **(
                    {"md5OfMessageAttributes": message["MD5OfMessageAttributes"]}
                    if "MD5OfMessageAttributes" in message
                    else {}
                ),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}
