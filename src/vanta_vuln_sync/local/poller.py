"""An emulation of Lambda's SQS poller, driven by the event source mappings deployed in moto.

For each enabled mapping it reads batches from the queue (up to `BatchSize`, gathering for up to
`MaximumBatchingWindowInSeconds`), builds the event Lambda builds, and invokes the function's handler in
a warm container (`containers.py`), never more than `ScalingConfig.MaximumConcurrency` at once (or the
function's reserved concurrency, or `default_concurrency`, whichever is smallest). Then, as Lambda does:
- the handler returns: the batch succeeded, except the records named in a partial batch response
  (`batchItemFailures`, honoured only with `FunctionResponseTypes: [ReportBatchItemFailures]`);
- the handler raises, or returns a malformed partial response: the whole batch failed;
- the invocation outlives the function's `Timeout`: timed out. At the deadline the container is killed
  (`EmulatedContainer.kill`: its AWS access key revoked, so moto refuses whatever it sends afterwards; its
  loop's tasks cancelled; a fresh cold container, with a fresh key, serves the next batch).
Succeeded records are deleted. Failed ones are left alone: they come back when their visibility timeout
ends, and SQS (moto) moves them to the DLQ on the receive after `maxReceiveCount`.

One deviation, off by default: `failed_visibility_timeout=N` makes the records of a failed invocation
visible again after N seconds instead of the queue's visibility timeout (30 min for PageQueue), so a
local run with failures reaches its retries and its DLQ in seconds rather than hours. The local runtime
turns it on and says so. It never applies to a timed-out invocation: Lambda does not touch that batch,
which comes back only when the queue's visibility timeout ends (the time the timeout really costs).

Counters per function (`stats()`): invocations, outcomes, timed-out invocations and every invocation's
duration (`FunctionStats.p50_seconds`, `max_seconds`, against `timeout_seconds`).

Process-wide environment: every function's `Environment.Variables` are put in `os.environ` before the
handlers are imported. One process has one environment, so where two functions set the same variable
differently the first function's value is kept and a warning names the variable.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session

from vanta_vuln_sync.aws import with_shared_models
from vanta_vuln_sync.local.access_keys import ACCESS_KEYS, install_container_keys
from vanta_vuln_sync.local.containers import (
    ContainerPool,
    ContainerSetup,
    FunctionConfig,
    Invocation,
    LoggedErrorRecorder,
    resolve_handler,
)
from vanta_vuln_sync.local.context import EmulatedContext, sqs_event
from vanta_vuln_sync.local.embedded_aws import detach_moto_sqs_invoker
from vanta_vuln_sync.local.mappings import MappingConfig, apply_environment, discover, failed_message_ids

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)

# SQS returns at most 10 messages a receive and long-polls at most 20 s.
_RECEIVE_MAX = 10
_LONG_POLL_MAX = 20
# How often a batching window shorter than a second looks for more messages.
_SHORT_POLL_SECONDS = 0.05
# Lambda starts five pollers per SQS mapping and scales them; five is plenty for one machine.
_POLLERS_PER_MAPPING = 5


@dataclass(slots=True)
class FunctionStats:
    """What happened to one function so far. `durations` are the finished invocations' seconds (a
    timed-out one: until its deadline was seen, about `timeout_seconds`)."""

    timeout_seconds: int = 0
    invocations: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    records: int = 0
    records_failed: int = 0
    in_flight: int = 0
    cold_starts: int = 0
    peak_concurrency: int = 0
    last_error: str | None = None
    durations: list[float] = field(default_factory=list)

    @property
    def p50_seconds(self) -> float | None:
        """The median duration of the finished invocations (None before the first)."""
        return statistics.median(self.durations) if self.durations else None

    @property
    def max_seconds(self) -> float | None:
        """The longest finished invocation (None before the first)."""
        return max(self.durations) if self.durations else None

    def timing(self) -> dict[str, float | int | None]:
        """Invocation durations against the timeout, for reports: p50, max, timeout, how many ran
        and how many timed out."""
        p50, longest = self.p50_seconds, self.max_seconds
        return {
            "invocations": self.invocations,
            "timed_out": self.timed_out,
            "timeout_s": self.timeout_seconds,
            "p50_s": round(p50, 3) if p50 is not None else None,
            "max_s": round(longest, 3) if longest is not None else None,
        }


@dataclass(frozen=True, slots=True)
class PollerStats:
    """A snapshot for progress displays: per function, and totals."""

    functions: dict[str, FunctionStats] = field(default_factory=dict)

    @property
    def invocations(self) -> int:
        return sum(f.invocations for f in self.functions.values())

    @property
    def in_flight(self) -> int:
        return sum(f.in_flight for f in self.functions.values())

    @property
    def failed(self) -> int:
        return sum(f.failed + f.timed_out for f in self.functions.values())

    @property
    def timed_out(self) -> int:
        return sum(f.timed_out for f in self.functions.values())


class _MappingRunner:
    """The pollers of one mapping and the concurrency slots they share."""

    def __init__(self, mapping: MappingConfig, function: FunctionConfig, limit: int) -> None:
        self.mapping = mapping
        self.function = function
        self.limit = limit
        self.slots = threading.BoundedSemaphore(limit)


class Poller:
    """Runs the deployed functions off their queues until stopped. Use as a context manager, or
    `start()` / `stop()`; `run_until(predicate, timeout)` waits for an outcome while it runs."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        default_concurrency: int = 10,
        environment_overrides: Mapping[str, str] | None = None,
        container_teardown: Callable[[], None] | None = None,
        container_setup: ContainerSetup | None = None,
        only_functions: Collection[str] | None = None,
        failed_visibility_timeout: int | None = None,
        idle_wait_seconds: int = 1,
        configured: tuple[list[MappingConfig], dict[str, FunctionConfig]] | None = None,
        time_scale: float = 1.0,
    ) -> None:
        """`default_concurrency` caps a mapping without `MaximumConcurrency`; `container_teardown` runs
        in each container thread as it ends (to close the handler's per-container clients);
        `container_setup` runs in each container thread before its first invocation and returns the
        event loop the handler will run on (so a timed-out invocation's tasks can be cancelled);
        `only_functions` limits the poller to those function names (moto may hold other stacks);
        `failed_visibility_timeout` see the module doc; `configured`: the mappings and functions to run,
        given instead of read from moto's Lambda API (tests whose queues and table are made by hand);
        `time_scale`: a load test's, by which the mappings' batching windows are divided like its other
        deadlines (a window of 1 s, left whole, cost a 10 x point's every hand-off 10 real seconds)."""
        self._endpoint_url = endpoint_url
        self._region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self._default_concurrency = default_concurrency
        self._overrides = dict(environment_overrides or {})
        self._teardown = container_teardown
        self._setup = container_setup
        self._idle_wait = idle_wait_seconds
        self._only = set(only_functions) if only_functions is not None else None
        self._failed_visibility = failed_visibility_timeout
        self._configured = configured
        self._time_scale = time_scale
        self._recorder = LoggedErrorRecorder()
        self._recorder_loggers: list[logging.Logger] = []
        self._stop = threading.Event()
        self._polling_over = threading.Event()  # every poller thread has ended: no new invocation
        self._watchdog: threading.Thread | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._active: set[Invocation] = set()
        self._pools: dict[str, ContainerPool] = {}
        self._runners: list[_MappingRunner] = []
        self._stats: dict[str, FunctionStats] = {}
        self._sqs: SQSClient | None = None
        self.mappings: list[MappingConfig] = []
        self.functions: dict[str, FunctionConfig] = {}

    def __enter__(self) -> Poller:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Discover the mappings, set the environment, import the handlers and start polling.

        Raises HandlerImportError when a function's handler cannot be imported.
        """
        session = boto3.session.Session(
            region_name=self._region, botocore_session=with_shared_models(botocore.session.get_session())
        )
        self._sqs = session.client("sqs", endpoint_url=self._endpoint_url)
        lambda_client = session.client("lambda", endpoint_url=self._endpoint_url)
        mappings, functions = self._configured or discover(lambda_client, self._sqs, self._only)
        mappings = [
            replace(m, batching_window_seconds=m.batching_window_seconds / self._time_scale) for m in mappings
        ]
        self.mappings, self.functions = mappings, functions
        # moto would otherwise "invoke" the mapped functions itself (in Docker) on every SendMessage.
        detach_moto_sqs_invoker()
        install_container_keys()
        if not ACCESS_KEYS.guarded:
            logger.warning(
                "no embedded moto server guards this process: the AWS writes of a timed-out invocation "
                "cannot be refused (start moto with embedded_aws.MotoServer)"
            )
        apply_environment(self.functions.values(), self._overrides)
        for function in self.functions.values():
            self._pools[function.name] = ContainerPool(
                function, resolve_handler(function.handler), self._teardown, self._setup
            )
            self._stats[function.name] = FunctionStats(timeout_seconds=function.timeout_seconds)
        # Where the handlers' loggers send records: the root, and Powertools' service logger (which
        # does not propagate). Only after the handlers are imported: Powertools takes a logger that
        # already has a handler for one it configured itself, and would skip setting it up.
        service = os.environ.get("POWERTOOLS_SERVICE_NAME")
        self._recorder_loggers = [logging.getLogger()] + ([logging.getLogger(service)] if service else [])
        for target in self._recorder_loggers:
            target.addHandler(self._recorder)
        for mapping in self.mappings:
            if not mapping.enabled:
                continue
            function = self.functions[mapping.function_name]
            limits = [mapping.maximum_concurrency or self._default_concurrency]
            if function.reserved_concurrency is not None:
                limits.append(function.reserved_concurrency)
            runner = _MappingRunner(mapping, function, max(1, min(limits)))
            self._runners.append(runner)
            for number in range(min(_POLLERS_PER_MAPPING, runner.limit)):
                self._spawn(self._poll, runner, name=f"poller:{mapping.queue_name}#{number + 1}")
        self._watchdog = threading.Thread(target=self._watch_deadlines, name="poller:watchdog", daemon=True)
        self._watchdog.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling, let running invocations finish (up to `timeout` s), end the containers."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        # Only now may the watchdog end (once nothing runs): a poller thread that had just received a
        # batch when stop() began still invokes it, and that invocation still has a deadline.
        self._polling_over.set()
        while self._active and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._watchdog is not None:
            self._watchdog.join(max(0.0, deadline - time.monotonic()))
        for pool in self._pools.values():
            pool.close(max(0.0, deadline - time.monotonic()))
        for target in self._recorder_loggers:
            target.removeHandler(self._recorder)
        if self._sqs is not None:
            self._sqs.close()

    def run_until(self, predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
        """Wait until `predicate()` is true (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    def stats(self) -> PollerStats:
        """A consistent snapshot of the per-function counters."""
        with self._lock:
            snapshot = {}
            for name, stats in self._stats.items():
                pool = self._pools[name]
                snapshot[name] = replace(
                    stats,
                    cold_starts=pool.cold_starts,
                    peak_concurrency=pool.peak_busy,
                    durations=list(stats.durations),
                )
        return PollerStats(snapshot)

    def _spawn(self, target: Callable[..., None], *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _poll(self, runner: _MappingRunner) -> None:
        while not self._stop.is_set():
            if not runner.slots.acquire(timeout=0.2):
                continue
            try:
                messages = self._receive_batch(runner.mapping)
            except Exception as exc:
                runner.slots.release()
                if not self._stop.is_set():
                    logger.warning("receiving from %s failed: %s", runner.mapping.queue_name, exc)
                    self._stop.wait(1.0)
                continue
            if not messages or self._stop.is_set():
                # Stopped during a long poll: what it received comes back after its visibility timeout.
                runner.slots.release()
                continue
            self._invoke(runner, messages)

    def _receive_batch(self, mapping: MappingConfig) -> list[MessageTypeDef]:
        assert self._sqs is not None
        batch: list[MessageTypeDef] = []
        window_ends = math.inf  # the batching window opens with the first message received
        while len(batch) < mapping.batch_size and not self._stop.is_set():
            left = window_ends - time.monotonic()
            if batch and left <= 0:
                break
            # Idle: long-poll briefly so stop() is noticed. Gathering: wait out the batching window (SQS
            # waits in whole seconds: what is left of the last one, if not nearly all of it, is waited
            # out in short polls; a scaled window's fraction of one all of it).
            wait = self._idle_wait if not batch else min(_LONG_POLL_MAX, int(left + _SHORT_POLL_SECONDS))
            if batch and wait == 0:
                self._stop.wait(min(left, _SHORT_POLL_SECONDS))
            received = self._sqs.receive_message(
                QueueUrl=mapping.queue_url,
                MaxNumberOfMessages=min(_RECEIVE_MAX, mapping.batch_size - len(batch)),
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if received and not batch:
                window_ends = time.monotonic() + mapping.batching_window_seconds
            batch.extend(received)
            if not received and (not batch or mapping.batching_window_seconds == 0):
                break
            if mapping.batching_window_seconds == 0 and len(received) < _RECEIVE_MAX:
                break
        return batch

    def _invoke(self, runner: _MappingRunner, messages: list[MessageTypeDef]) -> None:
        function = runner.function
        context = EmulatedContext(
            function_name=function.name,
            function_arn=function.arn,
            memory_limit_in_mb=function.memory_mb,
            timeout_seconds=function.timeout_seconds,
        )
        records: list[dict[str, Any]] = [dict(message) for message in messages]
        event = sqs_event(records, queue_arn=runner.mapping.queue_arn, region=self._region or "us-east-1")

        def on_finish(invocation: Invocation) -> None:
            self._complete(runner, invocation)

        invocation = Invocation(event=event, context=context, messages=records, on_finish=on_finish)
        with self._lock:
            self._active.add(invocation)
            stats = self._stats[function.name]
            stats.invocations += 1
            stats.in_flight += 1
            stats.records += len(records)
        self._pools[function.name].acquire().submit(invocation)

    def _complete(self, runner: _MappingRunner, invocation: Invocation) -> None:
        timed_out = invocation.outcome == "timed_out"
        # Lambda kills the container at the deadline; the batch is left as it is.
        if timed_out and invocation.container is not None and not invocation.container.kill(invocation):
            logger.warning(
                "%s: a request of the timed-out container was still being applied 2 s after its deadline",
                runner.function.name,
            )
        failed = failed_message_ids(runner.mapping, invocation)
        succeeded = [m for m in invocation.messages if m["MessageId"] not in failed]
        try:
            self._delete(runner.mapping, succeeded)
            if failed and not timed_out and self._failed_visibility is not None:
                self._make_visible(
                    runner.mapping, [m for m in invocation.messages if m["MessageId"] in failed]
                )
        finally:
            with self._lock:
                self._active.discard(invocation)
                stats = self._stats[runner.function.name]
                stats.in_flight -= 1
                stats.records_failed += len(failed)
                if invocation.seconds is not None:
                    stats.durations.append(invocation.seconds)
                if timed_out:
                    stats.timed_out += 1
                    stats.last_error = f"timed out after {runner.function.timeout_seconds} s"
                elif invocation.outcome == "failed" or failed:
                    stats.failed += 1
                    if invocation.error is not None:
                        stats.last_error = f"{type(invocation.error).__name__}: {invocation.error}"
                    else:
                        why = invocation.logged_error or "its log says why"
                        stats.last_error = (
                            f"{len(failed)} of {len(invocation.messages)} records failed: {why}"
                        )
                else:
                    stats.succeeded += 1
            runner.slots.release()

    def _delete(self, mapping: MappingConfig, messages: list[dict[str, Any]]) -> None:
        assert self._sqs is not None
        for start in range(0, len(messages), _RECEIVE_MAX):
            chunk = messages[start : start + _RECEIVE_MAX]
            self._sqs.delete_message_batch(
                QueueUrl=mapping.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )

    def _make_visible(self, mapping: MappingConfig, messages: list[dict[str, Any]]) -> None:
        assert self._sqs is not None
        assert self._failed_visibility is not None
        for start in range(0, len(messages), _RECEIVE_MAX):
            chunk = messages[start : start + _RECEIVE_MAX]
            self._sqs.change_message_visibility_batch(
                QueueUrl=mapping.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": self._failed_visibility,
                    }
                    for i, m in enumerate(chunk)
                ],
            )

    def _watch_deadlines(self) -> None:
        while not (self._polling_over.is_set() and not self._active):
            now = time.monotonic()
            with self._lock:
                overdue = [inv for inv in self._active if inv.context.deadline <= now]
            for invocation in overdue:
                if invocation.finish("timed_out"):
                    logger.warning(
                        "%s invocation %s timed out: its container is killed (its later AWS requests "
                        "are refused) and its batch comes back after the queue's visibility timeout",
                        invocation.context.function_name,
                        invocation.context.aws_request_id,
                    )
            time.sleep(0.05)
