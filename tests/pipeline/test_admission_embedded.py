"""The run cap end to end: template.yaml deployed into moto (MaxConcurrentRuns -> MAX_CONCURRENT_RUNS),
the real handlers under the embedded runtime's SQS poller, and a burst of resyncs on RequestQueue."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from vanta_vuln_sync.handlers.container import shutdown_container
from vanta_vuln_sync.local.embedded_aws import EmbeddedAws
from vanta_vuln_sync.local.poller import Poller
from vanta_vuln_sync.local.simulator_thread import SimulatorThread
from vanta_vuln_sync.simulator import SimulatorConfig

pytestmark = pytest.mark.integration  # the embedded world (moto, simulator, pollers)

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM")


@pytest.fixture
def clean_environ() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _runs(ddb: Any, table: str) -> dict[str, tuple[str, str]]:
    """run id -> (scope, status) of every run in the table."""
    items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    return {
        i["pk"]["S"].removeprefix("run#"): (i["scope"]["S"], i["status"]["S"])
        for i in items
        if i["pk"]["S"].startswith("run#") and i["sk"]["S"] == "run"
    }


@pytest.mark.usefixtures("clean_environ")
def test_a_burst_of_resyncs_runs_at_most_the_cap_at_once_and_every_one_completes() -> None:
    simulator = SimulatorThread(SimulatorConfig(seed=9, vulnerabilities=150, latency_seconds=0.02))
    embedded = EmbeddedAws()
    try:
        sim = simulator.start()
        embedded.start()
        deployed = embedded.deploy(
            client_id=sim.client_id,
            client_secret=sim.client_secret,
            parameters={
                "VantaBaseUrl": sim.base_url,
                "VantaAuthUrl": sim.auth_url,
                "AllowCustomVantaHost": "true",
                "VantaRateLimitPerMinute": 1000,
                "WorkerMaxConcurrency": 2,
                "MaxConcurrentRuns": 1,
                "PageBudget": 2,
                "LogLevel": "WARNING",
            },
            stack_name=f"vvs-cap-{uuid.uuid4().hex[:8]}",
        )
        sqs, ddb = embedded.client("sqs"), embedded.client("dynamodb")
        outputs = deployed.outputs
        table = outputs["StateTableName"]
        poller = Poller(
            only_functions=deployed.function_names,
            container_teardown=shutdown_container,
            failed_visibility_timeout=1,  # a waiting request comes back in a second, not 12 minutes
            environment_overrides={
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
            },
        )
        most_running = 0
        with poller:
            # Given three resyncs of distinct scopes sent at once, and a cap of one run
            for severity in SEVERITIES:
                body = {
                    "v": 1,
                    "type": "SyncRequest",
                    "resources": ["vulnerabilities"],
                    "filters": {"vulnerabilities": {"severity": severity}},
                    "mode": "full",
                }
                sqs.send_message(QueueUrl=outputs["RequestQueueUrl"], MessageBody=orjson.dumps(body).decode())
            # When the embedded fleet works until all three have succeeded
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                runs = _runs(ddb, table)
                most_running = max(most_running, sum(status == "running" for _, status in runs.values()))
                if len(runs) == len(SEVERITIES) and all(s == "succeeded" for _, s in runs.values()):
                    break
                time.sleep(0.1)
            final = _runs(ddb, table)
        # Then never more than one ran at once, each scope ran once and succeeded, and nothing was parked
        assert sorted(status for _, status in final.values()) == ["succeeded"] * len(SEVERITIES), final
        assert len({scope for scope, _ in final.values()}) == len(SEVERITIES)
        assert most_running == 1
        parked = sqs.receive_message(QueueUrl=outputs["RequestDLQUrl"], MaxNumberOfMessages=10)
        assert parked.get("Messages", []) == []
    finally:
        simulator.stop()
        embedded.stop()
