"""A Vanta API simulator (aiohttp) with a realistic, seeded tenant, Vanta's limits and injected faults.

`Simulator(SimulatorConfig(...))`, `await sim.start()` / `await sim.close()` (or `async with`), then
`sim.base_url`, `sim.auth_url`, `sim.client_id`, `sim.client_secret`, `sim.dataset`, `sim.counters`.
Churn (records deleted and inserted between list requests): `sim.churn(...)`, `sim.burst(...)`,
`sim.dataset.churn_truth(resource)`.
Run it standalone with `python -m vanta_vuln_sync.simulator --help`.
"""

from __future__ import annotations

from vanta_vuln_sync.simulator.churn import ChurnEvent, ChurnTruth
from vanta_vuln_sync.simulator.config import DEFAULT_NOW, SimulatorConfig, SimulatorConfigError
from vanta_vuln_sync.simulator.counters import SimCounters
from vanta_vuln_sync.simulator.dataset import RESOURCES, Dataset, Evolution, Resource
from vanta_vuln_sync.simulator.server import Simulator

__all__ = [
    "DEFAULT_NOW",
    "RESOURCES",
    "ChurnEvent",
    "ChurnTruth",
    "Dataset",
    "Evolution",
    "Resource",
    "SimCounters",
    "Simulator",
    "SimulatorConfig",
    "SimulatorConfigError",
]
