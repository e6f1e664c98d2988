"""One embedded world: the Vanta simulator (or the real Vanta), moto with the real template deployed, and
Lambda's SQS poller running the real handlers, all in this process.

`vuln-sync local`, the tests, the chaos harness and the load tests build it the same way:

    with World(SimulatorConfig(vulnerabilities=200)) as world:
        stack = world.deploy({"WorkerMaxConcurrency": 2})
        world.start_poller()
        world.send("RequestQueueUrl", FULL_SYNC)
        ...

On leaving, the poller, the simulator and moto (when the world started it) stop, and the process's
environment and warning filters are as they were: deploying points `AWS_*` at moto and the poller sets
each function's environment, so a world leaves nothing behind for the next one.

Nothing here imports the handlers at import time: as in Lambda, they are imported by the poller's
containers after the function's environment is in place (Powertools reads it when its objects are made).
"""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson

from vanta_vuln_sync.local.embedded_aws import (
    DEFAULT_STACK_NAME,
    EmbeddedAws,
    EmbeddedStack,
    Middleware,
    MotoServer,
)
from vanta_vuln_sync.local.poller import Poller
from vanta_vuln_sync.local.simulator_thread import SimulatorThread
from vanta_vuln_sync.simulator import Simulator, SimulatorConfig

# No X-Ray daemon and no CloudWatch here: tracing off, EMF metrics not printed.
LOCAL_FUNCTION_ENVIRONMENT: Mapping[str, str] = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
}
# The hosts the template admits for VantaBaseUrl and VantaAuthUrl without AllowCustomVantaHost.
_VANTA_HOSTS = ("https://api.vanta.com/", "https://api.vanta-gov.com/")
# The stack's outputs naming the queues work flows through (their DLQs aside).
WORK_QUEUES = ("RequestQueueUrl", "PageQueueUrl", "FinalizeQueueUrl")
_QUEUE_DEPTHS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True, slots=True)
class VantaTarget:
    """Where the deployed functions find Vanta, and the credentials the stack's secret holds."""

    base_url: str
    auth_url: str
    client_id: str
    client_secret: str = field(repr=False)  # never in a log line or a traceback

    @classmethod
    def of(cls, sim: Simulator) -> VantaTarget:
        return cls(sim.base_url, sim.auth_url, sim.client_id, sim.client_secret)


# A deployed stack that no test lets call Vanta: the template's own URLs, placeholder credentials.
UNREACHED_VANTA = VantaTarget(
    "https://api.vanta.com/v1", "https://api.vanta.com/oauth/token", "client-id", "client-secret"
)


