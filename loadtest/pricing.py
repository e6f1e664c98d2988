"""AWS prices the cost estimates use: published on-demand prices for us-east-1, read 2026-11-26 from
aws.amazon.com/lambda/pricing, /sqs/pricing, /dynamodb/pricing (on-demand), /s3/pricing (Standard) and
/secrets-manager/pricing. Free tiers are ignored (a deployment's other workloads may already use them).

A sync's cost here is Lambda compute and requests, SQS, DynamoDB, S3 requests and Secrets Manager calls.
Left out: CloudWatch (logs, metrics, alarms), S3 storage, SNS, EventBridge Scheduler, KMS and data
transfer, which a sync's size changes little or not at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PRICES_AS_OF = "2026-11-26"
LAMBDA_ARM64_PER_GB_SECOND = 0.0000133334
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
SQS_PER_REQUEST = 0.40 / 1_000_000  # standard queue; a request carries up to 10 messages
DYNAMODB_PER_WRITE = 1.25 / 1_000_000  # on-demand write request unit (items up to 1 KB)
DYNAMODB_PER_READ = 0.25 / 1_000_000  # on-demand read request unit (strongly consistent, up to 4 KB)
S3_PER_PUT = 0.005 / 1000  # PUT, COPY, POST, LIST
S3_PER_GET = 0.0004 / 1000  # GET and the rest
SECRETS_PER_CALL = 0.05 / 10_000
# The floor (issue 17): one container of the smallest size that holds a worker, waiting out the bound.
FLOOR_MEMORY_MB = 256


@dataclass(frozen=True, slots=True)
class Cost:
    """Dollars of one sync by service; `total` sums them."""

    lambda_compute: float
    lambda_requests: float
    sqs: float
    dynamodb: float
    s3: float
    secrets: float

    @property
    def total(self) -> float:
        return self.lambda_compute + self.lambda_requests + self.sqs + self.dynamodb + self.s3 + self.secrets

    def per_thousand_pages(self, pages: int) -> float:
        """Total dollars per 1,000 pages fetched (0 when no page was fetched)."""
        return per_thousand_pages(self.total, pages)


def per_thousand_pages(dollars: float, pages: int) -> float:
    """`dollars` spent on `pages` pages, per 1,000 pages (0 when there was no page)."""
    return dollars / pages * 1000 if pages else 0.0


def billed_gb_seconds(durations_ms: Iterable[float], memory_mb: int) -> float:
    """GB-seconds Lambda bills for invocations of these durations: each rounded up to 1 ms."""
    return sum(math.ceil(d) for d in durations_ms) / 1000.0 * memory_mb / 1024.0


def estimate_cost(*, gb_seconds: float, invocations: int, requests: Mapping[str, int]) -> Cost:
    """The cost of `invocations` Lambda invocations using `gb_seconds`, plus AWS requests by kind
    (`sqs`, `dynamodb-write`, `dynamodb-read`, `s3-put`, `s3-get`, `secrets`; others are free)."""
    return Cost(
        lambda_compute=gb_seconds * LAMBDA_ARM64_PER_GB_SECOND,
        lambda_requests=invocations * LAMBDA_PER_REQUEST,
        sqs=requests.get("sqs", 0) * SQS_PER_REQUEST,
        dynamodb=requests.get("dynamodb-write", 0) * DYNAMODB_PER_WRITE
        + requests.get("dynamodb-read", 0) * DYNAMODB_PER_READ,
        s3=requests.get("s3-put", 0) * S3_PER_PUT + requests.get("s3-get", 0) * S3_PER_GET,
        secrets=requests.get("secrets", 0) * SECRETS_PER_CALL,
    )


def real_equivalent_cost(cost: Cost, *, scaled_gb_seconds: float, time_scale: float) -> float:
    """`cost` of a run `time_scale` times faster, in real time: the compute of `scaled_gb_seconds`
    (invocations whose time the scale shrank: waiting on Vanta's limit and latency) multiplied back by
    the scale, everything else (requests; CPU-bound time such as Finalize's) as run."""
    return cost.total + scaled_gb_seconds * LAMBDA_ARM64_PER_GB_SECOND * (time_scale - 1)


def lambda_compute(seconds: float, memory_mb: int) -> float:
    """Dollars of `seconds` of one arm64 Lambda container at `memory_mb`."""
    return seconds * memory_mb / 1024 * LAMBDA_ARM64_PER_GB_SECOND


def floor_cost(pages: int, rate_limit_per_minute: float) -> float:
    """The floor of a sync of `pages` pages at `rate_limit_per_minute`: one FLOOR_MEMORY_MB container
    waiting out the bound, pages / limit minutes. Lambda compute only: no request, no AWS call."""
    return lambda_compute(pages / rate_limit_per_minute * 60.0, FLOOR_MEMORY_MB)
