"""Production's deadlines, and the same deadlines at a point's time scale.

A point run `S` times faster (limit x S, latency / S) meets the deadlines production meets only if every
deadline shrinks by S too: the functions' timeouts, the queues' visibility timeouts, the step's hand-off
reserve and its idle hand-on delay, a failed record's first retry, the request timeout and the retry
budget, and the wait of the SQS pollers' idle long polls (which decides how many receive requests an idle
queue costs). They are read from where production sets them (`template.yaml`, the defaults of
`settings.py`, Lambda's pollers) and handed to the deployed stack the way a deployment would: the
functions' `Timeout` and `Environment`, the queues' `VisibilityTimeout`, the poller's idle wait.
The embedded runtime reads all of them from there, as Lambda does; nothing in `src/` knows of scaling.
The functions' memory sizes, which no scale changes, are read from the template too (`production_memory`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Lambda's Timeout, SQS's VisibilityTimeout and DelaySeconds are whole seconds.
_WHOLE_SECONDS = (
    "worker_timeout",
    "scheduler_timeout",
    "page_visibility",
    "request_visibility",
    "idle_step_delay",
    "page_retry",
    "poller_idle_wait",
)
# Lambda's SQS pollers long-poll: an empty receive waits up to SQS's maximum before it answers.
LAMBDA_POLLER_WAIT_SECONDS = 20


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Every deadline of a deployment, in seconds. Integers where AWS takes whole seconds."""

    worker_timeout: int
    scheduler_timeout: int
    page_visibility: int
    request_visibility: int
    request_timeout: float
    retry_budget: float
    retry_backoff_cap: float
    handoff: float
    idle_step_delay: int
    # How soon a failed page record first comes back (Settings.page_retry_seconds).
    page_retry: int
    # How long an idle poller's receive waits (the embedded poller's `idle_wait_seconds`): at Lambda's
    # 20 s an idle queue costs its pollers a request each 20 s; the embedded poller's default of 1 s
    # made SQS the largest AWS charge of a rate-bound sync in the load test's prices.
    poller_idle_wait: int
    # Not a deadline but a pace: a worker's CPU seconds a page (Settings.page_cpu_seconds). Divided by the
    # scale like the rest, so that a scaled point's runs take the shape (compact or not: run/split.py)
    # that its production counterpart's take at the real limit.
    page_cpu_seconds: float

    def scaled(self, scale: float) -> Deadlines:
        """Every deadline divided by `scale`; whole-second ones rounded, never below 1 s."""
        if scale <= 0:
            raise ValueError(f"time scale must be positive, got {scale}")
        changes: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in _WHOLE_SECONDS:
                changes[field.name] = max(1, round(value / scale))
            else:
                changes[field.name] = value / scale
        return dataclasses.replace(self, **changes)

    def environment(self) -> dict[str, str]:
        """The functions' environment variables that carry the deadlines `settings.py` reads."""
        return {
            "VANTA_REQUEST_TIMEOUT": f"{self.request_timeout:g}",
            "VANTA_RETRY_BUDGET_SECONDS": f"{self.retry_budget:g}",
            "VANTA_RETRY_BACKOFF_CAP_SECONDS": f"{self.retry_backoff_cap:g}",
            "STEP_HANDOFF_SECONDS": f"{self.handoff:g}",
            "IDLE_STEP_DELAY_SECONDS": str(self.idle_step_delay),
            "PAGE_RETRY_SECONDS": str(self.page_retry),
            "PAGE_CPU_SECONDS": f"{self.page_cpu_seconds:g}",
        }


