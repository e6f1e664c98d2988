"""AWS-side fault injection for the chaos suite: errors, throttling, lost replies and killed containers.

`AwsFaultInjector(AwsFaults(...))` hooks every aiobotocore client made while `installed()` is active
(it wraps `AioSession.create_client`, so the clients each Lambda container opens on first use get its
botocore event handlers). For a seeded fraction of the S3, DynamoDB and SQS calls made on the
containers' threads (named `lambda:<function>#<n>` by the embedded runtime) its `before-send` handler
answers instead of AWS, in each service's own wire format, so botocore's parsers and retry policy see
exactly what AWS would send:
- `error_rate`: HTTP 500 `InternalError` (DynamoDB: `InternalServerError`); nothing reached AWS;
- `throttle_rate`: S3 503 `SlowDown`, DynamoDB 400 `ProvisionedThroughputExceededException` or
  `ThrottlingException`, SQS 400 `RequestThrottled`; nothing reached AWS;
- `lost_reply_rate` (DynamoDB and SQS): the call is sent and applied, then its reply is replaced by a
  500, as AWS documents may happen ("the request may or may not have succeeded"); the SDK retries it;
- `crash_rate`: the container dies at this call: `SimulatedCrash` (a BaseException, so no `except
  Exception` in the pipeline or the batch processor catches it) is raised here and from every later
  AWS call of that thread, so nothing the dead container does afterwards reaches AWS;
- `hang_rate`: the container freezes at this call (its thread sleeps `hang_seconds`, past the
  function's timeout, so the poller times the invocation out) and then dies as above.
Never imported by the handlers: this is a test and experiment tool of the embedded runtime only.
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiobotocore.awsrequest import AioAWSResponse
from aiobotocore.session import AioSession
from botocore.compat import HTTPHeaders

_SERVICES = frozenset({"s3", "dynamodb", "sqs"})
_HANDLER_ID = "vanta-vuln-sync-chaos"
_PARAMS_KEY = "vanta_vuln_sync_chaos_params"


class SimulatedCrash(BaseException):
    """The Lambda container died here (injected). Derives from BaseException on purpose: a real crash
    is not an exception the code under test can catch and handle."""


@dataclass(frozen=True, slots=True)
class AwsFaults:
    """What to inject, as probabilities per AWS call (one roll a call, in the order listed)."""

    seed: int = 0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    lost_reply_rate: float = 0.0
    crash_rate: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 0.0
    # Crashes and hangs together stop after this many (each costs the run a function timeout).
    max_kills: int | None = None
    services: frozenset[str] = _SERVICES
    # Only calls made on threads whose name starts with this prefix (the emulated Lambda containers).
    thread_prefix: str = "lambda:"
    # Kills only on threads whose name contains this (e.g. "-worker#"); "" means any container.
    kill_threads: str = ""

    def __post_init__(self) -> None:
        rates = (self.error_rate, self.throttle_rate, self.lost_reply_rate, self.crash_rate, self.hang_rate)
        if any(not 0.0 <= rate <= 1.0 for rate in rates) or sum(rates) > 1.0:
            raise ValueError("fault rates must be probabilities that add up to at most 1")
        if self.hang_rate and self.hang_seconds <= 0:
            raise ValueError("hang_rate needs hang_seconds (longer than the function's timeout)")


@dataclass(frozen=True, slots=True)
class AppliedCall:
    """An AWS call that reached AWS and was applied (a 2xx), even if its reply was then lost."""

    thread: str
    service: str
    operation: str
    params: dict[str, Any]
    reply_lost: bool = False


@dataclass(slots=True)
class FaultCounts:
    """What the injector did, and what the SDK did about it."""

    calls: int = 0
    errors: int = 0
    throttles: int = 0
    lost_replies: int = 0
    crashes: int = 0
    hangs: int = 0
    # Retries the SDK made (sum of `RetryAttempts` of calls that ended in a reply).
    sdk_retries: int = 0
    by_service: Counter[str] = field(default_factory=Counter)

    @property
    def injected(self) -> int:
        return self.errors + self.throttles + self.lost_replies + self.crashes + self.hangs


class _Body:
    """The smallest `raw` an AioAWSResponse reads an error body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, amt: int | None = None) -> bytes:
        data, self._data = self._data, b""
        return data


