"""A scaled point meets production's deadlines scaled: what the deployed stack and its settings carry."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import boto3
import pytest
from loadtest.deadlines import (
    Deadlines,
    apply_deadlines,
    production_deadlines,
    production_memory,
    template_defaults,
)
from loadtest.points import Point

from vanta_vuln_sync.local.embedded_aws import EmbeddedStack
from vanta_vuln_sync.local.mappings import apply_environment, discover
from vanta_vuln_sync.local.world import UNREACHED_VANTA, World
from vanta_vuln_sync.settings import settings_from_env


@pytest.fixture(scope="module")
def stack(moto_server: str) -> Iterator[EmbeddedStack]:
    """The real template in moto, deployed once for the module (no Vanta behind it)."""
    with World(vanta=UNREACHED_VANTA, endpoint_url=moto_server) as world:
        yield world.deploy(stack_name=f"dl-{uuid.uuid4().hex[:8]}")


def test_production_deadlines_are_the_templates_timeouts_and_the_settings_defaults() -> None:
    deadlines = production_deadlines()

    assert (deadlines.worker_timeout, deadlines.scheduler_timeout) == (900, 120)
    assert (deadlines.page_visibility, deadlines.request_visibility) == (5400, 720)
    assert (deadlines.request_timeout, deadlines.retry_budget, deadlines.retry_backoff_cap) == (30, 120, 20)
    assert (deadlines.handoff, deadlines.idle_step_delay, deadlines.page_retry) == (15, 30, 60)


def test_every_deadline_shrinks_by_the_time_scale_when_a_point_is_scaled() -> None:
    production = production_deadlines()

    scaled = Point(concurrency=5, latency_s=2.0, time_scale=10.0).deadlines
    unscaled = Point(concurrency=5, latency_s=2.0, rate_limit=50, time_scale=1.0).deadlines

    assert unscaled == production
    for field in dataclasses.fields(Deadlines):
        assert getattr(scaled, field.name) == pytest.approx(getattr(production, field.name) / 10), field.name


def test_scaled_deadlines_reach_the_deployed_functions_queues_and_settings_when_applied(
    stack: EmbeddedStack, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a point at 20x (whole-second deadlines round: 900 / 20 = 45, 720 / 20 = 36, 30 / 20 = 1.5 -> 2)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    deadlines = Point(concurrency=2, latency_s=1.0, rate_limit=50, time_scale=20.0).deadlines
    lambda_client, sqs = boto3.client("lambda"), boto3.client("sqs")

    # When the load test applies them to the deployed stack
    apply_deadlines(lambda_client, sqs, stack.outputs, deadlines)

    # Then the embedded runtime reads the scaled timeouts, as Lambda would
    _, functions = discover(lambda_client, sqs, stack.function_names)
    timeouts = {name.rsplit("-", 1)[-1]: f.timeout_seconds for name, f in functions.items()}
    # (the Finalize function keeps its production timeout: CPU and S3 work, which no scale shrinks)
    assert timeouts == {"worker": 45, "scheduler": 6, "finalize": 900}
    visibility = {
        name: sqs.get_queue_attributes(QueueUrl=stack.outputs[name], AttributeNames=["VisibilityTimeout"])[
            "Attributes"
        ]["VisibilityTimeout"]
        for name in ("PageQueueUrl", "RequestQueueUrl")
    }
    assert visibility == {"PageQueueUrl": "270", "RequestQueueUrl": "36"}
    # And the handlers' settings, read from that environment, carry every other deadline scaled
    apply_environment(functions.values())
    settings = settings_from_env()
    assert settings.vanta.request_timeout == pytest.approx(1.5)
    assert settings.vanta.retry_budget == pytest.approx(6.0)
    assert settings.vanta.retry_backoff_cap == pytest.approx(1.0)
    assert settings.handoff_seconds == pytest.approx(0.75)
    assert settings.idle_step_delay_seconds == 2
    assert settings.page_retry_seconds == 3
    # And the template's own variables are kept
    assert settings.state_table == stack.outputs["StateTableName"]


def test_production_memory_is_each_function_memory_size_with_parameters_at_their_defaults() -> None:
    defaults = template_defaults()
    memory = production_memory()

    assert memory["worker"] == int(defaults["WorkerMemorySize"])
    assert memory["finalize"] == int(defaults["FinalizeMemorySize"])
    assert 128 <= memory["scheduler"] <= 10240
