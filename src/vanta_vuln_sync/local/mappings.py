"""What the deployed event source mappings and functions say, and Lambda's rules for a batch's outcome.

Read from moto's Lambda API (`ListEventSourceMappings`, `GetFunctionConfiguration`,
`GetFunctionConcurrency`), exactly as an operator would read them from AWS.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vanta_vuln_sync.local.containers import FunctionConfig, Invocation

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MappingConfig:
    """One SQS event source mapping as deployed (from `lambda:ListEventSourceMappings`)."""

    uuid: str
    queue_arn: str
    queue_url: str
    function_name: str
    batch_size: int
    batching_window_seconds: float
    maximum_concurrency: int | None
    report_batch_item_failures: bool
    enabled: bool = True

    @property
    def queue_name(self) -> str:
        return self.queue_arn.rsplit(":", 1)[-1]


def discover(
    lambda_client: LambdaClient, sqs: SQSClient, only_functions: Collection[str] | None = None
) -> tuple[list[MappingConfig], dict[str, FunctionConfig]]:
    """Read the SQS event source mappings (of `only_functions`, if given) and their functions."""
    mappings: list[MappingConfig] = []
    functions: dict[str, FunctionConfig] = {}
    for page in lambda_client.get_paginator("list_event_source_mappings").paginate():
        for esm in page["EventSourceMappings"]:
            source = esm.get("EventSourceArn", "")
            if not source.startswith("arn:aws:sqs:"):
                continue
            function_name = esm["FunctionArn"].rsplit(":", 1)[-1]
            if only_functions is not None and function_name not in only_functions:
                continue
            if function_name not in functions:
                functions[function_name] = _function_config(lambda_client, function_name)
            queue_url = sqs.get_queue_url(QueueName=source.rsplit(":", 1)[-1])["QueueUrl"]
            mappings.append(
                MappingConfig(
                    uuid=esm["UUID"],
                    queue_arn=source,
                    queue_url=queue_url,
                    function_name=function_name,
                    batch_size=int(esm.get("BatchSize", 10)),
                    batching_window_seconds=int(esm.get("MaximumBatchingWindowInSeconds", 0)),
                    maximum_concurrency=esm.get("ScalingConfig", {}).get("MaximumConcurrency"),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in esm.get("FunctionResponseTypes", []),
                    enabled=esm.get("State", "Enabled") == "Enabled",
                )
            )
    return mappings, functions


def _function_config(lambda_client: LambdaClient, name: str) -> FunctionConfig:
    config = lambda_client.get_function_configuration(FunctionName=name)
    reserved = lambda_client.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
    return FunctionConfig(
        name=name,
        arn=config["FunctionArn"],
        handler=config.get("Handler", ""),
        timeout_seconds=int(config.get("Timeout", 3)),
        memory_mb=int(config.get("MemorySize", 128)),
        # Lambda's environment is strings; moto hands back resolved Number parameters as numbers.
        environment={k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()},
        reserved_concurrency=reserved,
    )


def apply_environment(
    functions: Iterable[FunctionConfig], overrides: Mapping[str, str] | None = None
) -> None:
    """Put the functions' environment variables (then `overrides`) into `os.environ` (see module doc)."""
    chosen: dict[str, tuple[str, str]] = {}
    for function in functions:
        for name, value in function.environment.items():
            if name in chosen and chosen[name][1] != value:
                logger.warning(
                    "%s sets %s differently from %s; one process has one environment, keeping %s's",
                    function.name,
                    name,
                    chosen[name][0],
                    chosen[name][0],
                )
                continue
            chosen[name] = (function.name, value)
    os.environ.update({name: value for name, (_, value) in chosen.items()})
    os.environ.update(overrides or {})


def failed_message_ids(mapping: MappingConfig, invocation: Invocation) -> set[str]:
    """The message ids of the batch that Lambda would leave on the queue after this invocation."""
    everything = {message["MessageId"] for message in invocation.messages}
    if invocation.outcome != "succeeded":
        return everything
    response = invocation.response
    if not mapping.report_batch_item_failures or response is None:
        return set()
    # Lambda's rules: an empty or null response/list is success; anything malformed fails the batch.
    if not isinstance(response, dict):
        return everything
    failures = response.get("batchItemFailures")
    if not failures:
        return set()
    if not isinstance(failures, list):
        return everything
    named: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in everything:
            return everything
        named.add(identifier)
    return named
