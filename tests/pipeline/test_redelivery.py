"""Redelivery, duplicates and crashes at each step leave the same final output, and the run completes once.

Crashes are injected by thin wrappers around the real aiobotocore clients (test scaffolding): the wrapped
call raises instead of reaching moto, as if the Lambda died at that point; SQS then redelivers the message.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest

from vanta_vuln_sync.aws import AwsClients
from vanta_vuln_sync.run.services import Services

from .conftest import Stack
from .drive import PumpStats, pump

REQUEST = orjson.dumps({"v": 1, "type": "SyncRequest", "resources": ["vulnerabilities"], "mode": "full"})
SCOPE = "vulnerabilities"
# Opaque cursors, one page a step: every shard is a chain of steps handed on by continuations. (Only
# vulnerabilities: eight chains; the other resources take the same code path.)
SIM = {"vulnerabilities": 160, "seed": 21, "cursor_style": "opaque"}
SETTINGS = {"PAGE_SIZE": "10", "PAGE_BUDGET": "1"}


_REFERENCE: dict[str, list[str]] = {}


class Crash(Exception):
    """The Lambda died here."""


class Wrapped:
    """A real client with some methods replaced."""

    def __init__(self, real: Any, **methods: Callable[..., Awaitable[Any]]) -> None:
        self._real = real
        self._methods = methods

    def __getattr__(self, name: str) -> Any:
        return self._methods.get(name) or getattr(self._real, name)


def crash_before_progress_write(aws: AwsClients) -> AwsClients:
    """The first commit of every third step dies after the step's S3 write, before the conditional
    progress write. Each step dies once at most: a message that died at every delivery would go to the
    DLQ after maxReceiveCount receives, as it should (a global count could pick the same redelivered
    step every time, depending on which of a batch's steps commits first)."""
    steps: dict[tuple[str, str], bool] = {}

    async def update_item(**kwargs: Any) -> Any:
        if kwargs["UpdateExpression"].startswith("SET #next_seq"):
            step = (str(kwargs["Key"]), kwargs["ExpressionAttributeValues"][":next"]["N"])
            if step not in steps:
                steps[step] = len(steps) % 3 == 0
                if steps[step]:
                    raise Crash("after the S3 write, before the progress write")
        return await aws.dynamodb.update_item(**kwargs)

    return replace(aws, dynamodb=Wrapped(aws.dynamodb, update_item=update_item))


def crash_before_enqueue(aws: AwsClients) -> AwsClients:
    """The first send of each continuation and Finalize dies: after the progress write, before the enqueue."""
    sent: set[str] = set()

    async def send_message(**kwargs: Any) -> Any:
        if kwargs["MessageBody"] not in sent:
            sent.add(kwargs["MessageBody"])
            raise Crash("after the progress write, before the enqueue")
        return await aws.sqs.send_message(**kwargs)

    return replace(aws, sqs=Wrapped(aws.sqs, send_message=send_message))


def duplicate_every_continuation(aws: AwsClients) -> AwsClients:
    """Every continuation and Finalize is enqueued twice (a standard queue may deliver any message twice)."""

    async def send_message(**kwargs: Any) -> Any:
        await aws.sqs.send_message(**kwargs)
        return await aws.sqs.send_message(**kwargs)

    return replace(aws, sqs=Wrapped(aws.sqs, send_message=send_message))


def normalised_output(deployed: Stack, run_id: str) -> dict[str, list[str]]:
    """The run's raw objects (key without the run id and the delivery's suffix) and the record ids in
    each, in order."""
    return {
        key.split("/run=")[0] + "/" + re.sub(r"-[0-9a-f]{8}(?=\.ndjson)", "", key.rsplit("/", 1)[1]): [
            r["id"] for r in records
        ]
        for key, records in deployed.records_by_key(run_id).items()
    }


async def sync_once(
    deployed: Stack, services: Services, *, redeliver_every_message: bool = False
) -> tuple[str, PumpStats]:
    deployed.send_request(REQUEST)
    stats = await pump(
        deployed,
        services,
        done=lambda: deployed.last_success(SCOPE) is not None,
        redeliver_every_message=redeliver_every_message,
    )
    run_id = deployed.last_success(SCOPE)
    assert run_id is not None
    return run_id, stats


@pytest.mark.parametrize(
    ("fault", "wrap", "redeliver"),
    [
        # Two of the four in `nox -s tests` (the others in `nox -s integration`): a redelivered message
        # and a crash between the commit and the hand-on are the cases every step meets.
        pytest.param("every message delivered twice", None, True, marks=pytest.mark.exactness),
        ("every continuation enqueued twice", duplicate_every_continuation, False),
        ("crash after the S3 write, before the progress write", crash_before_progress_write, False),
        pytest.param(
            "crash after the progress write, before the enqueue",
            crash_before_enqueue,
            False,
            marks=pytest.mark.exactness,
        ),
    ],
)
async def test_final_output_is_unchanged_and_run_completes_once_when(
    stack: Callable[..., Awaitable[Stack]],
    open_services: Callable[..., Awaitable[Services]],
    fault: str,
    wrap: Callable[[AwsClients], AwsClients] | None,
    redeliver: bool,
) -> None:
    # Given the output of an undisturbed sync of the tenant (made once for all the faults)
    if not _REFERENCE:
        clean = await stack(sim=SIM, **SETTINGS)
        clean_run, _ = await sync_once(clean, await open_services())
        _REFERENCE.update(normalised_output(clean, clean_run))
    expected = dict(_REFERENCE)
    # When the same sync runs on a fresh deployment with the fault
    faulty = await stack(sim=SIM, **SETTINGS)
    faulty_run, stats = await sync_once(faulty, await open_services(wrap), redeliver_every_message=redeliver)
    # Then the fault happened, the output is the same, and the run completed exactly once
    assert stats.redelivered or stats.failures or stats.outcomes["noop"], f"{fault} never happened"
    assert normalised_output(faulty, faulty_run) == expected
    assert stats.outcomes["succeeded"] == 1
    assert faulty.run_ids() == [faulty_run]
    manifest = faulty.manifest(faulty_run)
    assert sorted(o["key"] for o in manifest["objects"]) == faulty.raw_keys(faulty_run)
    assert manifest["records"] == {"vulnerabilities": len(faulty.sim.dataset.records("vulnerabilities"))}
    assert faulty.dlq_messages(faulty.page_dlq_url) == []


@pytest.mark.exactness
async def test_a_first_step_that_committed_its_first_page_and_more_then_died_before_its_enqueue_goes_on(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    # Given offset ranges whose first steps read three pages: each delivery commits the first page with
    # the range's head (step 0), then the rest (step 1), then enqueues step 2
    deployed = await stack(sim={"vulnerabilities": 300, "seed": 21}, PAGE_SIZE="10", PAGE_BUDGET="3")
    # When every first send of a continuation dies (after both commits, before the enqueue)
    run_id, stats = await sync_once(deployed, await open_services(crash_before_enqueue))
    # Then the redelivered first steps enqueue the continuation of the step their delivery committed
    # last (before the fix they saw two steps committed and enqueued nothing: the range stood still for
    # good, with no message left anywhere), and every record is written once
    assert stats.failures
    written = deployed.records_by_key(run_id)
    got = sorted(r["id"] for records in written.values() for r in records)
    assert got == sorted(r["id"] for r in deployed.sim.dataset.records("vulnerabilities"))
    assert deployed.dlq_messages(deployed.page_dlq_url) == []
