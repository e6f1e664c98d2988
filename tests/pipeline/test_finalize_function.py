"""Finalize in its own function: the last range sends Finalize to FinalizeQueue, the Finalize handler
finishes the run without a Vanta session, parks its poison in FinalizeDLQ, and a Finalize that still
arrives on PageQueue is forwarded, not run by the worker."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from vanta_vuln_sync.handlers.container import current_container, shutdown_container
from vanta_vuln_sync.local.context import EmulatedContext, sqs_event

from .conftest import REGION, Stack

EVENTS = Path(__file__).resolve().parents[2] / "events"
# An invocation that only forwarded or parked a message has no metrics; Powertools warns.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


def invoke(function: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """One invocation of `vanta_vuln_sync.handlers.<function>` on this thread's container."""
    handler = importlib.import_module(f"vanta_vuln_sync.handlers.{function}").handler
    context = EmulatedContext(
        function_name=function,
        function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:{function}",
        memory_limit_in_mb=256,
        timeout_seconds=900,
    )
    event = sqs_event(messages, queue_arn=f"arn:aws:sqs:{REGION}:123456789012:q", region=REGION)
    result: dict[str, Any] = handler(event, context)
    return result


def drain(deployed: Stack, queue_url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := deployed.sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages"):
        messages += batch
    return messages


def opened_a_vanta_session() -> bool:
    container = current_container()
    return container.run(container.services(vanta=False)).http is not None


@pytest.fixture
async def finalize_stack(
    stack: Callable[..., Awaitable[Stack]], monkeypatch: pytest.MonkeyPatch
) -> tuple[Stack, str, str]:
    """A stack whose functions are told FinalizeQueue and FinalizeDLQ, as the template tells them."""
    deployed = await stack(sim={"vulnerabilities": 120, "seed": 4}, PAGE_SIZE="50")
    dlq = deployed.sqs.create_queue(QueueName=f"{deployed.table}-finalize-dlq")["QueueUrl"]
    queue = deployed.sqs.create_queue(QueueName=f"{deployed.table}-finalize")["QueueUrl"]
    monkeypatch.setenv("FINALIZE_QUEUE_URL", queue)
    monkeypatch.setenv("FINALIZE_DLQ_URL", dlq)
    return deployed, queue, dlq


async def test_last_range_sends_finalize_to_its_own_queue_and_the_finalize_function_finishes_the_run(
    finalize_stack: tuple[Stack, str, str],
) -> None:
    deployed, finalize_queue, finalize_dlq = finalize_stack
    loop = asyncio.get_running_loop()
    containers = {name: ThreadPoolExecutor(max_workers=1) for name in ("scheduler", "worker", "finalize")}
    worker_results: list[dict[str, Any]] = []
    try:
        # Given a full sync planned and every range stepped by the worker until PageQueue is empty
        deployed.send_request((EVENTS / "sync-request-full.json").read_text())
        requests = drain(deployed, deployed.request_queue_url)
        await loop.run_in_executor(containers["scheduler"], invoke, "scheduler", requests)
        while pages := drain(deployed, deployed.page_queue_url):
            for i in range(0, len(pages), 10):
                worker_results.append(
                    await loop.run_in_executor(containers["worker"], invoke, "worker", pages[i : i + 10])
                )
        [run_id] = deployed.run_ids()
        # Then the worker did not finish the run: its Finalize waits on FinalizeQueue, alone
        assert deployed.run_item(run_id)["status"]["S"] == "running"
        finalizes = drain(deployed, finalize_queue)
        assert [orjson.loads(m["Body"]) for m in finalizes] == [
            {"v": 1, "type": "Finalize", "run_id": run_id}
        ]
        # When the Finalize function gets it, with a poison message in the same batch
        deployed.sqs.send_message(QueueUrl=finalize_queue, MessageBody='{"v": 1, "type": "Finalize"}')
        batch = finalizes + drain(deployed, finalize_queue)
        response = await loop.run_in_executor(containers["finalize"], invoke, "finalize", batch)
        vanta_session = await loop.run_in_executor(containers["finalize"], opened_a_vanta_session)
    finally:
        for executor in containers.values():
            await loop.run_in_executor(executor, shutdown_container)
            executor.shutdown()
    assert all(r == {"batchItemFailures": []} for r in worker_results)
    # Then the run succeeded with its statistics written, by a container that never opened Vanta
    assert response == {"batchItemFailures": []}
    assert deployed.run_item(run_id)["status"]["S"] == "succeeded"
    assert deployed.get_json(f"runs/{run_id}/stats.json")["vulnerabilities"]["total"] == 120
    assert not vanta_session
    # and the poison sits in FinalizeDLQ with its reason, not in PageDLQ
    (parked,) = deployed.dlq_messages(finalize_dlq)
    assert "run_id" in parked["MessageAttributes"]["reason"]["StringValue"]
    assert deployed.dlq_messages(deployed.page_dlq_url) == []


async def test_a_finalize_arriving_on_the_page_queue_is_forwarded_to_the_finalize_queue_not_run(
    finalize_stack: tuple[Stack, str, str],
) -> None:
    # Given a Finalize on PageQueue (sent before the update that gave Finalize its queue, or redriven)
    deployed, finalize_queue, _ = finalize_stack
    body = '{"v": 1, "type": "Finalize", "run_id": "20260101T000000Z-before"}'
    deployed.sqs.send_message(QueueUrl=deployed.page_queue_url, MessageBody=body)
    loop = asyncio.get_running_loop()
    container = ThreadPoolExecutor(max_workers=1)
    try:
        # When a worker receives it
        response = await loop.run_in_executor(
            container, invoke, "worker", drain(deployed, deployed.page_queue_url)
        )
    finally:
        await loop.run_in_executor(container, shutdown_container)
        container.shutdown()
    # Then it is handed to FinalizeQueue as it was (the worker does not look the run up: no poison)
    assert response == {"batchItemFailures": []}
    assert [orjson.loads(m["Body"]) for m in drain(deployed, finalize_queue)] == [orjson.loads(body)]
    assert deployed.dlq_messages(deployed.page_dlq_url) == []
