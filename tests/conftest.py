"""Shared fixtures: moto server (real AWS APIs over loopback) and the Vanta simulator.

Nothing here mocks our own code: AWS is moto server over loopback, Vanta is our simulator.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from vanta_vuln_sync.local.embedded_aws import MotoServer
from vanta_vuln_sync.simulator import Simulator, SimulatorConfig

AWS_REGION = "us-east-1"


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """The embedded runtime puts the functions' environment into os.environ, as Lambda would; undo it
    after each test so no setting (log level, metrics off) leaks into the next."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _aws_environment(_restore_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real AWS account: clear AWS_* and set dummy credentials."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.startswith("VANTA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS_REGION)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "VantaVulnSyncTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "vanta-vuln-sync")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server for the session; yields its endpoint URL. Tests isolate by unique names.

    DynamoDB requests are served one at a time (see `MotoServer`): the token broker, the fleet rate
    limiter and the pipeline's exactly-once progress rest on conditional writes that moto would
    otherwise let race.
    """
    server = MotoServer()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
async def simulator() -> AsyncIterator[Callable[..., Awaitable[Simulator]]]:
    """Factory: `sim = await simulator(vulnerabilities=500, cursor_style="opaque")`, started on loopback.

    Every simulator started through it is closed when the test ends.
    """
    started: list[Simulator] = []

    async def start(**overrides: Any) -> Simulator:
        sim = Simulator(SimulatorConfig(**overrides))
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.close()
