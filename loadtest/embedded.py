"""`run_point`: one sweep point on the embedded runtime (moto + the real template + the real handlers).

Per point, a fresh world: the simulator (scaled limit and latency, see points.py), moto server behind a
request meter, the template deployed with the point's parameters, the functions' handlers pointed at
the timing shim, every deadline scaled with the point (deadlines.py), and the poller emulating Lambda's
SQS event source mappings. A SyncRequest goes on RequestQueue as the schedule sends it; the run is
followed in the state table until it ends.

A point fails when its run does not succeed or when any invocation outlives its function's timeout (in
Lambda it would have been killed; the embedded runtime kills it too and counts it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
import orjson
from botocore.config import Config

from loadtest.deadlines import apply_deadlines
from loadtest.metering import HARNESS_USER_AGENT, RequestMeter, RssSampler
from loadtest.points import RESOURCES, Point
from loadtest.pricing import billed_gb_seconds, estimate_cost, floor_cost, real_equivalent_cost

_HARNESS = Config(user_agent_extra=HARNESS_USER_AGENT)
_SHIMS = {
    "worker": "loadtest.shim.worker",
    "scheduler": "loadtest.shim.scheduler",
    "finalize": "loadtest.shim.finalize",
}


@dataclass(slots=True)
class PointResult:
    """The measurements of one point (times in seconds at the simulated scale unless named `real`).

    `cost_usd` is real-time equivalent: the worker's and the scheduler's Lambda compute scaled up by the
    point's time scale (their duration is mostly time spent waiting for rate-limit slots, which scales),
    Finalize's as run (CPU and S3, which no scale shrinks), requests as counted;
    `memory_mb` is the MemorySize it was priced at, by function (`worker`, `scheduler`, `finalize`).
    `peak_rss_growth_mb` is the process's peak RSS growth during the run divided by the peak number of
    worker containers: an upper bound per worker (moto's copies of objects and messages are in it).
    """

    point: Point
    status: str
    wall_s: float
    fetch_s: float
    pages: int
    requests: int
    retries: int
    throttled: int
    max_requests_in_60s: int
    invocations: int
    cold_starts: int
    peak_concurrency: int
    worker_ms_median: float
    gb_seconds: float
    aws_requests: dict[str, int]
    cost_usd: float
    peak_rss_growth_mb: float
    unscaled_s: float = 0.0
    memory_mb: dict[str, int] = field(default_factory=dict)
    failure: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def timed_out_invocations(self) -> int:
        """Invocations of any function that outlived its timeout (killed, as in Lambda)."""
        return sum(int(t.get("timed_out") or 0) for t in self.extra.get("timing", {}).values())

    @property
    def failures(self) -> list[str]:
        """Why the point failed: the run did not succeed, an invocation timed out, or what it published
        is not the tenant, record for record in count (empty: passed)."""
        reasons = [] if self.status == "succeeded" else [f"run {self.status}"]
        if self.timed_out_invocations:
            reasons.append(f"{self.timed_out_invocations} timed-out invocation(s)")
        published = self.extra.get("published")
        if published is not None:
            if published.get("records") != self.extra.get("tenant_records"):
                reasons.append(
                    f"published {published.get('records')} records, the tenant holds "
                    f"{self.extra.get('tenant_records')}"
                )
            if published.get("exact") is not True:
                reasons.append("the run is flagged not exact")
        return reasons

    @property
    def passed(self) -> bool:
        return not self.failures

    def timing_real(self, function: str) -> dict[str, float | int | None]:
        """`function`'s ("worker", "scheduler") invocation durations against its timeout in
        real-equivalent seconds (x the time scale): timeout, p50, max; invocations and timed out."""
        timing = self.extra.get("timing", {}).get(function) or {}
        scale = self.point.time_scale

        def real(name: str) -> float | None:
            value = timing.get(name)
            return None if value is None else round(float(value) * scale, 1)

        return {
            "timeout_s": real("timeout_s"),
            "p50_s": real("p50_s"),
            "max_s": real("max_s"),
            "invocations": timing.get("invocations"),
            "timed_out": timing.get("timed_out"),
        }

    @property
    def bound_s(self) -> float:
        return self.point.bound_seconds

    @property
    def ratio(self) -> float:
        """End-to-end time (request sent to run finished) over N / R, as run (at the time scale)."""
        return self.wall_s / self.bound_s

    @property
    def wall_real_s(self) -> float:
        """The run's real-equivalent duration: the stretches with Vanta requests going on are scaled up;
        those without any (`unscaled_s`: before the first request, between planning and the workers'
        first request, after the last request) take the same seconds at any scale and count once."""
        scaled = max(0.0, self.wall_s - self.unscaled_s)
        return scaled * self.point.time_scale + self.unscaled_s

    @property
    def ratio_real(self) -> float:
        """Real-equivalent end-to-end time over N / R (see `wall_real_s`)."""
        return self.wall_real_s / (self.bound_s * self.point.time_scale)

    @property
    def fetch_ratio(self) -> float:
        """First to last Vanta request over the bound for the requests made (the fetch phase alone)."""
        bound = self.requests / self.point.simulated_rate * 60.0
        return self.fetch_s / bound if bound else 0.0

    @property
    def pages_per_minute_real(self) -> float:
        """Pages a minute, at real-world scale, over the whole run (real-equivalent duration)."""
        return self.pages / self.wall_real_s * 60.0 if self.wall_s else 0.0

    @property
    def cost_per_1000_pages(self) -> float:
        return self.cost_usd / self.pages * 1000 if self.pages else 0.0

    @property
    def cost_over_floor(self) -> float:
        """The sync's cost over the floor's for the same tenant and limit (`pricing.floor_cost`)."""
        return self.cost_usd / floor_cost(self.point.minimum_pages, self.point.rate_limit)

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0


def run_point(
    point: Point, *, timeout: float = 900.0, worker_memory_mb: int | None = None, runs: int = 1
) -> PointResult:
    """Run `point` end to end and measure it; never raises for a failed run (status says so). With
    `runs` > 1 the same sync runs that many times on one stack and only the last is measured (a
    later run of a scope plans from what the earlier ones left, such as cursor checkpoints).

    Raises RuntimeError only when the world cannot start (simulator, moto, template, handlers).
    """
    from vanta_vuln_sync.local.world import World
    from vanta_vuln_sync.simulator import SimulatorConfig

    meter = RequestMeter()
    world = World(
        SimulatorConfig(
            seed=point.seed,
            vulnerabilities=point.vulnerabilities,
            cursor_style=point.cursor_style,
            rate_limit_per_minute=point.simulated_rate,
            latency_seconds=point.simulated_latency,
            latency_jitter=point.simulated_latency / 4,
        ),
        middlewares=[meter.wrap],
        simulator_start_timeout=300.0,
    )
    with world:
        assert world.moto is not None
        world.moto.reset()  # moto's backends are global to the process: start every point empty
        stack = world.deploy(
            {
                "VantaRateLimitPerMinute": point.fleet_limit,
                # AWS's MaximumConcurrency starts at 2: one worker is reserved concurrency 1 (below).
                "WorkerMaxConcurrency": max(2, point.concurrency),
                "RangesInFlight": point.ranges_in_flight,
                "PageBudget": point.page_budget,
                "LogLevel": "ERROR",
            }
        )
        lambda_client = world.client("lambda")
        memory: dict[str, int] = {}
        for function in stack.function_names:
            role = next((r for r in _SHIMS if function.endswith(f"-{r}")), "scheduler")
            lambda_client.update_function_configuration(FunctionName=function, Handler=_SHIMS[role])
            configured = int(lambda_client.get_function_configuration(FunctionName=function)["MemorySize"])
            # Finalize has its own memory (FinalizeMemorySize); the override prices the range work.
            memory[role] = configured if role == "finalize" else worker_memory_mb or configured
            if role == "worker" and point.concurrency == 1:
                lambda_client.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=1)
        apply_deadlines(lambda_client, world.client("sqs"), stack.outputs, point.deadlines)
        # None: a failed batch comes back after its queue's (scaled) visibility timeout, as in AWS.
        poller = world.start_poller(
            failed_visibility_timeout=None,
            idle_wait_seconds=point.deadlines.poller_idle_wait,
            time_scale=point.time_scale,  # the batching window scales like the deadlines
        )
        # Only now: the shim imports the handlers, whose Powertools objects read the environment the
        # poller has just applied (as in Lambda, where it is set before the import).
        from loadtest import shim

        for _ in range(runs - 1):
            _sync(stack.outputs, time.monotonic() + timeout)
        earlier, _ = _simulator_view(world.simulator)
        shim.take_durations()
        shim.take_spans()
        shim.take_finalize_seconds()
        rss = RssSampler()
        rss.start()
        meter.reset()
        started = time.monotonic()
        run, timed_out = _sync(stack.outputs, started + timeout)
        wall = time.monotonic() - started
        rss_growth = rss.stop()
        world.stop_poller()
        poller_stats = poller.stats()
        aws_requests = meter.snapshot()
        published = _published(world.client("s3"), stack.outputs["DataBucketName"], run)
        counters, accepted = _simulator_view(world.simulator)
        if runs > 1:
            # Only the measured run's requests (the 60 s maximum may still span the earlier run's end).
            counters = {
                k: v - earlier.get(k, 0) if isinstance(v, int) and k != "max_requests_in_60s" else v
                for k, v in counters.items()
            }
            accepted = [t for t in accepted if t >= started]
    from loadtest import shim

    durations = shim.take_durations()
    first, last = (accepted[0], accepted[-1]) if accepted else (0.0, 0.0)
    scheduler_spans = shim.take_spans().get("scheduler", [])
    unscaled = _unscaled_seconds(accepted, scheduler_spans, started, started + wall)
    # Vanta requests until the last scheduler invocation ended: planning's share of the scheduler's
    # timeout (a first try that missed its deadline is in it too).
    planned_by = max((end for _, end in scheduler_spans), default=None)
    planning_requests = sum(1 for t in accepted if planned_by is not None and t <= planned_by)
    gb_by_role = {role: billed_gb_seconds(durations.get(role, []), memory.get(role, 512)) for role in _SHIMS}
    gb_seconds = sum(gb_by_role.values())
    invocations = sum(len(values) for values in durations.values())
    cost = estimate_cost(gb_seconds=gb_seconds, invocations=invocations, requests=aws_requests)
    worker_stats = next((s for n, s in poller_stats.functions.items() if n.endswith("-worker")), None)
    peak = max(1, worker_stats.peak_concurrency if worker_stats else 1)
    status = "timed out" if timed_out else (run["status"] if run else "not planned")
    return PointResult(
        point=point,
        status=status,
        wall_s=wall,
        fetch_s=max(0.0, last - first),
        pages=int(run.get("pages", 0)) if run else 0,
        requests=int(counters["requests"]),
        retries=int(run.get("retries", 0)) if run else 0,
        throttled=int(counters["throttled"]),
        max_requests_in_60s=int(counters["max_requests_in_60s"]),
        invocations=invocations,
        cold_starts=worker_stats.cold_starts if worker_stats else 0,
        peak_concurrency=peak,
        worker_ms_median=statistics.median(durations["worker"]) if durations.get("worker") else 0.0,
        gb_seconds=gb_seconds,
        aws_requests=aws_requests,
        cost_usd=real_equivalent_cost(
            cost,
            scaled_gb_seconds=gb_by_role["worker"] + gb_by_role["scheduler"],
            time_scale=point.time_scale,
        ),
        # Upper bound: the growth also holds moto's copies of the S3 objects and queue messages.
        peak_rss_growth_mb=rss_growth / peak / 2**20,
        unscaled_s=unscaled,
        memory_mb=memory,
        failure=(run or {}).get("failure") or (worker_stats.last_error if worker_stats else None),
        extra={
            "cost_by_service_at_scale": _cost_parts(cost),
            "ranges": (run or {}).get("ranges"),
            "ranges_done": (run or {}).get("ranges_done"),
            "ranges_open": (run or {}).get("ranges_open"),
            "records": (run or {}).get("records"),
            # What the run published (its manifest) against what the tenant holds: every load-test
            # tenant stands still, so a run that is exact holds every record once (PointResult.failures).
            "published": published,
            "tenant_records": dict(point.records),
            # Where the time went: send -> first Vanta request (planning starts), last request -> done.
            "first_request_after_s": round(first - started, 3) if first else None,
            "planning_requests": planning_requests,
            # Finalize is CPU-bound: its time does not shrink with the scale, its (scaled) timeout does.
            "finalize_invocations_s": [round(s, 3) for s in shim.take_finalize_seconds()],
            "after_last_request_s": round(started + wall - last, 3) if last else None,
            "simulator": counters,
            "last_errors": {n: s.last_error for n, s in poller_stats.functions.items() if s.last_error},
            # Invocation durations against the function timeout (p50, max) and how many timed out, in
            # seconds as run (x time_scale for real-equivalent; PointResult.timing_real).
            "timing": {n.rsplit("-", 1)[-1]: s.timing() for n, s in poller_stats.functions.items()},
            "deadlines": dataclasses.asdict(point.deadlines),
        },
    )


def _published(s3: Any, bucket: str, run: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's manifest: the records it published per resource and whether it says it is exact
    (None: no run succeeded)."""
    if run is None or run.get("status") != "succeeded":
        return None
    from vanta_vuln_sync.store.storage import manifest_key

    body = s3.get_object(Bucket=bucket, Key=manifest_key(run["run_id"]))["Body"].read()
    manifest = orjson.loads(body)
    return {"records": manifest.get("records"), "exact": manifest.get("exact")}


def _cost_parts(cost: Any) -> dict[str, float]:
    return {
        name: round(getattr(cost, name), 8)
        for name in ("lambda_compute", "lambda_requests", "sqs", "dynamodb", "s3", "secrets")
    }


def _sync(outputs: dict[str, str], deadline: float) -> tuple[dict[str, Any] | None, bool]:
    """Send the full SyncRequest and wait for its run to succeed or fail; (run summary, timed out)."""
    from vanta_vuln_sync.ops.runs import candidate_run_ids

    sqs = boto3.client("sqs", config=_HARNESS)
    ddb = boto3.client("dynamodb", config=_HARNESS)
    body = {"v": 1, "type": "SyncRequest", "resources": list(RESOURCES), "mode": "full", "reason": "loadtest"}
    before = time.time()
    message_id = sqs.send_message(
        QueueUrl=outputs["RequestQueueUrl"], MessageBody=orjson.dumps(body).decode()
    )["MessageId"]
    candidates = candidate_run_ids(message_id, before, time.time())
    return asyncio.run(_follow(outputs["StateTableName"], candidates, deadline, ddb))


async def _follow(
    table: str, candidates: list[str], deadline: float, ddb: Any
) -> tuple[dict[str, Any] | None, bool]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    from vanta_vuln_sync.ops.runs import find_run
    from vanta_vuln_sync.store.state import FAILED, SUCCEEDED, RunStore

    del ddb
    session = get_session()
    config = AioConfig(user_agent_extra=HARNESS_USER_AGENT)
    async with session.create_client("dynamodb", config=config) as client:
        store = RunStore(client, table)
        run = None
        timed_out = False
        while True:
            run = await find_run(store, candidates) if run is None else await store.get_run(run.run_id)
            if run is not None and run.status in (SUCCEEDED, FAILED):
                break
            if time.monotonic() >= deadline:
                timed_out = True
                break
            await asyncio.sleep(0.25)
        if run is None:
            return None, timed_out
        ranges = await store.list_ranges(run.run_id)
    return _summary(run, ranges), timed_out


def _summary(run: Any, ranges: list[Any]) -> dict[str, Any]:
    """The run's totals: its own row plus the sum over its ranges (which carry the page counters)."""

    def total(name: str) -> int:
        return sum(int(getattr(r, name, 0) or 0) for r in ranges)

    return {
        "run_id": run.run_id,
        "status": run.status,
        "pages": total("pages"),
        "records": total("records"),
        "requests": total("requests") + int(getattr(run, "requests", 0) or 0),
        "retries": total("retries"),
        "throttled": total("throttled"),
        "ranges": run.ranges_total,
        "ranges_done": run.ranges_done,
        "ranges_open": sorted(
            f"{r.resource}/{r.shard}" for r in ranges if getattr(r, "status", "") != "done"
        ),
        "failure": run.failure,
    }


def _simulator_view(simulator: Any) -> tuple[dict[str, Any], list[float]]:
    """The simulator's counters, and the monotonic times of its accepted API requests (the simulator
    runs in this process on `time.monotonic`, the harness's clock too)."""
    counters = simulator.counters()

    async def times() -> list[float]:
        return [float(t) for t in simulator.simulator.counters.accepted_at]

    return counters, asyncio.run_coroutine_threadsafe(times(), simulator._loop).result(5.0)


def _unscaled_seconds(
    accepted: list[float], scheduler_spans: list[tuple[float, float]], started: float, ended: float
) -> float:
    """The run's stretches with no Vanta request going on, which a time scale does not shorten: from
    the trigger to the first request, from the last planning request to the workers' first, and from
    the last request to the run's end (AWS calls, cold starts, the poller, Finalize's computation)."""
    if not accepted:
        return ended - started
    total = (accepted[0] - started) + (ended - accepted[-1])
    if scheduler_spans:
        planned = min(end for _, end in scheduler_spans)
        before = [t for t in accepted if t <= planned]
        after = [t for t in accepted if t > planned]
        if before and after:
            total += after[0] - before[-1]
    return max(0.0, total)