def error_response(service: str, status: int, code: str, message: str) -> AioAWSResponse:
    """An error reply as `service` would send it (S3 XML, DynamoDB JSON, SQS JSON with its query-compat
    header), for botocore to parse into a ClientError with `code`."""
    headers = {"x-amzn-requestid": "chaos-injected", "x-amz-request-id": "chaos-injected"}
    if service == "s3":
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>chaos-injected</RequestId></Error>"
        ).encode()
        headers["content-type"] = "application/xml"
    else:
        namespace = "com.amazonaws.dynamodb.v20120810" if service == "dynamodb" else "com.amazonaws.sqs"
        body = orjson.dumps({"__type": f"{namespace}#{code}", "message": message})
        headers["content-type"] = "application/x-amz-json-1.0"
        if service == "sqs":
            fault = "Receiver" if status >= 500 else "Sender"
            headers["x-amzn-query-error"] = f"{code};{fault}"
    headers["content-length"] = str(len(body))
    return AioAWSResponse("https://chaos.invalid/", status, HTTPHeaders.from_dict(headers), _Body(body))


def _internal_error(service: str) -> AioAWSResponse:
    code = "InternalServerError" if service == "dynamodb" else "InternalError"
    return error_response(service, 500, code, "We encountered an internal error. Please try again.")


def _throttled(service: str, rng: random.Random) -> AioAWSResponse:
    if service == "s3":
        return error_response(service, 503, "SlowDown", "Please reduce your request rate.")
    if service == "dynamodb":
        code = rng.choice(("ProvisionedThroughputExceededException", "ThrottlingException"))
        return error_response(service, 400, code, "Rate of requests exceeds the allowed throughput.")
    return error_response(service, 400, "RequestThrottled", "Request is throttled.")