class World:
    """The simulator (unless `vanta` names another Vanta), moto (unless `endpoint_url` names a running
    one; `middlewares` wrap a new one's WSGI app, innermost first), then, on request, the stack and the
    poller. A context manager; `start()` / `stop()` for callers that hold it longer."""

    def __init__(
        self,
        simulator: SimulatorConfig | None = None,
        *,
        vanta: VantaTarget | None = None,
        endpoint_url: str | None = None,
        middlewares: Sequence[Middleware] = (),
        simulator_start_timeout: float = 60.0,
    ) -> None:
        if (simulator is None) == (vanta is None):
            raise ValueError("a world needs either a simulator config or a Vanta target, not both")
        self._simulator_config = simulator
        self._vanta = vanta
        self._endpoint_url = endpoint_url
        self._middlewares = tuple(middlewares)
        self._simulator_start_timeout = simulator_start_timeout
        self.simulator: SimulatorThread | None = None
        self.moto: MotoServer | None = None
        self.embedded: EmbeddedAws | None = None
        self._stack: EmbeddedStack | None = None
        self._poller: Poller | None = None
        self._saved_environment: dict[str, str] | None = None
        self._warnings: warnings.catch_warnings[Any] | None = None

    def __enter__(self) -> World:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- starting and stopping ---------------------------------------------------------------------

    def start(self) -> World:
        """Start the simulator and moto; on any failure stop what had started and raise."""
        self._saved_environment = dict(os.environ)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        # An invocation that adds no metric says so; metrics are off here anyway.
        warnings.filterwarnings("ignore", message="No application metrics", category=UserWarning)
        try:
            if self._simulator_config is not None:
                self.simulator = SimulatorThread(self._simulator_config)
                self._vanta = VantaTarget.of(self.simulator.start(timeout=self._simulator_start_timeout))
            if self._endpoint_url is None:
                self.moto = MotoServer(middlewares=self._middlewares)
                self._endpoint_url = self.moto.start()
            self.embedded = EmbeddedAws(endpoint_url=self._endpoint_url)
            self.embedded.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the poller, the simulator and moto (when the world started it: its data is gone with
        it), and put the environment and the warning filters back as they were. Idempotent."""
        try:
            self.stop_poller()
        finally:
            try:
                if self.simulator is not None:
                    self.simulator.stop()
                    self.simulator = None
                if self.moto is not None:
                    self.moto.stop()
                    self.moto = None
            finally:
                if self._saved_environment is not None:
                    os.environ.clear()
                    os.environ.update(self._saved_environment)
                    self._saved_environment = None
                if self._warnings is not None:
                    self._warnings.__exit__(None, None, None)
                    self._warnings = None

    # -- what is running ---------------------------------------------------------------------------

    @property
    def sim(self) -> Simulator:
        """The running simulator (the world must have one)."""
        assert self.simulator is not None, "this world has no simulator"
        return self.simulator.simulator

    @property
    def vanta(self) -> VantaTarget:
        assert self._vanta is not None, "start() first"
        return self._vanta

    @property
    def stack(self) -> EmbeddedStack:
        assert self._stack is not None, "deploy() first"
        return self._stack

    @property
    def poller(self) -> Poller:
        assert self._poller is not None, "start_poller() first"
        return self._poller

    def client(self, service: str) -> Any:
        """A boto3 client of `service` on the world's moto."""
        assert self.embedded is not None, "start() first"
        return self.embedded.client(service)

    # -- the stack ---------------------------------------------------------------------------------

    def deploy(
        self,
        parameters: Mapping[str, str | int] | None = None,
        *,
        stack_name: str = DEFAULT_STACK_NAME,
        base_url: str | None = None,
    ) -> EmbeddedStack:
        """Deploy template.yaml with `parameters` (Vanta's URLs filled in: `base_url` replaces the API's,
        e.g. a proxy in front of the simulator). Afterwards the functions read the Vanta credentials from
        the stack's secret, as in AWS, not from this process's environment. Raises DeployError."""
        assert self.embedded is not None, "start() first"
        values: dict[str, str | int] = {
            "VantaBaseUrl": base_url or self.vanta.base_url,
            "VantaAuthUrl": self.vanta.auth_url,
        }
        if not all(str(url).startswith(_VANTA_HOSTS) for url in values.values()):
            # The simulator's loopback URLs, or another stand-in's: the template admits only Vanta's own
            # unless this is set.
            values["AllowCustomVantaHost"] = "true"
        values.update(parameters or {})
        self._stack = self.embedded.deploy(
            client_id=self.vanta.client_id,
            client_secret=self.vanta.client_secret,
            parameters=values,
            stack_name=stack_name,
        )
        for name in ("VANTA_CLIENT_ID", "VANTA_CLIENT_SECRET"):
            os.environ.pop(name, None)
        return self._stack

    def set_worker_timeout(self, seconds: int, *, visibility_timeout: int | None = None) -> None:
        """Deploy the worker with `seconds` as its Timeout (and, when given, the page queue with that
        visibility timeout, so a timed-out batch comes back in that long, as in AWS)."""
        self.client("lambda").update_function_configuration(
            FunctionName=self.stack.outputs["WorkerFunctionName"], Timeout=seconds
        )
        if visibility_timeout is not None:
            self.client("sqs").set_queue_attributes(
                QueueUrl=self.stack.outputs["PageQueueUrl"],
                Attributes={"VisibilityTimeout": str(visibility_timeout)},
            )

    # -- the poller --------------------------------------------------------------------------------

    def start_poller(
        self,
        *,
        environment: Mapping[str, str] | None = None,
        failed_visibility_timeout: int | None = 1,
        idle_wait_seconds: int = 1,
        time_scale: float = 1.0,
    ) -> Poller:
        """Start Lambda's SQS poller for the stack's functions. `environment` adds to (or replaces
        entries of) `LOCAL_FUNCTION_ENVIRONMENT`; `failed_visibility_timeout` is how soon a failed batch
        comes back (None: after its queue's visibility timeout, as in AWS); `idle_wait_seconds` is how
        long an idle poller's receive waits (Lambda's wait 20 s; 1 s lets `stop_poller` end quickly);
        `time_scale` divides the mappings' batching windows (a load test's scale, see Poller)."""
        self._poller = Poller(
            only_functions=self.stack.function_names,
            container_setup=container_loop,
            container_teardown=close_container,
            failed_visibility_timeout=failed_visibility_timeout,
            idle_wait_seconds=idle_wait_seconds,
            time_scale=time_scale,
            environment_overrides={**LOCAL_FUNCTION_ENVIRONMENT, **(environment or {})},
        )
        self._poller.start()
        return self._poller

    def stop_poller(self) -> None:
        """Stop polling and end the containers (once)."""
        if self._poller is not None:
            poller, self._poller = self._poller, None
            poller.stop()

    # -- driving and watching ----------------------------------------------------------------------

    def send(self, queue_output: str, body: str | Mapping[str, Any]) -> str:
        """Send `body` (JSON text, or a mapping sent as JSON) to the queue the stack output names;
        returns the message id."""
        text = body if isinstance(body, str) else orjson.dumps(body).decode()
        reply = self.client("sqs").send_message(QueueUrl=self.stack.outputs[queue_output], MessageBody=text)
        return str(reply["MessageId"])

    def idle(self) -> bool:
        """No message waits, is in flight or is delayed on a work queue, and no invocation runs."""
        if self._poller is not None and self._poller.stats().in_flight:
            return False
        return queues_empty(self.client("sqs"), [self.stack.outputs[name] for name in WORK_QUEUES])

    def settle(self, timeout: float) -> bool:
        """Wait until the world is idle (stragglers and duplicates processed); False after `timeout`."""
        deadline = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)
        return True


