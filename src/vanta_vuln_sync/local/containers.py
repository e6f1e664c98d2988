"""Lambda "containers" for the local runtime: one long-lived thread each, kept warm between invocations.

A real Lambda container runs one invocation at a time and keeps its process (so its event loop and
clients) between invocations. Here a container is a thread of this process: the handler code keeps its
per-container state in `threading.local` (see `vanta_vuln_sync.container`), so each thread has its own
event loop, HTTP session and AWS clients, reused by every invocation it runs.

A thread cannot be killed. An invocation that outlives its timeout is finished as "timed out" by the
poller's watchdog (its batch is not deleted, its concurrency slot is freed, as Lambda would); the thread
runs on until the handler returns and is then retired instead of going back to the pool, so the next
invocation gets a fresh (cold) container, as after a real timeout.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from vanta_vuln_sync.local.context import LambdaContext

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], LambdaContext], Any]
Outcome = Literal["succeeded", "failed", "timed_out"]


_logged = threading.local()


class LoggedErrorRecorder(logging.Handler):
    """Remembers the last exception a container thread logged during its current invocation.

    A batch handler that reports partial failures logs why (Powertools' batch processor logs each
    failed record's exception at WARNING) and returns normally; this keeps that reason so the poller can
    say what failed. Installed on the root logger and the Powertools service logger by the poller.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            _logged.last = f"{type(error).__name__}: {error}"


class HandlerImportError(RuntimeError):
    """A function's `Handler` setting does not name an importable callable."""


def resolve_handler(handler: str) -> Handler:
    """Import `package.module.function` as Lambda's Python runtime does; raises HandlerImportError."""
    module_name, _, attribute = handler.rpartition(".")
    if not module_name:
        raise HandlerImportError(f"handler {handler!r} is not of the form module.function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerImportError(f"cannot import handler module {module_name!r}: {exc}") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise HandlerImportError(f"module {module_name!r} has no callable {attribute!r}")
    return function  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """A deployed function as the poller needs it (from `lambda:GetFunctionConfiguration`)."""

    name: str
    arn: str
    handler: str
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, str] = field(default_factory=dict)
    reserved_concurrency: int | None = None


class Invocation:
    """One handler call with one batch. It finishes exactly once: when the handler returns or raises,
    or when the watchdog sees its deadline pass, whichever comes first."""

    def __init__(
        self,
        *,
        event: dict[str, Any],
        context: LambdaContext,
        messages: list[dict[str, Any]],
        on_finish: Callable[[Invocation], None],
    ) -> None:
        self.event = event
        self.context = context
        self.messages = messages
        self.outcome: Outcome | None = None
        self.response: Any = None
        self.error: BaseException | None = None
        self.logged_error: str | None = None  # the last exception the handler logged, if any
        self.started = time.monotonic()
        self._on_finish = on_finish
        self._lock = threading.Lock()

    def finish(self, outcome: Outcome, *, response: Any = None, error: BaseException | None = None) -> bool:
        """Record the outcome and run the completion callback; False if it had already finished."""
        with self._lock:
            if self.outcome is not None:
                return False
            self.outcome, self.response, self.error = outcome, response, error
        self._on_finish(self)
        return True


class Container:
    """One warm container of one function: a thread that runs submitted invocations one at a time."""

    def __init__(
        self,
        function: FunctionConfig,
        handler: Handler,
        pool: ContainerPool,
        number: int,
        teardown: Callable[[], None] | None,
    ) -> None:
        self.function = function
        self.invocations = 0
        self._handler = handler
        self._pool = pool
        self._teardown = teardown
        self._jobs: queue.SimpleQueue[Invocation | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=f"lambda:{function.name}#{number}", daemon=True)
        self.thread.start()

    def submit(self, invocation: Invocation) -> None:
        """Hand the container its next invocation (it must be idle)."""
        self._jobs.put(invocation)

    def shut_down(self) -> None:
        """Ask the thread to end after its current invocation."""
        self._jobs.put(None)

    def _run(self) -> None:
        try:
            while (invocation := self._jobs.get()) is not None:
                self.invocations += 1
                _logged.last = None
                try:
                    response = self._handler(invocation.event, invocation.context)
                except Exception as exc:  # the handler's failure is the batch's failure, as in Lambda
                    logger.warning(
                        "%s invocation %s raised %s: %s",
                        self.function.name,
                        invocation.context.aws_request_id,
                        type(exc).__name__,
                        exc,
                    )
                    finished = invocation.finish("failed", error=exc)
                else:
                    invocation.logged_error = getattr(_logged, "last", None)
                    finished = invocation.finish("succeeded", response=response)
                if not finished:
                    # The watchdog timed this invocation out: Lambda would have killed the container.
                    self._pool.retire(self)
                    return
                self._pool.release(self)
        finally:
            if self._teardown is not None:
                try:
                    self._teardown()
                except Exception:
                    logger.exception("container teardown of %s failed", self.function.name)


class ContainerPool:
    """The containers of one function: reuses an idle (warm) one, starts a new (cold) one otherwise.

    The number busy at once is bounded by the callers (the event source mappings' concurrency slots).
    """

    def __init__(
        self, function: FunctionConfig, handler: Handler, teardown: Callable[[], None] | None
    ) -> None:
        self.function = function
        self._handler = handler
        self._teardown = teardown
        self._lock = threading.Lock()
        self._idle: list[Container] = []
        self._all: list[Container] = []
        self._busy = 0
        self._numbers = itertools.count(1)
        self.cold_starts = 0
        self.peak_busy = 0

    def acquire(self) -> Container:
        """An idle container (most recently used first, as Lambda favours warm ones) or a new one."""
        with self._lock:
            self._busy += 1
            self.peak_busy = max(self.peak_busy, self._busy)
            if self._idle:
                return self._idle.pop()
            self.cold_starts += 1
            number = next(self._numbers)
        container = Container(self.function, self._handler, self, number, self._teardown)
        with self._lock:
            self._all.append(container)
        return container

    def release(self, container: Container) -> None:
        """Put a container that finished its invocation back among the idle ones."""
        with self._lock:
            self._busy -= 1
            self._idle.append(container)

    def retire(self, container: Container) -> None:
        """Forget a container whose invocation timed out; its thread ends."""
        with self._lock:
            self._busy -= 1
            if container in self._all:
                self._all.remove(container)

    @property
    def busy(self) -> int:
        with self._lock:
            return self._busy

    @property
    def warm(self) -> int:
        with self._lock:
            return len(self._all)

    def close(self, timeout: float) -> None:
        """Shut every container down and wait up to `timeout` seconds in all for their threads."""
        with self._lock:
            containers = list(self._all)
            self._idle.clear()
        for container in containers:
            container.shut_down()
        deadline = time.monotonic() + timeout
        for container in containers:
            container.thread.join(max(0.0, deadline - time.monotonic()))
