"""What a sync costs in AWS requests and memory, measured while it runs.

`RequestMeter.wrap` is a middleware for the embedded moto server (`MotoServer(middlewares=[...])`) that
counts every request by service and billable action, so the cost estimate rests on the requests the
real handlers made, not on a model of them. Requests carrying `HARNESS_USER_AGENT` (the harness's
own state-table polling) are left out. `RssSampler` samples this process's resident set size.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

# Added to the harness's own clients (botocore `user_agent_extra`) so their calls are not billed.
HARNESS_USER_AGENT = "vuln-sync-loadtest-harness"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def classify(environ: dict[str, Any]) -> str | None:
    """The billable kind of one AWS request: `sqs`, `dynamodb-write`, `dynamodb-read`, `s3-put`
    (PUT, COPY, POST, LIST), `s3-get` (GET and the rest), `secrets`, `other`; None for harness calls."""
    if HARNESS_USER_AGENT in environ.get("HTTP_USER_AGENT", ""):
        return None
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target.startswith("AmazonSQS."):
        return "sqs"
    if target.startswith("DynamoDB_"):
        action = target.split(".", 1)[-1]
        writes = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
        return "dynamodb-write" if action in writes else "dynamodb-read"
    if target.startswith("secretsmanager."):
        return "secrets"
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if "/s3/aws4_request" in authorization:
        method = environ.get("REQUEST_METHOD", "GET")
        path = urlsplit(environ.get("PATH_INFO", "/")).path.strip("/")
        is_bucket_listing = method == "GET" and "/" not in path
        if method in ("PUT", "POST", "COPY") or is_bucket_listing:
            return "s3-put"  # S3 prices LIST with PUT, COPY and POST
        return "s3-get"
    return "other"


class RequestMeter:
    """Thread-safe counts of billable AWS requests, by kind (see `classify`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """`app` with every request counted before it is served."""

        def metered(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            kind = classify(environ)
            if kind is not None:
                self.record(kind)
            return app(environ, start_response)

        return metered


def rss_bytes() -> int:
    """This process's resident set size now (Linux `/proc/self/statm`)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    """Samples `rss_bytes()` every `interval` seconds in a thread; `peak` is the highest seen."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.endpoint_url = ""

    def start(self) -> None:
        self.baseline = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def stop(self) -> int:
        """Stop sampling; returns the peak growth over the baseline, in bytes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        return self.peak - self.baseline
