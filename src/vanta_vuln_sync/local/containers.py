"""Lambda "containers" for the local runtime: one long-lived thread each, kept warm between invocations.

A real Lambda container runs one invocation at a time and keeps its process (so its event loop and
clients) between invocations. Here a container is a thread of this process: the handler code keeps
its per-container state in `threading.local` (see `vanta_vuln_sync.handlers.container`), so each
thread has its own event loop, HTTP session and AWS clients, reused by every invocation it runs.

A thread cannot be killed, so a container whose invocation outlives its timeout is killed as far as
anything outside it can tell (`EmulatedContainer.kill`, called by the poller's watchdog at the deadline):
- its AWS access key is revoked: each container signs with its own key (`access_keys`), and the
  embedded moto server refuses every later request signed with it, so nothing it writes after the
  deadline lands;
- the tasks on its event loop are cancelled (the loop the `setup` hook returned, if any), so a handler
  waiting on I/O stops there; one blocked in synchronous code runs on, its AWS calls refused;
- it leaves the pool at once: the next invocation gets a fresh (cold) container with a fresh key, as
  after a real timeout. Its thread ends, after its teardown, when the handler returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from vanta_vuln_sync.local.access_keys import ACCESS_KEYS, AccessKeys, use_container_key
from vanta_vuln_sync.local.context import EmulatedContext

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], EmulatedContext], Any]
# Run on a new container's thread before its first invocation; returns the loop its handler runs on.
ContainerSetup = Callable[[], asyncio.AbstractEventLoop | None]
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
        context: EmulatedContext,
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
        self.container: EmulatedContainer | None = None  # the container running it, once submitted
        self.started = time.monotonic()
        self.seconds: float | None = None  # how long it ran, once finished
        self._on_finish = on_finish
        self._lock = threading.Lock()

    def finish(self, outcome: Outcome, *, response: Any = None, error: BaseException | None = None) -> bool:
        """Record the outcome and run the completion callback; False if it had already finished."""
        with self._lock:
            if self.outcome is not None:
                return False
            self.outcome, self.response, self.error = outcome, response, error
            self.seconds = time.monotonic() - self.started
        self._on_finish(self)
        return True


class EmulatedContainer:
    """One warm container of one function: a thread that runs submitted invocations one at a time."""

    def __init__(
        self,
        function: FunctionConfig,
        handler: Handler,
        pool: ContainerPool,
        number: int,
        teardown: Callable[[], None] | None,
        setup: ContainerSetup | None = None,
        keys: AccessKeys = ACCESS_KEYS,
    ) -> None:
        self.function = function
        self.invocations = 0
        self.access_key = keys.issue()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.killed = False
        self._handler = handler
        self._pool = pool
        self._teardown = teardown
        self._setup = setup
        self._keys = keys
        self._current: Invocation | None = None
        self._jobs: queue.SimpleQueue[Invocation | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=f"lambda:{function.name}#{number}", daemon=True)
        self.thread.start()

    def submit(self, invocation: Invocation) -> None:
        """Hand the container its next invocation (it must be idle)."""
        invocation.container = self
        self._jobs.put(invocation)

    def kill(self, invocation: Invocation) -> bool:
        """What Lambda does to a container whose `invocation` passed its timeout (see the module doc).
        Call it from another thread. True when no request of its key is still being applied."""
        self.killed = True
        drained = self._keys.revoke(self.access_key)
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing left to cancel
                loop.call_soon_threadsafe(self._cancel_tasks, invocation)
        self._pool.retire(self)
        return drained

    def _cancel_tasks(self, invocation: Invocation) -> None:
        # On the container's loop. Only while the timed-out invocation still runs: a callback that
        # comes later must not cancel the container's teardown.
        if self._current is not invocation or self.loop is None:
            return
        for task in asyncio.all_tasks(self.loop):
            task.cancel()

    def shut_down(self) -> None:
        """Ask the thread to end after its current invocation."""
        self._jobs.put(None)

    def _run(self) -> None:
        use_container_key(self.access_key)
        if self._setup is not None:
            try:
                self.loop = self._setup()
            except Exception as exc:  # the handler meets the same error and fails its batch with it
                logger.debug("container setup of %s failed: %s", self.function.name, exc)
        try:
            while (invocation := self._jobs.get()) is not None:
                self.invocations += 1
                _logged.last = None
                self._current = invocation
                try:
                    response = self._handler(invocation.event, invocation.context)
                except asyncio.CancelledError as exc:  # killed at its deadline (see `kill`)
                    finished = invocation.finish("failed", error=exc)
                except Exception as exc:  # the handler's failure is the batch's failure, as in Lambda
                    logger.warning(
                        "%s invocation %s raised %s: %s",
                        self.function.name,
                        invocation.context.aws_request_id,
                        type(exc).__name__,
                        exc,
                    )
                    finished = invocation.finish("failed", error=exc)
                except BaseException as exc:
                    # The container's process died (e.g. the chaos suite's SimulatedCrash): Lambda
                    # fails the invocation at once (Runtime.ExitError), not at its timeout, and the
                    # next batch gets a new container.
                    logger.warning(
                        "%s container died in invocation %s: %s",
                        self.function.name,
                        invocation.context.aws_request_id,
                        type(exc).__name__,
                    )
                    invocation.finish("failed", error=exc)
                    self._pool.retire(self)
                    return
                else:
                    invocation.logged_error = getattr(_logged, "last", None)
                    finished = invocation.finish("succeeded", response=response)
                finally:
                    self._current = None
                if not finished or self.killed:
                    # The watchdog timed this invocation out and killed the container (it has left
                    # the pool); only its teardown is left.
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
        self,
        function: FunctionConfig,
        handler: Handler,
        teardown: Callable[[], None] | None,
        setup: ContainerSetup | None = None,
        keys: AccessKeys = ACCESS_KEYS,
    ) -> None:
        self.function = function
        self._handler = handler
        self._teardown = teardown
        self._setup = setup
        self._keys = keys
        self._lock = threading.Lock()
        self._idle: list[EmulatedContainer] = []
        self._all: list[EmulatedContainer] = []
        self._busy = 0
        self._numbers = itertools.count(1)
        self.cold_starts = 0
        self.peak_busy = 0

    def acquire(self) -> EmulatedContainer:
        """An idle container (most recently used first, as Lambda favours warm ones) or a new one."""
        with self._lock:
            self._busy += 1
            self.peak_busy = max(self.peak_busy, self._busy)
            if self._idle:
                return self._idle.pop()
            self.cold_starts += 1
            number = next(self._numbers)
        container = EmulatedContainer(
            self.function, self._handler, self, number, self._teardown, self._setup, self._keys
        )
        with self._lock:
            self._all.append(container)
        return container

    def release(self, container: EmulatedContainer) -> None:
        """Put a container that finished its invocation back among the idle ones."""
        with self._lock:
            self._busy -= 1
            self._idle.append(container)

    def retire(self, container: EmulatedContainer) -> None:
        """Forget a killed container (once; later calls do nothing); its thread ends on its own."""
        with self._lock:
            if container in self._all:
                self._all.remove(container)
                self._busy -= 1

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
