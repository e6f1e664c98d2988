"""When churn happens: every K-th list request, and bursts now or after N more list requests.

The schedule only decides; `Simulator` applies what it returns to the dataset (before answering the
list request that triggered it). Positions and the resource of each event come from one seeded
`random.Random`, so the same requests in the same order give the same tenant.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from vanta_vuln_sync.simulator.config import CHURNABLE, SimulatorConfig, SimulatorConfigError

# `POST /_sim/churn` keys that set the periodic mode, and the config fields they set.
SETTING_FIELDS = {
    "every": "churn_every",
    "delete": "churn_delete",
    "insert": "churn_insert",
    "resources": "churn_resources",
    "seed": "churn_seed",
}
BURST_FIELDS = frozenset({"delete", "insert", "after_requests", "resource"})


@dataclass(frozen=True, slots=True)
class PlannedChurn:
    """One churn event to apply: on `resource`, or on one of the config's `churn_resources` if None."""

    delete: int
    insert: int
    resource: str | None = None


@dataclass(frozen=True, slots=True)
class PendingBurst:
    planned: PlannedChurn
    due_at: int  # the list request (counted from the simulator's start) it is applied before


@dataclass(frozen=True, slots=True)
class ChurnRequest:
    """A parsed `POST /_sim/churn` body."""

    changes: dict[str, Any]
    reset_truth: bool
    burst: PlannedChurn | None
    after_requests: int


def churn_seed(config: SimulatorConfig) -> int:
    """The seed of churn positions: `churn_seed`, or one derived from the data seed."""
    return config.churn_seed if config.churn_seed is not None else config.seed * 7_919 + 0xC4


class ChurnSchedule:
    """Counts list requests and says which churn events are due before each is answered."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.rng = random.Random(churn_seed(config))
        self.list_requests = 0  # counted list requests since the simulator started
        self.since_every_set = 0  # counted list requests since `churn_every` was last set
        self.pending: list[PendingBurst] = []
        self.events = 0
        self.deleted = 0
        self.inserted = 0

    def reconfigured(self, old: SimulatorConfig, new: SimulatorConfig) -> None:
        """Follow a config change: a new `churn_every` counts afresh, a new `churn_seed` reseeds."""
        if new.churn_every != old.churn_every:
            self.since_every_set = 0
        if new.churn_seed != old.churn_seed:
            self.rng = random.Random(churn_seed(new))

    def schedule(self, planned: PlannedChurn, after_requests: int) -> None:
        """Apply `planned` once `after_requests` more list requests have been answered (> 0)."""
        self.pending.append(PendingBurst(planned, self.list_requests + after_requests + 1))

    def on_list_request(self, config: SimulatorConfig) -> list[PlannedChurn]:
        """Count one list request; returns the churn events due before it is answered (bursts first)."""
        self.list_requests += 1
        self.since_every_set += 1
        due = [burst.planned for burst in self.pending if burst.due_at <= self.list_requests]
        self.pending = [burst for burst in self.pending if burst.due_at > self.list_requests]
        if config.churn_every and self.since_every_set % config.churn_every == 0:
            due.append(PlannedChurn(config.churn_delete, config.churn_insert))
        return due

    def status(self, config: SimulatorConfig) -> dict[str, Any]:
        """The settings and what churn has done so far, JSON-ready."""
        return {
            "every": config.churn_every,
            "delete": config.churn_delete,
            "insert": config.churn_insert,
            "resources": list(config.churn_resources),
            "seed": config.churn_seed,
            "list_requests": self.list_requests,
            "events": self.events,
            "deleted": self.deleted,
            "inserted": self.inserted,
            "pending_bursts": [
                {
                    "delete": burst.planned.delete,
                    "insert": burst.planned.insert,
                    "resource": burst.planned.resource,
                    "after_requests": burst.due_at - self.list_requests - 1,
                }
                for burst in self.pending
            ],
        }


def checked_burst(delete: Any, insert: Any, after_requests: Any, resource: Any) -> PlannedChurn:
    """A burst's values checked; raises SimulatorConfigError naming the bad one."""
    for name, value in (("delete", delete), ("insert", insert), ("after_requests", after_requests)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SimulatorConfigError(f"burst {name} must be an integer >= 0, got {value!r}")
    if resource is not None and resource not in CHURNABLE:
        raise SimulatorConfigError(f"burst resource must be one of {', '.join(CHURNABLE)} or null")
    return PlannedChurn(delete, insert, resource)


def parse_churn_request(body: Any) -> ChurnRequest:
    """A `POST /_sim/churn` body: any of `every`, `delete`, `insert`, `resources`, `seed` (the periodic
    mode), `reset_truth` (bool), `burst` (`{"delete", "insert", "after_requests", "resource"}`).

    Raises SimulatorConfigError for anything else or a malformed value."""
    if not isinstance(body, dict):
        raise SimulatorConfigError("the body must be a JSON object")
    unknown = sorted(set(body) - set(SETTING_FIELDS) - {"reset_truth", "burst"})
    if unknown:
        raise SimulatorConfigError(f"unknown churn keys {', '.join(unknown)}")
    changes = {SETTING_FIELDS[name]: value for name, value in body.items() if name in SETTING_FIELDS}
    reset_truth = body.get("reset_truth", False)
    if not isinstance(reset_truth, bool):
        raise SimulatorConfigError("reset_truth must be true or false")
    burst, after = None, 0
    if "burst" in body:
        raw = body["burst"]
        if not isinstance(raw, dict) or set(raw) - BURST_FIELDS:
            raise SimulatorConfigError(f"burst must be an object with {', '.join(sorted(BURST_FIELDS))}")
        after = raw.get("after_requests", 0)
        burst = checked_burst(raw.get("delete", 0), raw.get("insert", 0), after, raw.get("resource"))
    return ChurnRequest(changes, reset_truth, burst, after)
