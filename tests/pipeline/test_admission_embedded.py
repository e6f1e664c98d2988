"""The run cap end to end: template.yaml deployed into moto (MaxConcurrentRuns -> MAX_CONCURRENT_RUNS),
the real handlers under the embedded runtime's SQS poller, and a burst of resyncs on RequestQueue."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from vanta_vuln_sync.local.world import World
from vanta_vuln_sync.simulator import SimulatorConfig

pytestmark = pytest.mark.integration  # the embedded world (moto, simulator, pollers)

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM")


def _runs(ddb: Any, table: str) -> dict[str, tuple[str, str]]:
    """run id -> (scope, status) of every run in the table."""
    items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    return {
        i["pk"]["S"].removeprefix("run#"): (i["scope"]["S"], i["status"]["S"])
        for i in items
        if i["pk"]["S"].startswith("run#") and i["sk"]["S"] == "run"
    }


def test_a_burst_of_resyncs_runs_at_most_the_cap_at_once_and_every_one_completes() -> None:
    with World(SimulatorConfig(seed=9, vulnerabilities=150, latency_seconds=0.02)) as world:
        outputs = world.deploy(
            {
                "VantaRateLimitPerMinute": 1000,
                "WorkerMaxConcurrency": 2,
                "MaxConcurrentRuns": 1,
                "PageBudget": 2,
                "LogLevel": "WARNING",
            },
            stack_name=f"vvs-cap-{uuid.uuid4().hex[:8]}",
        ).outputs
        sqs, ddb = world.client("sqs"), world.client("dynamodb")
        table = outputs["StateTableName"]
        most_running = 0
        # A waiting request comes back in a second, not 12 minutes.
        world.start_poller(failed_visibility_timeout=1)
        # Given three resyncs of distinct scopes sent at once, and a cap of one run
        for severity in SEVERITIES:
            body = {
                "v": 1,
                "type": "SyncRequest",
                "resources": ["vulnerabilities"],
                "filters": {"vulnerabilities": {"severity": severity}},
                "mode": "full",
            }
            world.send("RequestQueueUrl", body)
        # When the embedded fleet works until all three have succeeded
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            runs = _runs(ddb, table)
            most_running = max(most_running, sum(status == "running" for _, status in runs.values()))
            if len(runs) == len(SEVERITIES) and all(s == "succeeded" for _, s in runs.values()):
                break
            time.sleep(0.1)
        final = _runs(ddb, table)
        world.stop_poller()
        # Then never more than one ran at once, each scope ran once and succeeded, and nothing was parked
        assert sorted(status for _, status in final.values()) == ["succeeded"] * len(SEVERITIES), final
        assert len({scope for scope, _ in final.values()}) == len(SEVERITIES)
        assert most_running == 1
        parked = sqs.receive_message(QueueUrl=outputs["RequestDLQUrl"], MaxNumberOfMessages=10)
        assert parked.get("Messages", []) == []
