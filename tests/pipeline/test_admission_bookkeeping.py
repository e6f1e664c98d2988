"""Bookkeeping that survives faults: the run's final write counted once even when its reply is lost,
and a stuck run failed with its reason instead of absorbing its scope's requests.

A lost reply is reproduced as AWS documents it ("the request may or may not have succeeded"): the
state table's client applies the write, the reply never arrives, and the SDK's retry of the same
conditional write then fails its condition, which is all the caller sees. The wrapper below does exactly
that against moto server (as `AwsFaultInjector`'s `lost_reply_rate` does, but for one chosen write).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import orjson
import pytest
from aws_lambda_powertools.metrics import Metrics

from vanta_vuln_sync.aws import AwsClients, open_clients
from vanta_vuln_sync.handlers.container import build_services
from vanta_vuln_sync.run.services import Services
from vanta_vuln_sync.settings import settings_from_env

from .conftest import REGION, Stack
from .drive import deliver_requests, pump
from .test_admission import resync

SCOPE_OF_ALL = "all"
FULL_SYNC = orjson.dumps(
    {
        "v": 1,
        "type": "SyncRequest",
        "resources": ["vulnerabilities", "vulnerability-remediations", "vulnerable-assets"],
        "mode": "full",
    }
).decode()


class _LoseReply:
    """The real DynamoDB client, except that the first write `matches` picks is applied and then
    retried as the SDK would after a lost reply (so the caller sees the retry's answer)."""

    def __init__(self, real: Any, matches: Callable[[dict[str, Any]], bool]) -> None:
        self._real = real
        self._matches = matches
        self.lost = 0

    async def update_item(self, **kwargs: Any) -> Any:
        if not self.lost and self._matches(kwargs):
            self.lost += 1
            await self._real.update_item(**kwargs)  # applied; its reply is lost
        return await self._real.update_item(**kwargs)  # the SDK's retry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _final_write(kwargs: dict[str, Any]) -> bool:
    return "#finished_at" in kwargs.get("UpdateExpression", "")


@pytest.fixture
async def services_with_metrics() -> AsyncIterator[Callable[..., Awaitable[tuple[Services, Metrics]]]]:
    """Factory: services on the test's loop (environment from `stack`) that record their metrics."""
    async with AsyncExitStack() as exits:

        async def make(wrap: Callable[[AwsClients], AwsClients] | None = None) -> tuple[Services, Metrics]:
            metrics = Metrics(namespace="VantaVulnSyncTest", service="vanta-vuln-sync")
            metrics.clear_metrics()
            aws = await open_clients(exits, region=REGION)
            services = await build_services(
                exits, settings_from_env(), wrap(aws) if wrap else aws, metrics=metrics
            )
            return services, metrics

        yield make


def _count(metrics: Metrics, name: str) -> float:
    entry = metrics.metric_set.get(name)
    return sum(entry["Value"]) if entry else 0.0


async def test_a_lost_reply_on_the_final_run_write_still_counts_the_run_once(
    stack: Callable[..., Awaitable[Stack]],
    services_with_metrics: Callable[..., Awaitable[tuple[Services, Metrics]]],
) -> None:
    deployed = await stack(sim={"vulnerabilities": 60, "seed": 3}, PAGE_SIZE="50")
    lose: list[_LoseReply] = []

    def wrap(aws: AwsClients) -> AwsClients:
        lose.append(_LoseReply(aws.dynamodb, _final_write))
        return replace(aws, dynamodb=lose[0])

    services, metrics = await services_with_metrics(wrap)
    # Given a full sync whose Finalize's final write (running -> succeeded) loses its reply
    deployed.send_request(FULL_SYNC)
    stats = await pump(deployed, services, done=lambda: deployed.last_success(SCOPE_OF_ALL) is not None)
    # Then the reply was lost, the run succeeded once, and RunsSucceeded and its metrics count it once
    assert lose[0].lost == 1
    [run_id] = deployed.run_ids()
    assert deployed.run_item(run_id)["status"]["S"] == "succeeded"
    assert stats.outcomes["succeeded"] == 1
    assert _count(metrics, "RunsSucceeded") == 1
    assert len(metrics.metric_set["RunSeconds"]["Value"]) == 1
    assert "OpenVulnerabilities" in metrics.metric_set


@pytest.mark.parametrize("lost_reply", [False, True])
async def test_a_run_stuck_past_the_threshold_is_failed_with_its_reason_by_the_next_request_of_its_scope(
    stack: Callable[..., Awaitable[Stack]],
    services_with_metrics: Callable[..., Awaitable[tuple[Services, Metrics]]],
    lost_reply: bool,
) -> None:
    deployed = await stack(sim={"vulnerabilities": 40}, STUCK_RUN_SECONDS="3600")
    lose: list[_LoseReply] = []

    def wrap(aws: AwsClients) -> AwsClients:
        lose.append(_LoseReply(aws.dynamodb, _final_write))
        return replace(aws, dynamodb=lose[0])

    services, metrics = await services_with_metrics(wrap if lost_reply else None)
    # Given a resync whose ranges never ran (its workers died), started more than an hour ago
    deployed.send_request(resync("HIGH"))
    assert await deliver_requests(deployed, services) == ["started"]
    [stuck] = deployed.run_ids()
    two_hours_later = replace(services, clock=lambda: time.time() + 7200)
    # When the same request comes again
    deployed.send_request(resync("HIGH"))
    outcome = await deliver_requests(deployed, two_hours_later)
    # Then the stuck run is failed with the reason, counted once, and the request starts a new run
    assert outcome == ["started"]
    item = deployed.run_item(stuck)
    assert item["status"]["S"] == "failed"
    assert "stuck" in item["failure"]["S"]
    assert "STUCK_RUN_SECONDS" in item["failure"]["S"]
    assert _count(metrics, "RunsFailed") == 1
    assert len(deployed.run_ids()) == 2
    assert lose[0].lost == 1 if lost_reply else not lose


async def test_a_run_younger_than_the_threshold_is_joined_as_before(
    stack: Callable[..., Awaitable[Stack]],
    services_with_metrics: Callable[..., Awaitable[tuple[Services, Metrics]]],
) -> None:
    deployed = await stack(sim={"vulnerabilities": 40}, STUCK_RUN_SECONDS="3600")
    services, metrics = await services_with_metrics()
    deployed.send_request(resync("HIGH"))
    assert await deliver_requests(deployed, services) == ["started"]
    half_an_hour_later = replace(services, clock=lambda: time.time() + 1800)
    deployed.send_request(resync("HIGH"))
    assert await deliver_requests(deployed, half_an_hour_later) == ["joined"]
    assert _count(metrics, "RunsFailed") == 0


async def test_a_stuck_run_gives_its_slot_to_a_waiting_request_of_another_scope(
    stack: Callable[..., Awaitable[Stack]],
    services_with_metrics: Callable[..., Awaitable[tuple[Services, Metrics]]],
) -> None:
    deployed = await stack(sim={"vulnerabilities": 40}, STUCK_RUN_SECONDS="3600", MAX_CONCURRENT_RUNS="1")
    services, metrics = await services_with_metrics()
    deployed.send_request(resync("HIGH"))
    assert await deliver_requests(deployed, services) == ["started"]
    [stuck] = deployed.run_ids()
    deployed.send_request(resync("LOW"))
    assert await deliver_requests(deployed, services) == ["waits"]
    two_hours_later = replace(services, clock=lambda: time.time() + 7200)
    assert await deliver_requests(deployed, two_hours_later) == ["started"]
    assert deployed.run_item(stuck)["status"]["S"] == "failed"
    assert _count(metrics, "RunsFailed") == 1
