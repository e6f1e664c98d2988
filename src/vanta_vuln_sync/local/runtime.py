"""`run_local`: the whole system on this machine, as `vuln-sync local` and `nox -s demo` run it.

Starts the Vanta simulator (or uses the real Vanta), moto server with the real template deployed, and
the SQS poller emulation running the real handlers; enqueues a full sync as the schedule would; follows
the run in the state table until it succeeds or fails; copies its outputs to a folder.

Nothing here imports the handlers, `container` or the pipeline's logging modules at import time: as in
Lambda, they are imported after the function's environment is set (log level, service name, tracing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3
from rich.console import Console

from vanta_vuln_sync.local.embedded_aws import EmbeddedAws, EmbeddedStack
from vanta_vuln_sync.local.follow import DLQ_NAMES, Watch, follow_run
from vanta_vuln_sync.local.poller import FunctionStats, Poller
from vanta_vuln_sync.local.progress import ProgressView, Snapshot, make_view, summary_table
from vanta_vuln_sync.local.simulator_thread import SimulatorThread
from vanta_vuln_sync.local.world import VantaTarget, World
from vanta_vuln_sync.ops.outputs import copy_run_outputs, peek_dlq
from vanta_vuln_sync.ops.runs import RunProgress, candidate_run_ids
from vanta_vuln_sync.settings import VantaSettings
from vanta_vuln_sync.simulator import SimulatorConfig
from vanta_vuln_sync.store.state import FAILED, SUCCEEDED

FULL_SYNC_REQUEST = {
    "v": 1,
    "type": "SyncRequest",
    "resources": ["vulnerabilities", "vulnerability-remediations", "vulnerable-assets"],
    "mode": "full",
    "reason": "local",
}
# The template caps VantaRateLimitPerMinute at this; a simulator without a limit gets it.
_TEMPLATE_MAX_RATE = 1000


class LocalRunError(RuntimeError):
    """The local runtime could not start (simulator, moto, template); the message says which and why."""


@dataclass(frozen=True, slots=True)
class LocalOptions:
    """How to run: `vanta` set means the real API (with its credentials), else `simulator`."""

    out: Path = Path("out")
    workers: int | None = None
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    vanta: VantaSettings | None = None
    timeout: float = 3600.0
    progress: str = "auto"
    failed_visibility_timeout: int | None = 10
    stream: IO[str] | None = None
    # Deploy the worker with this Timeout instead of the template's (to see what a timeout costs).
    worker_timeout: int | None = None


@dataclass(frozen=True, slots=True)
class LocalResult:
    """How the run ended, and where its outputs are."""

    succeeded: bool
    status: str
    run_id: str | None
    failure: str | None
    seconds: float
    out: Path
    report: Path | None
    stats: dict[str, Any] | None
    progress: RunProgress | None
    dlq: dict[str, list[str]]
    simulator: dict[str, Any] | None
    errors: dict[str, str] = field(default_factory=dict)  # function name -> its last failure
    # Per function: invocations, timed-out invocations, durations (p50/max) against the timeout.
    functions: dict[str, FunctionStats] = field(default_factory=dict)

    @property
    def timed_out(self) -> int:
        """Invocations that ran past their function's timeout (killed, as Lambda kills them)."""
        return sum(stats.timed_out for stats in self.functions.values())

    def timeout_warnings(self) -> list[str]:
        """One sentence per function whose invocations ran past their timeout (empty when none)."""
        warnings = []
        for name, stats in sorted(self.functions.items()):
            if not stats.timed_out:
                continue
            one = stats.timed_out == 1
            warnings.append(
                f"{stats.timed_out} {_role(name)} invocation{'' if one else 's'} ran past "
                f"{'its' if one else 'their'} {stats.timeout_seconds} s timeout: in AWS "
                f"{'it' if one else 'they'} would have been killed, and here "
                f"{'it was' if one else 'they were'} too: AWS writes after the deadline were refused, "
                "and the batch comes back only after the queue's visibility timeout"
            )
        return warnings


@dataclass(slots=True)
class LocalStack:
    """The embedded system, running (`world`: moto with the stack deployed, the poller running the
    handlers, the simulator unless the real Vanta is used). `stop()` ends them all."""

    world: World
    rate_limit: int

    @property
    def stack(self) -> EmbeddedStack:
        return self.world.stack

    @property
    def poller(self) -> Poller:
        return self.world.poller

    @property
    def simulator(self) -> SimulatorThread | None:
        return self.world.simulator

    @property
    def embedded(self) -> EmbeddedAws:
        assert self.world.embedded is not None, "the world has stopped"
        return self.world.embedded

    def stop_poller(self) -> None:
        """Stop polling and end the containers (once; `stop()` skips it afterwards)."""
        self.world.stop_poller()

    def stop(self) -> None:
        """Stop the poller, the simulator and moto (its data is gone with it)."""
        self.world.stop()


