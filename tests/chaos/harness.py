"""Running one chaos scenario: a full sync of the real template, in moto, under the real handlers and the
SQS poller emulation, against the simulator, with faults injected on both sides; then the checks.

Vanta-side faults are the simulator's own knobs (`SimulatorConfig`, `configure`, `revoke_token`).
AWS-side faults, killed and hung containers come from `vanta_vuln_sync.local.faults`. Duplicated and
redelivered messages: the harness copies a fraction of the messages the pipeline sends (as the injector
saw them applied) back onto their queue, a few seconds later, as a standard queue may deliver them.
"""

from __future__ import annotations

import contextlib
import gc
import random
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from vanta_vuln_sync.local.embedded_aws import MotoServer
from vanta_vuln_sync.local.faults import AppliedCall, AwsFaultInjector, AwsFaults
from vanta_vuln_sync.local.world import WORK_QUEUES, World
from vanta_vuln_sync.simulator import Simulator, SimulatorConfig

from .checks import Verdict, verify
from .proxy import MalformingProxy

FULL_SYNC = orjson.dumps(
    {
        "v": 1,
        "type": "SyncRequest",
        "resources": ["vulnerabilities", "vulnerability-remediations", "vulnerable-assets"],
        "mode": "full",
        "reason": "chaos",
    }
).decode()
# A running run with nothing queued or running anywhere for this long has lost a message.
STALL_SECONDS = 20.0
# Genuine poison, one for each queue: it must end in the DLQ (with its reason), and nothing else may.
POISON = {
    "request": '{"v": 1, "type": "SyncRequest", "resources": ["nope"]}',
    "page": "not json at all",
    "finalize": '{"v": 1, "type": "Finalize"}',
}


@dataclass(frozen=True)
class MidRun:
    """Something done to the simulator `after` seconds into the run (e.g. revoke the token)."""

    after: float
    label: str
    action: Callable[[Simulator], Any]


@dataclass(frozen=True)
class Scenario:
    """One chaos run. `rate_limit` is the pipeline's configured requests/minute (the template's
    VantaRateLimitPerMinute); `sim` the simulator's config (its own limit and fault rates)."""

    name: str
    sim: dict[str, Any] = field(default_factory=dict)
    aws: AwsFaults = field(default_factory=AwsFaults)
    rate_limit: int = 1000
    mid_run: tuple[MidRun, ...] = ()
    duplicate_rate: float = 0.0
    # Fraction of Vanta's 200 replies garbled by a proxy in front of the simulator (proxy.py).
    malformed_rate: float = 0.0
    poison: bool = False
    workers: int = 3
    page_budget: int = 2
    page_size: int = 10
    # Seconds: the worker's function timeout and the Vanta client's request timeout. A killed container
    # is noticed only at its timeout (see faults.py), so scenarios with kills keep it short.
    worker_timeout: int | None = None
    request_timeout: float | None = None
    timeout: float = 150.0


@dataclass
class Outcome:
    """What a scenario did and whether the system kept its promises."""

    scenario: str
    seconds: float
    verdict: Verdict
    sim: dict[str, Any]
    aws: dict[str, int]
    duplicates: int
    poller: dict[str, int]
    # Unraisable exceptions swallowed from killed containers' garbage (see _leftovers_of_killed_containers).
    leftovers: int = 0

    @property
    def passed(self) -> bool:
        return not self.verdict.problems

    def faults(self) -> str:
        """The faults actually injected, for the table."""
        s, a = self.sim, self.aws
        parts = [
            (s.get("errors_injected", 0), "5xx"),
            (s.get("throttled", 0), "429"),
            (s.get("truncated", 0), "truncated"),
            (s.get("malformed", 0), "malformed"),
            (s.get("stalled", 0), "stalls"),
            (s.get("token_errors_injected", 0), "token 5xx"),
            (s.get("unauthorized", 0), "401 (revoked)"),
            (a.get("errors", 0), "AWS 500"),
            (a.get("throttles", 0), "AWS throttled"),
            (a.get("lost_replies", 0), "AWS lost replies"),
            (a.get("crashes", 0), "killed"),
            (a.get("hangs", 0), "hung past timeout"),
            (self.poller.get("timed_out", 0), "timed-out invocations"),
            (self.duplicates, "duplicated messages"),
        ]
        return ", ".join(f"{n} {label}" for n, label in parts if n) or "none"

    def retries(self) -> str:
        return f"{self.verdict.vanta_retries} Vanta, {self.aws.get('sdk_retries', 0)} AWS SDK"

    def result(self) -> str:
        if self.passed:
            return "pass"
        return "FAIL: " + "; ".join(self.verdict.problems)[:300]