@functools.cache
def production_deadlines(template_path: str | Path | None = None) -> Deadlines:
    """The deadlines a deployment of `template.yaml` with default settings has.

    Raises KeyError when the template no longer sets a function's Timeout or a queue's VisibilityTimeout.
    """
    from vanta_vuln_sync.local.template import DEFAULT_TEMPLATE_PATH, load_template
    from vanta_vuln_sync.settings import Settings, VantaSettings

    resources = load_template(template_path or DEFAULT_TEMPLATE_PATH)["Resources"]

    def prop(logical_id: str, name: str) -> int:
        return int(resources[logical_id]["Properties"][name])

    vanta = VantaSettings()
    settings = Settings(vanta=vanta, state_table="", data_bucket="", page_queue_url="")
    return Deadlines(
        worker_timeout=prop("WorkerFunction", "Timeout"),
        scheduler_timeout=prop("SchedulerFunction", "Timeout"),
        page_visibility=prop("PageQueue", "VisibilityTimeout"),
        request_visibility=prop("RequestQueue", "VisibilityTimeout"),
        request_timeout=vanta.request_timeout,
        retry_budget=vanta.retry_budget,
        retry_backoff_cap=vanta.retry_backoff_cap,
        handoff=settings.handoff_seconds,
        idle_step_delay=settings.idle_step_delay_seconds,
        page_retry=settings.page_retry_seconds,
        poller_idle_wait=LAMBDA_POLLER_WAIT_SECONDS,
        page_cpu_seconds=settings.page_cpu_seconds,
    )


@functools.cache
def template_defaults(template_path: str | Path | None = None) -> dict[str, str]:
    """The template's parameter defaults (as strings), e.g. `WorkerMaxConcurrency` -> "5"."""
    from vanta_vuln_sync.local.template import DEFAULT_TEMPLATE_PATH, load_template

    parameters = load_template(template_path or DEFAULT_TEMPLATE_PATH)["Parameters"]
    return {name: str(spec["Default"]) for name, spec in parameters.items() if "Default" in spec}


@functools.cache
def production_memory(template_path: str | Path | None = None) -> dict[str, int]:
    """Each function's MemorySize (MB) in a deployment of `template.yaml` with default parameters, by
    role: `worker`, `scheduler`, `finalize`.

    Raises KeyError when the template no longer sets a function's MemorySize.
    """
    from vanta_vuln_sync.local.template import DEFAULT_TEMPLATE_PATH, load_template

    resources = load_template(template_path or DEFAULT_TEMPLATE_PATH)["Resources"]
    defaults = template_defaults(template_path)

    def size(logical_id: str) -> int:
        value = resources[logical_id]["Properties"]["MemorySize"]
        return int(defaults[value["Ref"]]) if isinstance(value, dict) else int(value)

    return {
        "worker": size("WorkerFunction"),
        "scheduler": size("SchedulerFunction"),
        "finalize": size("FinalizeFunction"),
    }


def apply_deadlines(
    lambda_client: Any, sqs_client: Any, outputs: dict[str, str], deadlines: Deadlines
) -> None:
    """Set `deadlines` on a deployed stack (boto3 clients): the scheduler's and the worker's Timeout and
    environment (merged into what the template set), their queues' VisibilityTimeout. The Finalize
    function keeps its production timeout and queue: its work is CPU and S3, which no time scale
    shrinks, and it waits on no Vanta slot."""
    timeouts = {
        outputs["WorkerFunctionName"]: deadlines.worker_timeout,
        outputs["SchedulerFunctionName"]: deadlines.scheduler_timeout,
    }
    for function, timeout in timeouts.items():
        current = lambda_client.get_function_configuration(FunctionName=function)
        # Lambda's environment is strings; moto hands resolved Number parameters back as numbers.
        template = {k: str(v) for k, v in current.get("Environment", {}).get("Variables", {}).items()}
        variables = {**template, **deadlines.environment()}
        lambda_client.update_function_configuration(
            FunctionName=function, Timeout=timeout, Environment={"Variables": variables}
        )
    visibility = {
        outputs["PageQueueUrl"]: deadlines.page_visibility,
        outputs["RequestQueueUrl"]: deadlines.request_visibility,
    }
    for queue_url, seconds in visibility.items():
        sqs_client.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": str(seconds)})
