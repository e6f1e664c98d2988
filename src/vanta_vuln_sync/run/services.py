"""Everything the pipeline's logic needs, built once per event loop and handed in by the caller.

The Lambda container builds it (`container.py`); tests build it from clients pointed at moto server and
the simulator. Nothing here creates a client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from vanta_vuln_sync.aws import AwsClients
from vanta_vuln_sync.run.follow_ups import HandOnGate
from vanta_vuln_sync.settings import Settings
from vanta_vuln_sync.store.state import RunStore
from vanta_vuln_sync.vanta import RecentDurations, VantaClient


@dataclass(frozen=True, slots=True)
class Services:
    """The clients and settings of one event loop.

    `vanta` makes a VantaClient for one range step; every client it makes shares the container's
    aiohttp session, token provider and rate limiter (only the per-step counters are its own), so a
    step's request counts are exact however many ranges run at once.
    """

    settings: Settings
    aws: AwsClients
    store: RunStore
    vanta: Callable[[], VantaClient]
    metrics: Metrics | None = None
    http: aiohttp.ClientSession | None = None  # the session `vanta` clients share (for inspection)
    clock: Callable[[], float] = time.time
    in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(10))
    # How long this container's last step hand-offs took (run/step.py grows the reserve from it)
    handoffs: RecentDurations = field(default_factory=RecentDurations)
    # Continuations this container's steps hand on through the queue, sent together (run/follow_ups.py)
    hand_ons: HandOnGate = field(default_factory=HandOnGate)

    def count(self, name: str, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
        """Add a metric to the invocation's EMF blob (dropped when there is no metrics object)."""
        if self.metrics is not None:
            self.metrics.add_metric(name=name, unit=unit, value=value)