class Duplicator:
    """Copies a fraction of the pipeline's applied sends to `queues` (the work queues, not the DLQs)
    back onto their queue after a short delay."""

    def __init__(
        self, injector: AwsFaultInjector, sqs: Any, rate: float, seed: int, queues: set[str]
    ) -> None:
        self._injector, self._sqs, self._rate, self._queues = injector, sqs, rate, queues
        self._rng = random.Random(seed)
        self._seen = 0
        self._pending: list[tuple[float, str, str]] = []
        self.sent = 0

    @property
    def pending(self) -> int:
        """Copies picked but not sent yet."""
        return len(self._pending)

    def tick(self, now: float) -> None:
        """Pick copies among the sends seen since the last tick; send the copies that are due."""
        if not self._rate:
            return
        calls = self._injector.applied[self._seen :]
        self._seen += len(calls)
        for call in calls:
            for url, body in _sent_messages(call):
                # By name: a queue's URL host differs between CloudFormation's outputs and SQS.
                if url.rsplit("/", 1)[-1] in self._queues and self._rng.random() < self._rate:
                    self._pending.append((now + self._rng.uniform(0.0, 4.0), url, body))
        due = [p for p in self._pending if p[0] <= now]
        self._pending = [p for p in self._pending if p[0] > now]
        for _, url, body in due:
            self._sqs.send_message(QueueUrl=url, MessageBody=body)
            self.sent += 1


def _sent_messages(call: AppliedCall) -> list[tuple[str, str]]:
    if call.service != "sqs":
        return []
    if call.operation == "SendMessage":
        return [(call.params["QueueUrl"], call.params["MessageBody"])]
    if call.operation == "SendMessageBatch":
        return [(call.params["QueueUrl"], e["MessageBody"]) for e in call.params.get("Entries", [])]
    return []


class ChaosBench:
    """One moto server shared by the scenarios of a session (each builds its world on it and deploys
    its own stack: the first deploy costs seconds, later ones about one)."""

    def __init__(self) -> None:
        self.moto = MotoServer()

    def start(self) -> None:
        self.moto.start()

    def stop(self) -> None:
        self.moto.stop()

    def run(self, scenario: Scenario) -> Outcome:
        """Deploy, sync under `scenario`'s faults, settle, verify. Leaves os.environ as it found it."""
        kills = bool(scenario.aws.crash_rate or scenario.aws.hang_rate)
        world = World(SimulatorConfig(**scenario.sim), endpoint_url=self.moto.endpoint_url)
        with world, _leftovers_of_killed_containers(kills) as leftovers:
            outcome = self._run(scenario, world)
            gc.collect()
        outcome.leftovers = len(leftovers)
        return outcome

    def _run(self, scenario: Scenario, world: World) -> Outcome:
        proxy = None
        base_url = world.sim.base_url
        if scenario.malformed_rate:
            proxy = MalformingProxy(world.sim.origin, scenario.malformed_rate, seed=world.sim.config.seed)
            base_url = proxy.start() + "/v1"
        try:
            outcome = self._sync(scenario, world, base_url)
        finally:
            if proxy is not None:
                proxy.stop()
        if proxy is not None:
            outcome.sim["malformed"] = proxy.malformed
        return outcome

    def _sync(self, scenario: Scenario, world: World, base_url: str) -> Outcome:
        stack = world.deploy(
            {
                "VantaRateLimitPerMinute": scenario.rate_limit,
                "WorkerMaxConcurrency": scenario.workers,
                "PageBudget": scenario.page_budget,
                "LogLevel": "CRITICAL",
            },
            stack_name=f"chaos-{uuid.uuid4().hex[:8]}",
            base_url=base_url,
        )
        sqs = world.client("sqs")
        if scenario.worker_timeout is not None:
            # A timed-out batch comes back after the visibility timeout, as in AWS (the poller kills the
            # invocation): shortened with the worker's timeout (just above it), so the scenario does not
            # wait out the template's 30 minutes.
            world.set_worker_timeout(scenario.worker_timeout, visibility_timeout=scenario.worker_timeout + 3)
        overrides = {"PAGE_SIZE": str(scenario.page_size)}
        if scenario.request_timeout is not None:
            overrides["VANTA_REQUEST_TIMEOUT"] = str(scenario.request_timeout)
        injector = AwsFaultInjector(scenario.aws)
        work_queues = {stack.outputs[k].rsplit("/", 1)[-1] for k in WORK_QUEUES}
        duplicator = Duplicator(injector, sqs, scenario.duplicate_rate, scenario.aws.seed, work_queues)
        started = time.monotonic()
        with _quiet_stdout(), injector.installed():
            poller = world.start_poller(environment=overrides, failed_visibility_timeout=1)
            try:
                if scenario.poison:
                    world.send("RequestQueueUrl", POISON["request"])
                    world.send("PageQueueUrl", POISON["page"])
                    world.send("FinalizeQueueUrl", POISON["finalize"])
                world.send("RequestQueueUrl", FULL_SYNC)
                ended = _follow(scenario, world, duplicator, started)
                if ended != "stalled":
                    world.settle(timeout=45.0)
                seconds = time.monotonic() - started
                stats = poller.stats()
            finally:
                world.stop_poller()
            # Still installed: a hung container wakes up dead and must not reach AWS or print its crash.
            _bury(injector, scenario.aws.hang_seconds + 10.0)
        assert world.embedded is not None
        verdict = verify(
            stack,
            world.embedded,
            world.sim,
            injector,
            poison=POISON if scenario.poison else {},
            ended=ended,
            errors={name: s.last_error for name, s in stats.functions.items() if s.last_error},
        )
        counts = injector.counts
        assert world.simulator is not None
        return Outcome(
            scenario=scenario.name,
            seconds=seconds,
            verdict=verdict,
            sim=world.simulator.counters(),
            aws={
                "errors": counts.errors,
                "throttles": counts.throttles,
                "lost_replies": counts.lost_replies,
                "crashes": counts.crashes,
                "hangs": counts.hangs,
                "sdk_retries": counts.sdk_retries,
                "calls": counts.calls,
            },
            duplicates=duplicator.sent,
            poller={
                "invocations": stats.invocations,
                "timed_out": sum(f.timed_out for f in stats.functions.values()),
                "failed": stats.failed,
            },
        )


