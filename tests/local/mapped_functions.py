"""A function deployed into moto with its queue, DLQ and event source mapping, as the poller tests use it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class MappedFunction:
    name: str
    queue_url: str
    dlq_url: str
    sqs: SQSClient

    def send(self, *bodies: dict[str, object]) -> list[str]:
        return [
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body))["MessageId"]
            for body in bodies
        ]

    def dlq_bodies(self) -> list[dict[str, object]]:
        messages = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def depth(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