def start_local_stack(
    options: LocalOptions, view: ProgressView, console: Console, started: float
) -> LocalStack:
    """Start the simulator (unless `options.vanta`), moto with the template deployed, and the poller.
    Raises LocalRunError (having stopped whatever it had started) when any of them cannot start."""
    if options.vanta is None:
        world = World(options.simulator)
        rate_limit = options.simulator.rate_limit_per_minute or _TEMPLATE_MAX_RATE
    else:
        vanta = options.vanta
        if not (vanta.client_id and vanta.client_secret):
            raise LocalRunError("VANTA_CLIENT_ID and VANTA_CLIENT_SECRET must both be set for the real API")
        world = World(vanta=VantaTarget(vanta.base_url, vanta.auth_url, vanta.client_id, vanta.client_secret))
        rate_limit = vanta.rate_limit_per_minute
    try:
        try:
            world.start()
        except Exception as exc:
            raise LocalRunError(f"the Vanta simulator or the embedded AWS did not start: {exc}") from exc
        view.show(Snapshot(elapsed=time.monotonic() - started, phase="deploying template.yaml into moto"))
        parameters: dict[str, str | int] = {
            "VantaRateLimitPerMinute": min(rate_limit, _TEMPLATE_MAX_RATE),
            "LogLevel": "WARNING",
        }
        if options.workers is not None:
            parameters["WorkerMaxConcurrency"] = options.workers
        try:
            stack = world.deploy(parameters)
        except Exception as exc:
            raise LocalRunError(str(exc)) from exc
        if stack.skipped:
            console.print(stack.skipped_summary(), markup=False, highlight=False, soft_wrap=True)
        if options.worker_timeout is not None:
            world.set_worker_timeout(options.worker_timeout)
        try:
            world.start_poller(failed_visibility_timeout=options.failed_visibility_timeout)
        except Exception as exc:
            raise LocalRunError(f"the handlers could not be loaded: {exc}") from exc
    except BaseException:
        world.stop()
        raise
    return LocalStack(world, rate_limit)


def run_local(options: LocalOptions) -> LocalResult:
    """Run one full sync end to end on this machine; see the module doc. Raises LocalRunError when the
    runtime cannot start; a run that starts and fails is a result with `succeeded=False`."""
    started = time.monotonic()
    view, console = make_view(options.stream, style=options.progress)
    running: LocalStack | None = None
    try:
        view.show(Snapshot(elapsed=0.0, phase="starting"))
        running = start_local_stack(options, view, console, started)
        stack, poller, simulator = running.stack, running.poller, running.simulator
        try:
            try:
                watch = asyncio.run(
                    follow_run(
                        stack,
                        lambda: enqueue_sync(running.world, FULL_SYNC_REQUEST),
                        poller,
                        simulator,
                        view,
                        options.timeout,
                        started,
                        running.rate_limit,
                    )
                )
            except Exception as exc:
                # A bug or an outage of the embedded AWS, not a failed run: say what broke, briefly.
                raise LocalRunError(f"following the run in the state table failed: {exc!r}") from exc
        finally:
            running.stop_poller()
        functions = poller.stats().functions
        errors = {name: s.last_error for name, s in functions.items() if s.last_error}
        try:
            return _result(watch, stack, simulator, options, started, errors, functions)
        except Exception as exc:
            raise LocalRunError(f"copying the run's outputs to {options.out} failed: {exc!r}") from exc
    finally:
        view.close()
        if running is not None:
            running.stop()


def enqueue_sync(world: World, request: Mapping[str, Any]) -> list[str]:
    """Send `request` (a SyncRequest as JSON) to RequestQueue; returns the run ids the scheduler may
    give it."""
    before = time.time()
    message_id = world.send("RequestQueueUrl", request)
    return candidate_run_ids(message_id, before, time.time())