def _follow(scenario: Scenario, world: World, duplicator: Duplicator, started: float) -> str | None:
    """Apply the mid-run actions and the duplicates until the run ends; its status, "stalled" when it
    is running but nothing has been queued or running for `STALL_SECONDS`, or None on timeout."""
    ddb = world.client("dynamodb")
    table = world.stack.outputs["StateTableName"]
    pending = sorted(scenario.mid_run, key=lambda m: m.after)
    deadline = started + scenario.timeout
    idle_since: float | None = None
    while time.monotonic() < deadline:
        now = time.monotonic()
        while pending and now - started >= pending[0].after:
            pending.pop(0).action(world.sim)
        duplicator.tick(now)
        status = _run_status(ddb, table)
        if status in ("succeeded", "failed"):
            # Copies already picked still arrive after the end, as late duplicates would.
            while duplicator.pending:
                time.sleep(0.2)
                duplicator.tick(time.monotonic())
            return status
        if status == "running" and not pending and world.idle():
            idle_since = idle_since or now
            if now - idle_since >= STALL_SECONDS:
                return "stalled"
        else:
            idle_since = None
        time.sleep(0.25)
    return None


def _run_status(ddb: Any, table: str) -> str | None:
    items = ddb.scan(
        TableName=table,
        ConsistentRead=True,
        FilterExpression="sk = :run AND begins_with(pk, :prefix)",
        ExpressionAttributeValues={":run": {"S": "run"}, ":prefix": {"S": "run#"}},
    )["Items"]
    statuses = [i.get("status", {}).get("S") for i in items]
    return statuses[0] if len(statuses) == 1 else ("several runs" if statuses else None)


def _bury(injector: AwsFaultInjector, timeout: float) -> None:
    """Wait for killed containers' threads to end, then collect what they left unclosed.

    A killed Lambda's sockets are reclaimed with its process; an emulated container is a thread whose
    open session and clients are only garbage, so their ResourceWarnings are not findings here.
    """
    deadline = time.monotonic() + timeout
    for thread in injector.killed_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


class _LockedText:
    """A write-only stdout for many threads: Powertools' JSON log lines and EMF blobs are dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lines = 0

    def write(self, text: str) -> int:
        with self._lock:
            self.lines += text.count("\n")
        return len(text)

    def flush(self) -> None:
        return None


@contextlib.contextmanager
def _leftovers_of_killed_containers(enabled: bool) -> Iterator[list[str]]:
    """While a scenario kills containers, swallow (and count) unraisable exceptions.

    A killed container's thread leaves its event loop with the batch's other tasks still pending, and
    its sessions open; when they are collected, closing those coroutines raises ("generator didn't stop
    after athrow()") and the sessions warn. A real kill takes the process with it, so these are
    artifacts of emulating a process with a thread, not findings. Scenarios without kills keep pytest's
    strict handling (unraisable exceptions fail the test).
    """
    swallowed: list[str] = []
    if not enabled:
        yield swallowed
        return
    original = sys.unraisablehook

    def hook(args: Any) -> None:
        swallowed.append(f"{args.exc_type.__name__}: {args.exc_value}")

    sys.unraisablehook = hook
    try:
        yield swallowed
    finally:
        sys.unraisablehook = original


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    with contextlib.redirect_stdout(_LockedText()):  # type: ignore[type-var]
        yield