class AwsFaultInjector:
    """Injects `faults` into aiobotocore clients made while `installed()`; see the module doc.

    Thread-safe: the containers' threads share one seeded random source under a lock (so the fraction
    is the configured one, though which call gets a fault depends on the threads' interleaving).
    """

    def __init__(self, faults: AwsFaults) -> None:
        self.faults = faults
        self.counts = FaultCounts()
        self.applied: list[AppliedCall] = []
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        self._dead: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        self._active = False

    @contextmanager
    def installed(self) -> Iterator[AwsFaultInjector]:
        """Hook aiobotocore clients made until exit; a container killed by a SimulatedCrash does not
        print a thread traceback. Test scaffolding: it patches `AioSession.create_client` of this
        process, so only use it in a test or a local experiment."""
        original_create = AioSession.create_client
        original_hook = threading.excepthook
        injector = self

        def create_client(session: AioSession, *args: Any, **kwargs: Any) -> Any:
            injector.attach(session)
            return original_create(session, *args, **kwargs)

        def excepthook(args: threading.ExceptHookArgs) -> None:
            if args.exc_type is not None and issubclass(args.exc_type, SimulatedCrash):
                return
            original_hook(args)

        AioSession.create_client = create_client  # type: ignore[method-assign,assignment]
        threading.excepthook = excepthook
        self._active = True
        try:
            yield self
        finally:
            self._active = False
            AioSession.create_client = original_create  # type: ignore[method-assign]
            threading.excepthook = original_hook

    def attach(self, session: AioSession) -> None:
        """Register the injector's handlers on `session` (idempotent); its clients made from now on
        carry them. `installed()` does this for every session; call it directly for one session."""
        unique = f"{_HANDLER_ID}-{id(self)}"
        session.register("before-parameter-build", self._keep_params, unique_id=f"{unique}-params")
        session.register("before-send", self._before_send, unique_id=f"{unique}-send")
        session.register("after-call", self._after_call, unique_id=f"{unique}-after")

    def killed_threads(self) -> list[threading.Thread]:
        """The container threads killed so far (a hung one may still be frozen)."""
        return list(self._dead)

    def _targeted(self, service: str) -> bool:
        return (
            self._active
            and service in self.faults.services
            and threading.current_thread().name.startswith(self.faults.thread_prefix)
        )

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[_PARAMS_KEY] = {k: v for k, v in params.items() if k != "Body"}

    async def _before_send(self, request: Any, event_name: str, **_: Any) -> AioAWSResponse | None:
        _event, service, operation = event_name.split(".", 2)
        thread = threading.current_thread()
        if thread in self._dead:
            raise SimulatedCrash(f"{thread.name} is dead; {service}.{operation} never left it")
        if not self._targeted(service):
            return None
        faults = self.faults
        with self._lock:
            self.counts.calls += 1
            roll = self._rng.random()
            kill_allowed = faults.kill_threads in thread.name and (
                faults.max_kills is None or self.counts.crashes + self.counts.hangs < faults.max_kills
            )
            fault = _pick(roll, faults, kill_allowed, service)
            if fault:
                setattr(self.counts, fault, getattr(self.counts, fault) + 1)
                self.counts.by_service[service] += 1
            response = _throttled(service, self._rng) if fault == "throttles" else None
        if fault == "errors":
            return _internal_error(service)
        if fault == "throttles":
            return response
        if fault == "lost_replies":
            await self._apply(request, service, operation)
            return _internal_error(service)
        if fault == "crashes":
            self._dead.add(thread)
            raise SimulatedCrash(f"{thread.name} killed at {service}.{operation}")
        if fault == "hangs":
            self._dead.add(thread)
            # Blocks the container's whole event loop, as a frozen process would; the poller's watchdog
            # times the invocation out meanwhile.
            time.sleep(faults.hang_seconds)  # noqa: ASYNC251 - a frozen container blocks its loop
            raise SimulatedCrash(f"{thread.name} hung at {service}.{operation} past its timeout")
        return None

    async def _apply(self, request: Any, service: str, operation: str) -> None:
        """Send the signed request as is (so AWS applies it) and record it if it was applied."""
        body = request.body
        data = body if isinstance(body, bytes | str) or body is None else body.read()
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, request.url, headers=headers, data=data) as reply,
        ):
            await reply.read()
            applied = reply.status < 300
        if applied:
            params = orjson.loads(data) if data else {}
            with self._lock:
                self.applied.append(
                    AppliedCall(threading.current_thread().name, service, operation, params, reply_lost=True)
                )

    def _after_call(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        service = model.service_model.endpoint_prefix
        if not self._targeted(service):
            return
        retries = int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        call = None
        if http_response is not None and http_response.status_code < 300:
            call = AppliedCall(
                threading.current_thread().name, service, model.name, context.get(_PARAMS_KEY, {})
            )
        with self._lock:
            self.counts.sdk_retries += retries
            if call is not None:
                self.applied.append(call)


def _pick(roll: float, faults: AwsFaults, kill_allowed: bool, service: str) -> str | None:
    """The fault a roll lands on (counter name), or None."""
    for name, rate in (
        ("errors", faults.error_rate),
        ("throttles", faults.throttle_rate),
        ("lost_replies", faults.lost_reply_rate if service != "s3" else 0.0),
        ("crashes", faults.crash_rate if kill_allowed else 0.0),
        ("hangs", faults.hang_rate if kill_allowed else 0.0),
    ):
        if roll < rate:
            return name
        roll -= rate
    return None


__all__ = [
    "AppliedCall",
    "AwsFaultInjector",
    "AwsFaults",
    "FaultCounts",
    "SimulatedCrash",
    "error_response",
]