def _result(
    watch: Watch,
    stack: EmbeddedStack,
    simulator: SimulatorThread | None,
    options: LocalOptions,
    started: float,
    errors: dict[str, str],
    functions: dict[str, FunctionStats],
) -> LocalResult:
    progress = watch.progress
    run = progress.run if progress else None
    s3 = boto3.client("s3")
    bucket = stack.outputs["DataBucketName"]
    report: Path | None = None
    stats: dict[str, Any] | None = None
    if run is not None:
        copied = copy_run_outputs(s3, bucket, run.run_id, options.out)
        report = copied.report
        stats = copied.stats
    dlq = {
        name: peek_dlq(boto3.client("sqs"), stack.outputs[key])
        for name, key in ((name, f"{name}Url") for name in DLQ_NAMES)
        if watch.dlq_depth.get(name)
    }
    succeeded = run is not None and run.status == SUCCEEDED
    if succeeded:
        status, failure = SUCCEEDED, None
    elif run is not None and run.status == FAILED:
        status, failure = FAILED, run.failure or "the run was marked failed"
    elif dlq:
        status = FAILED
        failure = "; ".join(f"{len(items)} message(s) in {name}" for name, items in dlq.items())
    elif watch.stalled and run is not None:
        status = FAILED
        failure = (
            f"stalled: {run.ranges_done} of {run.ranges_total} ranges done but no message is queued or "
            f"running (a range's continuation or the Finalize was lost)"
        )
    elif watch.timed_out:
        status = "timed out"
        failure = f"the run did not finish within {options.timeout:.0f} s"
    else:
        status, failure = FAILED, "the run ended without a status"
    return LocalResult(
        succeeded=succeeded,
        status=status,
        run_id=run.run_id if run else None,
        failure=failure,
        seconds=time.monotonic() - started,
        out=options.out,
        report=report,
        stats=stats,
        progress=progress,
        dlq=dlq,
        simulator=simulator.counters() if simulator is not None else None,
        errors=errors,
        functions=functions,
    )


def _role(function_name: str) -> str:
    """`worker`, `scheduler` or `finalize` from the deployed function's name (`<stack>-worker`), else
    the name."""
    for role in ("worker", "scheduler", "finalize"):
        if function_name.endswith(f"-{role}"):
            return role
    return function_name


def summary_rows(result: LocalResult) -> list[tuple[str, Any]]:
    """The headline figures of a finished local run, for the summary table."""
    rows: list[tuple[str, Any]] = [("run", result.run_id or "(not planned)"), ("status", result.status)]
    rows.append(("duration", f"{result.seconds:.1f} s"))
    stats = result.stats or {}
    vulnerabilities = stats.get("vulnerabilities") or {}
    if vulnerabilities:
        rows.append(
            (
                "vulnerabilities (active / total)",
                f"{vulnerabilities.get('active', 0):,} / {vulnerabilities.get('total', 0):,}",
            )
        )
        by_severity = vulnerabilities.get("by_severity") or {}
        if by_severity:
            rows.append(("active by severity", " · ".join(f"{k} {v:,}" for k, v in by_severity.items())))
        sla = vulnerabilities.get("sla") or {}
        if "overdue" in sla:
            rows.append(("overdue against SLA", sla["overdue"]))
    remediations = stats.get("remediations") or {}
    if remediations:
        rows.append(
            (
                "remediations (on time / late)",
                f"{remediations.get('total', 0):,} "
                f"({remediations.get('on_time', 0):,} / {remediations.get('late', 0):,})",
            )
        )
    assets = stats.get("assets") or {}
    if assets:
        rows.append(("vulnerable assets", assets.get("total", 0)))
    progress = result.progress
    if progress is not None:
        run = progress.run
        rows += [
            ("ranges", f"{run.ranges_done} / {run.ranges_total}"),
            ("pages", progress.pages),
            ("records written", progress.records),
        ]
        rows += [
            ("Vanta requests", progress.requests),
            ("retries", progress.retries),
            ("429s", progress.throttled),
        ]
    for name, function in sorted(result.functions.items()):
        if not function.invocations:
            continue
        p50, longest = function.p50_seconds, function.max_seconds
        took = f" · p50 {p50:.1f} s · max {longest:.1f} s" if p50 is not None and longest is not None else ""
        rows.append(
            (
                f"{_role(name)} invocations",
                f"{function.invocations:,} · {function.timed_out} timed out{took} "
                f"(timeout {function.timeout_seconds} s)",
            )
        )
    if result.simulator is not None:
        rows.append(
            (
                "simulator: requests served (max in any 60 s)",
                f"{result.simulator['requests']:,} ({result.simulator['max_requests_in_60s']:,})",
            )
        )
    return rows


__all__ = [
    "LocalOptions",
    "LocalResult",
    "LocalRunError",
    "LocalStack",
    "enqueue_sync",
    "run_local",
    "start_local_stack",
    "summary_rows",
    "summary_table",
]
