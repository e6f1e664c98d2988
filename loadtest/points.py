"""The sweep's points: what each run sets, in real-world terms, and the time scale it runs at.

A point is stated as it would be against Vanta (a limit of `rate_limit` requests a minute, `latency_s`
per page) and run `time_scale` times faster: the simulator's limit is `rate_limit * time_scale` and its
latency `latency_s / time_scale`, so every rate-bound time shrinks by the same factor and time / bound
is unchanged. What does not shrink (planning, finalize, moto's own
speed) weighs more in a scaled run, so scaled ratios overstate real ones; the full sweep runs the
2,000-page points too. Reported wall times are as measured; "real-equivalent" values multiply by the
scale.

Deadlines scale too (deadlines.py): a point at scale S runs with the functions' timeouts, the queues'
visibility timeouts, the step's hand-off reserve, the request timeout and the retry budget all divided
by S, so it meets the deadlines production meets. The production points (`production_points`) run
unscaled at the template's defaults.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from loadtest.deadlines import Deadlines

CursorStyle = Literal["arrayconnection", "opaque"]
RESOURCES = ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets")
PAGE_SIZE = 100
# The template's VantaRateLimitPerMinute maximum: a scaled limit may not pass it.
MAX_SIMULATED_RATE = 1000


@dataclass(frozen=True, slots=True)
class Point:
    """One configuration of the sweep. `configured_limit` is what the fleet is told (default: the real
    limit); `vulnerabilities` sizes the dataset (remediations = half, assets = a tenth, as generated)."""

    concurrency: int
    latency_s: float
    rate_limit: int = 100
    vulnerabilities: int = 12_000
    cursor_style: CursorStyle = "arrayconnection"
    ranges_in_flight: int = 10
    # In production a range step hands on when its invocation's time runs low (at 100/min and 20 ranges
    # in flight, ~60 pages into a 900 s invocation), and every range of the invocation does so at the
    # same moment. The scaled points keep that (their deadlines scale, deadlines.py) with a budget no
    # range reaches, so the deadline and not the budget ends their steps; the production points use the
    # template's PageBudget.
    page_budget: int = 500
    time_scale: float = 10.0
    configured_limit: int | None = None
    seed: int = 7

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.simulated_rate > MAX_SIMULATED_RATE:
            raise ValueError(
                f"rate_limit x time_scale = {self.simulated_rate} passes the template's maximum "
                f"{MAX_SIMULATED_RATE}; lower the time scale"
            )

    @property
    def name(self) -> str:
        cursor = "ac" if self.cursor_style == "arrayconnection" else "op"
        # The page budget is named only when it is not the sweep's (names of earlier results stay valid).
        budget = "" if self.page_budget == 500 else f"-pb{self.page_budget}"
        return (
            f"c{self.concurrency}-rif{self.ranges_in_flight}-lat{self.latency_s:g}-r{self.rate_limit}"
            f"-v{self.vulnerabilities}-{cursor}-x{self.time_scale:g}{budget}"
        )

    @property
    def simulated_rate(self) -> int:
        return round(self.rate_limit * self.time_scale)

    @property
    def deadlines(self) -> Deadlines:
        """Production's deadlines (template.yaml, settings.py) divided by the time scale."""
        from loadtest.deadlines import production_deadlines

        return production_deadlines().scaled(self.time_scale)

    @property
    def simulated_latency(self) -> float:
        return self.latency_s / self.time_scale

    @property
    def fleet_limit(self) -> int:
        """The limit the fleet is configured with, at the simulated scale."""
        return round((self.configured_limit or self.rate_limit) * self.time_scale)

    @property
    def records(self) -> dict[str, int]:
        """Records per resource, as the simulator generates them for this size."""
        return {
            "vulnerabilities": self.vulnerabilities,
            "vulnerability-remediations": self.vulnerabilities // 2,
            "vulnerable-assets": max(1, self.vulnerabilities // 10),
        }

    @property
    def minimum_pages(self) -> int:
        """The fewest pages any client can read the dataset in: one per 100 records per resource."""
        return sum(math.ceil(count / PAGE_SIZE) for count in self.records.values())

    @property
    def bound_seconds(self) -> float:
        """The physical limit N / R at the simulated scale, in seconds."""
        return self.minimum_pages / self.simulated_rate * 60.0

    def replace(self, **changes: object) -> Point:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def quick_points() -> list[Point]:
    """A few points that finish in about three minutes here: ~200-page syncs at 10x (50/min at 20x)."""
    base = Point(concurrency=5, latency_s=2.0)
    return [
        base.replace(concurrency=2),
        base.replace(cursor_style="opaque"),
        base.replace(concurrency=1, latency_s=0.2, rate_limit=50, time_scale=20.0),
        base.replace(concurrency=10, latency_s=5.0),
    ]


def full_points() -> list[Point]:
    """The grid behind the targets (issue 13: W 2 to 20, limits 50 and 100/min, latency 0.2 to 5 s, both
    cursor styles), and one point along each other dimension. Every point is a >= 2,000-page sync
    (125,000 vulnerabilities: 2,000 pages at the minimum), 100/min at 10x time scale and 50/min at 20x
    (both 1,000 requests a minute as run: `grid_time_scale`); 2.5 to 4.5 minutes a point, about two and
    a half hours in all (`--only` runs a part: `-ac-x10`, `-op-`, `-r50-`). Opaque cursors skip 1 s
    latency (their time is set by the longest shard chain at any latency; see the README)."""
    base = Point(concurrency=5, latency_s=2.0, vulnerabilities=125_000)
    points: list[Point] = []
    for cursor, latencies in (("arrayconnection", (0.2, 1.0, 2.0, 5.0)), ("opaque", (0.2, 2.0, 5.0))):
        for latency in latencies:
            for concurrency in (2, 5, 10, 20):
                points.append(
                    base.replace(
                        concurrency=concurrency,
                        latency_s=latency,
                        cursor_style=cursor,
                        time_scale=grid_time_scale(100),
                    )
                )
    # 50/min, the template's default limit: the fleet's slots twice as far apart.
    for latency in (0.2, 2.0, 5.0):
        for concurrency in (2, 5, 10, 20):
            points.append(
                base.replace(
                    concurrency=concurrency,
                    latency_s=latency,
                    rate_limit=50,
                    time_scale=grid_time_scale(50),
                )
            )
    points.append(base.replace(concurrency=1))
    points.append(base.replace(ranges_in_flight=2))
    # The fleet told 100/min while Vanta allows 50: how the 429 path behaves.
    points.append(base.replace(rate_limit=50, configured_limit=100, time_scale=10.0))
    points += production_points()
    return points


# Requests a minute the grid's points run at (the real limit times the scale): 1,000 keeps a point to a few
# minutes. Fleets of 10 and 20 workers ran at 300 a minute until 2026-11-30: their runs then put 100 to
# 200 ranges in flight in this one process, which starved for CPU at 1,000 a minute (610 a scaled minute,
# timed out). A run at the grid's limits is compact now (run/split.py: at most one container's 50 ranges,
# whatever the fleet's size), and W=20 at 5 s pages and 1,000 a minute kept pace (1.13 x, 0 timed out).
# Every deadline scales with the point either way.
GRID_SIMULATED_RATE = 1000


def grid_time_scale(rate_limit: int) -> float:
    """The time scale of a grid point: the grid's simulated rate over its real limit (see above)."""
    return GRID_SIMULATED_RATE / rate_limit


# 18,750 vulnerabilities: 188 + 94 + 19 = 301 pages at the least.
PRODUCTION_VULNERABILITIES = 18_750


def production_points() -> list[Point]:
    """Unscaled points at production's settings: the template's defaults (its limit, 50/min; its
    WorkerMaxConcurrency, PageBudget and RangesInFlight) on a >= 300-page tenant at 1 s a page, then the
    same with WorkerMaxConcurrency 10 and 20. About 6 minutes of mostly waiting each (301 pages at
    50/min), longer when an invocation times out (its batch comes back after 30 minutes)."""
    from loadtest.deadlines import template_defaults

    defaults = template_defaults()
    base = Point(
        concurrency=int(defaults["WorkerMaxConcurrency"]),
        latency_s=1.0,
        rate_limit=int(defaults["VantaRateLimitPerMinute"]),
        vulnerabilities=PRODUCTION_VULNERABILITIES,
        ranges_in_flight=int(defaults["RangesInFlight"]),
        page_budget=int(defaults["PageBudget"]),
        time_scale=1.0,
    )
    return [base, base.replace(concurrency=10), base.replace(concurrency=20)]
