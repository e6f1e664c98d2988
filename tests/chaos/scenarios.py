"""The chaos scenarios: each fault alone (the full suite, `nox -s chaos`) and combined (also in the short
suite that `nox -s tests` runs)."""

from __future__ import annotations

from typing import Any

from vanta_vuln_sync.local.faults import AwsFaults

from .harness import MidRun, Scenario

# Kills are noticed only when the invocation's timeout passes (faults.py), so scenarios with kills run
# the worker with a short timeout; the Vanta client's timeout shrinks with it (a step hands on once less
# than request timeout + 15 s is left).
KILL_TIMEOUTS: dict[str, Any] = {"worker_timeout": 12, "request_timeout": 3.0}
ONLY_WORKERS = "-worker#"


def _set(**changes: Any) -> Any:
    return lambda sim: sim.configure(**changes)


def _revoke(sim: Any) -> None:
    sim.revoke_token()


def revocations(*seconds: float) -> tuple[MidRun, ...]:
    return tuple(MidRun(s, "token revoked", _revoke) for s in seconds)


SHORT = [
    Scenario(
        "Vanta: 5xx + truncated + token 503s + token revoked mid-run",
        sim={
            "seed": 11,
            "vulnerabilities": 200,
            "error_rate": 0.1,
            "truncate_rate": 0.05,
            "token_error_rate": 0.3,
        },
        # Vanta allows 5 token requests a minute: more revocations (and 503s) would wait out that window.
        mid_run=revocations(3),
    ),
    Scenario(
        "AWS: 500s + throttling + killed workers + duplicates + poison",
        sim={"seed": 12, "vulnerabilities": 200, "cursor_style": "opaque"},
        aws=AwsFaults(
            seed=12,
            lost_reply_rate=0.03,
            error_rate=0.03,
            throttle_rate=0.03,
            crash_rate=0.01,
            max_kills=1,
            kill_threads=ONLY_WORKERS,
        ),
        duplicate_rate=0.2,
        poison=True,
        **KILL_TIMEOUTS,
    ),
]

_DATA: dict[str, Any] = {"vulnerabilities": 400}

FULL = [
    Scenario(
        "Vanta 5xx bursts",
        sim={"seed": 21, **_DATA, "error_rate": 0.05},
        mid_run=(MidRun(2, "burst", _set(error_rate=0.6)), MidRun(6, "calm", _set(error_rate=0.05))),
    ),
    Scenario(
        "429 storm without Retry-After",
        sim={"seed": 23, **_DATA, "retry_after": False},
        mid_run=(
            MidRun(2, "storm", _set(rate_limit_per_minute=20)),
            MidRun(8, "calm", _set(rate_limit_per_minute=0)),
        ),
    ),
    Scenario(
        # Vanta's window is 60 s: once over the limit, Retry-After asks for up to a minute's wait.
        "configured limit (900/min) above the real one (8/min): 429s with Retry-After",
        sim={"seed": 24, "vulnerabilities": 200, "rate_limit_per_minute": 8, "retry_after": True},
        rate_limit=900,
        page_size=25,
    ),
    Scenario("truncated bodies", sim={"seed": 25, **_DATA, "truncate_rate": 0.1}),
    Scenario(
        "malformed bodies (wrong-shape JSON, HTML, empty)",
        sim={"seed": 35, **_DATA},
        malformed_rate=0.05,
    ),
    Scenario(
        "stalls past the client timeout",
        sim={"seed": 26, **_DATA, "stall_rate": 0.08, "stall_seconds": 6.0},
        request_timeout=2.0,
    ),
    Scenario("token revoked mid-run (x3)", sim={"seed": 27, **_DATA}, mid_run=revocations(2, 5, 9)),
    # A run mints once: the token endpoint fails every request for its first 1.5 s, then recovers
    # (each failed mint also spends one of Vanta's 5 token requests a minute).
    Scenario(
        "token endpoint 503s",
        sim={"seed": 28, **_DATA, "token_error_rate": 1.0},
        mid_run=(MidRun(1.5, "token endpoint back", _set(token_error_rate=0.0)),),
    ),
    Scenario(
        "AWS 500s + throttling on S3, DynamoDB, SQS",
        sim={"seed": 29, **_DATA},
        aws=AwsFaults(seed=29, error_rate=0.05, throttle_rate=0.05),
    ),
    Scenario(
        "AWS lost replies (applied, then 500)",
        sim={"seed": 30, **_DATA},
        aws=AwsFaults(seed=30, lost_reply_rate=0.08, services=frozenset({"dynamodb"})),
    ),
    Scenario(
        "worker invocations killed",
        sim={"seed": 31, **_DATA},
        aws=AwsFaults(seed=31, crash_rate=0.02, max_kills=4, kill_threads=ONLY_WORKERS),
        **KILL_TIMEOUTS,
    ),
    Scenario(
        "worker invocations hung past their timeout",
        sim={"seed": 32, **_DATA},
        aws=AwsFaults(seed=32, hang_rate=0.01, hang_seconds=15.0, max_kills=2, kill_threads=ONLY_WORKERS),
        **KILL_TIMEOUTS,
    ),
    Scenario(
        "messages redelivered and duplicated + poison",
        sim={"seed": 33, **_DATA, "cursor_style": "opaque"},
        duplicate_rate=0.4,
        poison=True,
    ),
    Scenario(
        "Vanta's lists change mid-sync (1 removed + 1 added every 3 requests) + 5xx + duplicates",
        sim={"seed": 36, **_DATA, "remediations": 300, "churn_every": 3, "error_rate": 0.05},
        duplicate_rate=0.2,
    ),
    Scenario(
        "lists change mid-sync, opaque cursors + truncated bodies + AWS lost replies",
        sim={
            "seed": 37,
            **_DATA,
            "remediations": 300,
            "cursor_style": "opaque",
            "churn_every": 3,
            "truncate_rate": 0.05,
        },
        aws=AwsFaults(seed=37, lost_reply_rate=0.05, services=frozenset({"dynamodb"})),
    ),
    Scenario(
        "everything at once",
        sim={
            "seed": 34,
            **_DATA,
            "error_rate": 0.05,
            "truncate_rate": 0.03,
            "stall_rate": 0.02,
            "stall_seconds": 5.0,
            "token_error_rate": 0.3,
            "rate_limit_per_minute": 400,
        },
        rate_limit=800,
        aws=AwsFaults(
            seed=34,
            lost_reply_rate=0.02,
            error_rate=0.02,
            throttle_rate=0.02,
            crash_rate=0.005,
            hang_rate=0.003,
            hang_seconds=15.0,
            max_kills=3,
            kill_threads=ONLY_WORKERS,
        ),
        mid_run=revocations(4, 12),
        duplicate_rate=0.15,
        poison=True,
        timeout=240.0,
        **KILL_TIMEOUTS,
    ),
]
