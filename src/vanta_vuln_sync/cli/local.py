"""`vuln-sync local`: the whole system on this machine (moto server + the simulator or the real Vanta)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vanta_vuln_sync.cli import CliError

# Vanta's documented management-API limit (requests/minute), for the note the demo prints.
VANTA_DOCUMENTED_LIMIT = 50

EXAMPLES = """\
examples:
  vuln-sync local --out out/          # 20,000 simulated vulnerabilities; then open out/report.html
  vuln-sync local --vulnerabilities 2000 --cursor-style opaque --error-rate 0.02
  VANTA_CLIENT_ID=... VANTA_CLIENT_SECRET=... vuln-sync local --out mine/   # your real Vanta data
  vuln-sync local --serve --schedule-every 10 --vulnerabilities 2000   # keep it running; Ctrl-C stops

With --serve the stack stays up: a full sync is sent now and every --schedule-every minutes, and
`vuln-sync resync | status | redrive | report --stack local`, or any SQS client (aws sqs send-message
--endpoint-url ...) sending a file from events/, work against it; it prints the endpoint, the queue
URLs and the commands. Each successful full sync's outputs go to --out, other runs' to
--out/runs/<run_id>/.

The real template.yaml is deployed into an in-process moto server; the real handlers run under an
emulation of Lambda's SQS poller. With VANTA_CLIENT_ID set, the real Vanta API is used (VANTA_BASE_URL,
VANTA_AUTH_URL, VANTA_RATE_LIMIT_PER_MINUTE as for `fetch`) and the simulator options are ignored.
The simulator's default limit (600 requests/min) is 12x Vanta's documented 50, so the demo ends in
about a minute; at 50/min the same tenant takes about 8 minutes.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `local` to the `vuln-sync` command line."""
    parser = subparsers.add_parser(
        "local",
        help="run a full sync end to end on this machine (no AWS account needed)",
        description="Deploy template.yaml into an embedded moto server, run a full sync through the real "
        "handlers against the Vanta simulator (or the real Vanta), and copy stats.json, report.html, "
        "manifest.json and raw/ to --out.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out"), metavar="DIR", help="output folder (default out/)"
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="worker concurrency, 2-100 (default: the template's, 5)"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, metavar="S", help="give up after S seconds")
    parser.add_argument(
        "--worker-timeout",
        type=int,
        metavar="S",
        help="deploy the worker with this function timeout instead of the template's 900 s, to see what "
        "a timed-out invocation costs (its writes refused, its batch back only after the queue's "
        "visibility timeout)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the stack running until Ctrl-C, firing the schedule (a full sync) every "
        "--schedule-every minutes, for resync, status, redrive, report (--stack local) and SQS clients",
    )
    parser.add_argument(
        "--schedule-every",
        type=float,
        default=60.0,
        metavar="MIN",
        help="with --serve: minutes between scheduled full syncs, the first at once (default 60; 0: none)",
    )
    parser.add_argument(
        "--progress", choices=("auto", "bar", "plain"), default="auto", help="progress display (default auto)"
    )
    sim = parser.add_argument_group("simulator (ignored when VANTA_CLIENT_ID is set)")
    sim.add_argument(
        "--vulnerabilities", type=int, default=20_000, metavar="N", help="tenant size (default 20000)"
    )
    sim.add_argument("--cursor-style", choices=("arrayconnection", "opaque"), default="arrayconnection")
    sim.add_argument(
        "--rate-limit",
        type=int,
        default=600,
        metavar="N",
        help="requests/minute the simulator allows (default 600)",
    )
    sim.add_argument("--latency", type=float, default=0.01, metavar="S", help="seconds added to each request")
    sim.add_argument(
        "--error-rate", type=float, default=0.0, metavar="P", help="share of requests answered 5xx"
    )
    sim.add_argument("--seed", type=int, default=1, metavar="N", help="dataset seed (default 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the options, run the sync, print the summary; 0 only when the run succeeded."""
    # Imported here so `vuln-sync --help` does not pay for moto, rich and the simulator.
    try:
        from vanta_vuln_sync.local.runtime import (
            LocalOptions,
            LocalRunError,
            run_local,
            summary_rows,
            summary_table,
        )
    except ModuleNotFoundError as exc:
        raise CliError(
            f"`vuln-sync local` needs {exc.name}, which is not installed: "
            "pip install 'vanta-vuln-sync[local]'"
        ) from None
    from vanta_vuln_sync.settings import SettingsError, vanta_settings_from_env
    from vanta_vuln_sync.simulator import SimulatorConfig, SimulatorConfigError

    if args.workers is not None and not 2 <= args.workers <= 100:
        raise CliError(
            f"--workers must be between 2 and 100 (Lambda's MaximumConcurrency), got {args.workers}"
        )
    if args.timeout <= 0:
        raise CliError(f"--timeout must be positive, got {args.timeout}")
    if args.worker_timeout is not None and not 1 <= args.worker_timeout <= 900:
        raise CliError(
            f"--worker-timeout must be between 1 and 900 (Lambda's limit), got {args.worker_timeout}"
        )
    if args.schedule_every < 0:
        raise CliError(f"--schedule-every must be 0 or more minutes, got {args.schedule_every}")
    if args.out.exists() and not args.out.is_dir():
        raise CliError(f"--out {args.out} exists and is not a folder")
    vanta = None
    if os.environ.get("VANTA_CLIENT_ID"):
        try:
            vanta = vanta_settings_from_env()
        except SettingsError as exc:
            raise CliError(str(exc)) from None
        if not vanta.client_secret:
            raise CliError(
                "VANTA_CLIENT_ID is set but VANTA_CLIENT_SECRET is not; set both for the real Vanta"
            )
    try:
        simulator = SimulatorConfig(
            seed=args.seed,
            vulnerabilities=args.vulnerabilities,
            cursor_style=args.cursor_style,
            rate_limit_per_minute=args.rate_limit,
            latency_seconds=args.latency,
            error_rate=args.error_rate,
        )
    except (SimulatorConfigError, TypeError) as exc:
        raise CliError(f"bad simulator option: {exc}") from None
    if vanta is None:
        print(
            f"Vanta: built-in simulator ({args.vulnerabilities:,} vulnerabilities, {args.cursor_style} "
            f"cursors, {args.rate_limit or 'no'} requests/min limit, {args.latency:g} s latency)",
            flush=True,
        )
        if args.rate_limit == 0 or args.rate_limit > VANTA_DOCUMENTED_LIMIT:
            # ~1.6 records per vulnerability over the three resources, 100 a page.
            pages = args.vulnerabilities * 1.6 / 100
            minutes = pages / VANTA_DOCUMENTED_LIMIT
            print(
                f"  note: Vanta documents {VANTA_DOCUMENTED_LIMIT} requests/min; the simulator allows more "
                f"so the demo is quick (at {VANTA_DOCUMENTED_LIMIT}/min these ~{pages:,.0f} pages take "
                f"~{minutes:.0f} min)",
                flush=True,
            )
    else:
        print(
            f"Vanta: {vanta.base_url} (client {vanta.client_id}, {vanta.rate_limit_per_minute} requests/min)"
        )
    options = LocalOptions(
        out=args.out,
        workers=args.workers,
        simulator=simulator,
        vanta=vanta,
        timeout=args.timeout,
        progress=args.progress,
        stream=sys.stdout,
        worker_timeout=args.worker_timeout,
    )
    if args.serve:
        from vanta_vuln_sync.local.serve import ServeOptions, serve_local
        from vanta_vuln_sync.ops.served import state_path

        try:
            serve_local(ServeOptions(options, args.schedule_every * 60, state_path(args.out)))
        except LocalRunError as exc:
            raise CliError(str(exc)) from None
        return 0
    try:
        result = run_local(options)
    except LocalRunError as exc:
        raise CliError(str(exc)) from None
    from rich.console import Console

    console = Console(file=sys.stdout, highlight=False)
    console.print(summary_table(summary_rows(result), title="vuln-sync local"))
    # A timed-out invocation is damage AWS would do too: said in bold whether or not the run succeeded.
    errors = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    for warning in result.timeout_warnings():
        errors.print(f"warning: {warning}", style="bold", markup=False)
    if result.succeeded:
        # Plain prints: a path must stay on one line to be clicked or copied.
        if result.report is not None:
            print(f"report: {result.report}")
        print(f"outputs: {result.out}/ (stats.json, report.html, manifest.json, raw/)")
        if (result.out / "findings").is_dir():
            print(f"finding lists: {result.out / 'findings'}/ (CSV and NDJSON: {_list_names(result.out)})")
        return 0
    print(f"vuln-sync: run {result.status}: {result.failure}", file=sys.stderr)
    for function, error in result.errors.items():
        print(f"  {function} last failed with {error}", file=sys.stderr)
    for queue, lines in result.dlq.items():
        print(f"  {queue} holds:", file=sys.stderr)
        for line in lines:
            print(f"    {line}", file=sys.stderr)
    if result.run_id:
        print(
            f"  details: state table item run#{result.run_id}; worker logs above; "
            f"partial outputs in {result.out}/",
            file=sys.stderr,
        )
    return 1


def _list_names(out: Path) -> str:
    """The finding lists written under `out/findings/`, by name."""
    return ", ".join(sorted({path.stem for path in (out / "findings").glob("*.csv")}))
