"""Shared fixtures: moto server (real AWS APIs over loopback) and the Vanta simulator; the two test tiers.

Nothing here mocks our own code: AWS is moto server over loopback, Vanta is our simulator.

The tiers (`nox -s unit` runs the first alone; `nox -s tests` runs it, then the integration tests marked
`exactness`; `nox -s integration` runs the other integration tests):
- **unit**: every test that uses none of `SERVER_FIXTURES` below (directly or through another fixture)
  and is not marked `integration`. These run with the network and child processes closed: a unit test
  that binds or connects an internet socket, or starts a process, fails at once saying where it belongs.
- **integration**: tests that use one of those fixtures (moto server, the simulator, the chaos bench, the
  security tests' recorded sync...), and tests marked `integration` because they start a server or a
  process themselves (an embedded world, a simulator on a fake clock, a CLI or pip subprocess).

The tier follows from what a test uses, so a new test lands in the right one without a decision; only a
test that starts its own server or process needs `@pytest.mark.integration` (the guard says so).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any

import pytest

from vanta_vuln_sync.local.embedded_aws import MotoServer
from vanta_vuln_sync.simulator import Simulator, SimulatorConfig

AWS_REGION = "us-east-1"
# The fixtures that start a server: a test using any of them (at any depth) is an integration test.
SERVER_FIXTURES = frozenset(
    {
        "moto_server",  # here
        "simulator",  # here
        "bench",  # tests/chaos: the embedded runtime's moto server
        "synced_stack",  # tests/security: one recorded sync in its own embedded world
        "virtual_sim",  # tests/vanta: simulators on a virtual clock
        "flaky_vanta",  # tests/vanta: a hand-written aiohttp server
        "metered",  # tests/loadtest: the metered moto server
    }
)
INTERNET = (socket.AF_INET, socket.AF_INET6)


# Fixtures wider than a module that build a whole world once: with pytest-xdist, the tests sharing one run
# in one process, so the world is built once, not once per process.
SHARED_WORLDS = ("synced_stack",)


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the markers set here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test `unit` or `integration` (see the module docstring), and, under pytest-xdist
    (`--dist loadgroup`), put the tests of a shared world in one group, so that world is built in one
    process only. Other tests are not grouped: the scheduler balances them one by one (a module's heavy
    syncs in one process would leave the others idle)."""
    grouping = config.pluginmanager.hasplugin("xdist")
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if not item.get_closest_marker("integration"):
            if not SERVER_FIXTURES & fixtures:
                item.add_marker(pytest.mark.unit)
                continue
            item.add_marker(pytest.mark.integration)
        world = next((name for name in SHARED_WORLDS if name in fixtures), None)
        if grouping and world is not None:
            item.add_marker(pytest.mark.xdist_group(world))


def pytest_configure(config: pytest.Config) -> None:
    """matplotlib lists the machine's fonts (`fc-list`, a child process) the first time it is imported
    on a machine, then keeps the list in its cache: done here, before any test, so that a unit test of
    the load-test plots does not start that process on a fresh machine (seen 2026-11-30: five unit tests
    of loadtest/results.py refused by the guard below until the cache existed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.font_manager
    except ImportError:  # the `loadtest` extra is not installed: its tests are not collected either
        pass


class UnitTestLeftItsTier(RuntimeError):
    """A test in the unit tier tried to start or reach a server, or to start a process."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Unit tests run (fixture setup and teardown included) with internet sockets unable to bind or
    connect and with no child process, so one that starts moto, the simulator or a subprocess fails
    loudly instead of slowing the fast tier."""
    if not item.get_closest_marker("unit"):
        return (yield)

    def refusal(what: str) -> UnitTestLeftItsTier:
        return UnitTestLeftItsTier(
            f"{item.nodeid} is in the unit tier (it uses none of tests/conftest.py's SERVER_FIXTURES) but "
            f"{what}: use one of those fixtures, or mark it `@pytest.mark.integration` if it starts a "
            "server or a process itself"
        )

    def refuse_internet(original: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(sock: socket.socket, address: Any, *args: Any) -> Any:
            if sock.family in INTERNET:
                raise refusal(f"opened a socket to {address!r}")
            return original(sock, address, *args)

        return guarded

    def refuse_process(*args: Any, **kwargs: Any) -> None:
        raise refusal(f"started a process {args[1] if len(args) > 1 else kwargs.get('args')!r}")

    originals: list[tuple[type, str, Any]] = [
        (socket.socket, name, getattr(socket.socket, name)) for name in ("bind", "connect", "connect_ex")
    ]
    originals.append((subprocess.Popen, "__init__", subprocess.Popen.__init__))
    for owner, name, original in originals:
        setattr(owner, name, refuse_process if owner is subprocess.Popen else refuse_internet(original))
    try:
        return (yield)
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


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
    """Factory: `sim = await simulator(vulnerabilities=500, cursor_style="opaque")`, started on loopback;
    `clock=` runs its rate windows and token lifetimes on another clock (a virtual one).

    Every simulator started through it is closed when the test ends.
    """
    started: list[Simulator] = []

    async def start(clock: Callable[[], float] = time.monotonic, **overrides: Any) -> Simulator:
        sim = Simulator(SimulatorConfig(**overrides), clock=clock)
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.close()