def queues_empty(sqs: Any, queue_urls: Sequence[str]) -> bool:
    """True when no message waits, is in flight or is delayed on any of the queues (a boto3 client)."""
    for url in queue_urls:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(_QUEUE_DEPTHS))["Attributes"]
        if any(int(attributes.get(name, 0)) for name in _QUEUE_DEPTHS):
            return False
    return True


def received_messages(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message the queue holds now, with its attributes, received (not deleted: they come back
    after the queue's visibility timeout). For reading a DLQ at the end of a run."""
    messages: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            return messages
        messages += got


async def queues_empty_async(sqs: Any, queue_urls: Sequence[str]) -> bool:
    """`queues_empty` with an aiobotocore client."""
    for url in queue_urls:
        reply = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(_QUEUE_DEPTHS))
        if any(int(reply["Attributes"].get(name, 0)) for name in _QUEUE_DEPTHS):
            return False
    return True


def container_loop() -> asyncio.AbstractEventLoop:
    """`Poller(container_setup=...)` for the real handlers: run in each new container thread, it makes
    the container's state (settings read at cold start, as in Lambda) and returns the loop its
    invocations run on, whose tasks the poller cancels when one times out."""
    from vanta_vuln_sync.handlers.container import current_container

    return current_container().loop


def close_container() -> None:
    """`Poller(container_teardown=...)`: end a container's state (imported late, see the module doc)."""
    from vanta_vuln_sync.handlers.container import shutdown_container

    shutdown_container()
