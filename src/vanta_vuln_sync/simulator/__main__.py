"""`python -m vanta_vuln_sync.simulator`: run the Vanta simulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from datetime import datetime

from vanta_vuln_sync.simulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_NOW,
    SimulatorConfig,
)
from vanta_vuln_sync.simulator.server import Simulator

EXAMPLES = """\
examples:
  python -m vanta_vuln_sync.simulator --port 8080
  python -m vanta_vuln_sync.simulator --vulnerabilities 100000 --cursor-style opaque
  python -m vanta_vuln_sync.simulator --rate-limit 50 --latency 0.2 --latency-jitter 0.1 --error-rate 0.02
  python -m vanta_vuln_sync.simulator --truncate-rate 0.01 --stall-rate 0.01 --stall-seconds 20
  python -m vanta_vuln_sync.simulator --churn-every 5 --churn-delete 1 --churn-insert 1 --churn-seed 7

control endpoints (not part of Vanta's API):
  GET  /_sim/counters       request counters, throttled, tokens minted, max requests in 60 s
  GET  /_sim/config         the running config (without the secret)
  POST /_sim/config         JSON object of changes, e.g. {"error_rate": 0.1, "rate_limit_per_minute": 20}
  POST /_sim/revoke-token   revoke the live token now
  POST /_sim/evolve?seed=N  move the data one day forward (fixed, new, deactivated vulnerabilities)
  GET  /_sim/churn          churn settings, events so far, pending bursts, and per resource the truth
                            counts: served, stable, transient (inserted or deleted since the reset)
  POST /_sim/churn          JSON object, any of:
                              {"every": 5, "delete": 1, "insert": 1}   periodic churn (every 0 = off)
                              {"resources": ["vulnerable-assets"], "seed": 3}
                              {"burst": {"delete": 100, "insert": 100, "after_requests": 0}}
                                one burst now, or once N more list requests have been answered
                                (optional "resource"; else one of the churn resources, drawn)
                              {"reset_truth": true}   every record served now counts as stable

churn: every --churn-every-th list request (vulnerabilities, remediations and assets counted together,
whatever the filters; one that passes the rate limit, the token and parameter checks) first deletes
--churn-delete records at random positions of one of --churn-resources and inserts --churn-insert new
ones (fresh ids) at random positions, keeping the serve order: offset cursors of either style then
skip a record per deletion before their offset and repeat one per insertion.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vanta_vuln_sync.simulator",
        description="A Vanta API simulator: OAuth token endpoint, the vulnerability endpoints, "
        "Vanta's limits, and injected faults. Data is generated from --seed relative to --now.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    add("--port", type=int, default=8080, help="port (default %(default)s; 0 picks a free one)")
    add("--seed", type=int, default=1, help="data seed (default %(default)s)")
    add("--vulnerabilities", type=int, default=1000, help="open vulnerabilities (default %(default)s)")
    add("--remediations", type=int, default=None, help="remediations (default: vulnerabilities / 2)")
    add("--assets", type=int, default=None, help="vulnerable assets (default: vulnerabilities / 10)")
    add("--now", type=datetime.fromisoformat, default=DEFAULT_NOW, help="the data's 'now' (RFC 3339)")
    add("--cursor-style", choices=("arrayconnection", "opaque"), default="arrayconnection")
    add("--rate-limit", type=int, default=50, help="API requests per minute, 0 = none (default %(default)s)")
    add("--no-retry-after", action="store_true", help="send 429 without a Retry-After header")
    add("--retry-after-format", choices=("seconds", "http-date"), default="seconds", help="Retry-After as")
    add("--token-ttl", type=float, default=3599, help="token lifetime in seconds (default %(default)s)")
    add("--latency", type=float, default=0.0, help="seconds added to every API request")
    add("--latency-jitter", type=float, default=0.0, help="± seconds of uniform jitter on the latency")
    add("--error-rate", type=float, default=0.0, help="probability of a 500/502/503 per request")
    add("--truncate-rate", type=float, default=0.0, help="probability of a 200 with a cut-off body")
    add("--stall-rate", type=float, default=0.0, help="probability of a request stalling")
    add("--stall-seconds", type=float, default=30.0, help="how long a stalled request hangs")
    add("--token-error-rate", type=float, default=0.0, help="probability of a 503/504 from /oauth/token")
    add(
        "--remediation-severity-case-sensitive",
        action="store_true",
        help="remediations' severity filter compares as written with the records' lower-case values "
        "(severity=CRITICAL matches nothing, severity=critical the critical ones)",
    )
    add("--churn-every", type=int, default=0, help="a churn event every K-th list request (0 = off)")
    add("--churn-delete", type=int, default=1, help="records deleted per churn event (default %(default)s)")
    add("--churn-insert", type=int, default=1, help="records inserted per churn event (default %(default)s)")
    add(
        "--churn-resources",
        type=lambda text: tuple(text.split(",")),
        default=("vulnerabilities", "vulnerability-remediations"),
        help="comma-separated resources churn may change, one drawn per event "
        "(default vulnerabilities,vulnerability-remediations; also vulnerable-assets)",
    )
    add("--churn-seed", type=int, default=None, help="seed of churn positions (default: from --seed)")
    add("--client-id", default=DEFAULT_CLIENT_ID, help="accepted client id (default %(default)s)")
    add("--client-secret", default=None, help="accepted client secret (default: the built-in one)")
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The SimulatorConfig the command-line options describe."""
    return SimulatorConfig(
        seed=args.seed,
        vulnerabilities=args.vulnerabilities,
        remediations=args.remediations,
        assets=args.assets,
        now=args.now,
        cursor_style=args.cursor_style,
        rate_limit_per_minute=args.rate_limit,
        retry_after=not args.no_retry_after,
        retry_after_format=args.retry_after_format,
        token_ttl_seconds=args.token_ttl,
        latency_seconds=args.latency,
        latency_jitter=args.latency_jitter,
        error_rate=args.error_rate,
        truncate_rate=args.truncate_rate,
        stall_rate=args.stall_rate,
        stall_seconds=args.stall_seconds,
        token_error_rate=args.token_error_rate,
        remediation_severity_case_sensitive=args.remediation_severity_case_sensitive,
        churn_every=args.churn_every,
        churn_delete=args.churn_delete,
        churn_insert=args.churn_insert,
        churn_resources=args.churn_resources,
        churn_seed=args.churn_seed,
        client_id=args.client_id,
        client_secret=args.client_secret or DEFAULT_CLIENT_SECRET,
    )


async def serve(config: SimulatorConfig, host: str, port: int, secret_given: bool) -> None:
    """Start the simulator, print how to reach it, and serve until cancelled."""
    async with Simulator(config, host=host, port=port) as sim:
        counts = ", ".join(
            f"{sim.dataset.count(r)} {r}" for r in ("vulnerabilities", "vulnerability-remediations")
        )
        print(f"Vanta simulator: {counts}, {sim.dataset.count('vulnerable-assets')} assets")
        print(f"  base URL:  {sim.base_url}")
        print(f"  auth URL:  {sim.auth_url}")
        print(f"  client id: {sim.client_id}")
        print(
            f"  secret:    {'the one given by --client-secret' if secret_given else 'the built-in default'}"
        )
        print(f"  counters:  {sim.origin}/_sim/counters  (Ctrl-C to stop)", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"simulator: error: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, args.host, args.port, args.client_secret is not None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
