"""`vuln-sync report [--run RUN|latest | --as-of DATE] [--from DATE --to DATE] [--out DIR]`: fetch a
run's stats.json, report.html and finding lists from the data bucket of a deployed stack, print the
headline numbers and, for a window, remediation statistics (on-time rate by severity, MTTR)."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from vanta_vuln_sync.aws import new_session
from vanta_vuln_sync.cli import CliError
from vanta_vuln_sync.ops.served import LOCAL_STACK, ServedStackError, read_served
from vanta_vuln_sync.stats.audit import full_run_as_of, remediation_window
from vanta_vuln_sync.stats.finding_lists import LIST_TITLES
from vanta_vuln_sync.stats.model import SEVERITIES

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

STACK_ENV = "VULN_SYNC_STACK"
BUCKET_OUTPUT = "DataBucketName"
# Run ids are ours (scheduler-made), so anything else is a typo or an attempt at another key.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")

EXAMPLES = f"""\
examples:
  vuln-sync report                                   # the latest full run (scope all)
  vuln-sync report --run latest --out out/ --stack vuln-sync
  vuln-sync report --run 20261126T060000Z-3f9a --bucket my-vuln-sync-data
  vuln-sync report --as-of 2026-06-30 --out audit/   # the last full run on or before that day
  vuln-sync report --from 2026-01-01 --to 2026-07-01 # plus remediations fixed in that window
  vuln-sync report --stack local --out out/report-latest  # the stack `vuln-sync local --serve` serves

`latest` is the last successful full sync (scope all), as in `vuln-sync status`; any other run (a
resync, whatever its scope) by its id. The headline names the run and the scope it shows.
With --out, the run's stats.json, report.html and finding lists (findings/<list>.csv and .ndjson;
lists: {", ".join(LIST_TITLES)}) are saved there.
DATE is YYYY-MM-DD (a whole day, UTC: --from starts with it, --to and --as-of include it) or an ISO
8601 time.

The bucket comes from --bucket, or from the {BUCKET_OUTPUT} output of the CloudFormation stack named by
--stack or ${STACK_ENV}. AWS credentials and region come from the usual AWS environment
(AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `report` to the `vuln-sync` command line."""
    parser = subparsers.add_parser(
        "report",
        help="fetch a run's statistics, HTML report and finding lists and print the headline numbers",
        description="Fetch stats.json, report.html and the finding lists of a run (by default the latest "
        "full run) from the data bucket and print the headline numbers per severity; optionally "
        "remediation statistics over a window of time.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--run",
        metavar="RUN|latest",
        help="a run id, or `latest`: the last successful full sync, scope all (the default)",
    )
    which.add_argument(
        "--as-of", type=_moment, metavar="DATE", help="the last successful full run started on or before DATE"
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="save stats.json, report.html and the lists here"
    )
    parser.add_argument(
        "--from",
        dest="window_from",
        type=_moment,
        metavar="DATE",
        help="remediation window start (with --to)",
    )
    parser.add_argument(
        "--to",
        dest="window_to",
        type=_moment,
        metavar="DATE",
        help="remediation window end (a day is included)",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--stack",
        metavar="NAME",
        help=f"the deployed stack, or local (`vuln-sync local --serve`) (default: ${STACK_ENV})",
    )
    target.add_argument("--bucket", metavar="NAME", help="the data bucket (skips the stack lookup)")
    parser.set_defaults(func=run_report)


def _moment(text: str) -> datetime:
    """A DATE argument: `YYYY-MM-DD` is the end of that day (UTC); an ISO time is taken as given."""
    try:
        if len(text) == 10:
            return (
                datetime.fromisoformat(text).replace(tzinfo=UTC)
                + timedelta(days=1)
                - timedelta(milliseconds=1)
            )
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def run_report(args: argparse.Namespace) -> int:
    """The `report` command; raises CliError for anything the user can fix."""
    if (args.window_from is None) != (args.window_to is None):
        raise CliError("give both --from and --to (a remediation window), or neither")
    window = None
    if args.window_from is not None:
        # A day given to --from means its start; the parser read it as its end.
        start = _day_start(args.window_from)
        end = args.window_to + timedelta(milliseconds=1) if _is_day_end(args.window_to) else args.window_to
        if start >= end:
            raise CliError("--from must be before --to")
        window = (start, end)
    fetched = asyncio.run(_fetch(args, window))
    stats = fetched.stats
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "stats.json").write_bytes(orjson.dumps(stats, option=orjson.OPT_INDENT_2))
        if fetched.html is not None:
            (args.out / "report.html").write_bytes(fetched.html)
        for name, body in fetched.files.items():
            path = args.out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        if fetched.window is not None:
            (args.out / "remediation-window.json").write_bytes(
                orjson.dumps(fetched.window, option=orjson.OPT_INDENT_2)
            )
    if args.as_of is None and args.run in (None, "latest"):
        print("latest: the last successful full sync (scope all)")
    print_headline(stats, saved_to=args.out)
    if args.out is not None and fetched.files:
        print(f"saved {len(fetched.files)} finding list files under {args.out / 'findings'}")
    if fetched.window is not None:
        print_window(fetched.window)
    return 0


def _is_day_end(moment: datetime) -> bool:
    return (moment.hour, moment.minute, moment.second, moment.microsecond) == (23, 59, 59, 999000)


def _day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0) if _is_day_end(moment) else moment


def run_prefix(run: str) -> str:
    """The key prefix of `run` (`latest/` or `runs/<id>/`); raises CliError for a malformed id."""
    if run == "latest":
        return "latest/"
    if not RUN_ID.fullmatch(run):
        raise CliError(f"{run!r} is not a run id (letters, digits and ._:+- only), nor `latest`")
    return f"runs/{run}/"


@dataclass(slots=True)
class Fetched:
    """What `report` fetched: the run's stats.json and report.html, its list files by relative name,
    and the remediation window's statistics when asked for."""

    stats: dict[str, Any]
    html: bytes | None
    files: dict[str, bytes] = field(default_factory=dict)
    window: dict[str, Any] | None = None


async def _fetch(args: argparse.Namespace, window: tuple[datetime, datetime] | None) -> Fetched:
    session = new_session()
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    client_kwargs: dict[str, Any] = {"endpoint_url": endpoint}
    run = args.run or "latest"
    bucket = args.bucket
    stack = args.stack or os.environ.get(STACK_ENV)
    try:
        if bucket is None and stack == LOCAL_STACK:
            try:
                served = read_served()
            except ServedStackError as exc:
                raise CliError(str(exc)) from None
            client_kwargs = dict(served.client_kwargs())
            bucket = served.outputs[BUCKET_OUTPUT]
        elif bucket is None:
            bucket = await _bucket_of_stack(session, stack, endpoint)
        async with session.create_client("s3", **client_kwargs) as s3:
            if args.as_of is not None:
                found = await full_run_as_of(s3, bucket, args.as_of)
                if found is None:
                    raise CliError(
                        f"no successful full run started on or before {args.as_of:%Y-%m-%d %H:%M} UTC"
                    )
                run = found["run"]["id"]
            prefix = run_prefix(run)
            raw = await _get(s3, bucket, f"{prefix}stats.json")
            if raw is None:
                what = "no full run has finished yet" if run == "latest" else f"no run {run!r}"
                raise CliError(f"{what} in s3://{bucket}/ ({prefix}stats.json is missing)")
            stats = _parse(raw, f"s3://{bucket}/{prefix}stats.json")
            # The lists are stored under the run's own prefix (latest/ holds only stats and report).
            run_dir = f"runs/{stats['run']['id']}/"
            html = await _get(s3, bucket, f"{prefix}report.html")
            fetched = Fetched(stats, html)
            if args.out is not None:
                for listed in (stats.get("findings") or {}).get("lists", {}).values():
                    for name in (listed["csv"], listed["ndjson"]):
                        body = await _get(s3, bucket, f"{run_dir}{name}")
                        if body is not None:
                            fetched.files[name] = body
            if window is not None:
                fetched.window = await _window(s3, bucket, run_dir, window)
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"AWS refused the request: {exc}") from exc
    return fetched


async def _window(
    s3: S3Client, bucket: str, run_dir: str, window: tuple[datetime, datetime]
) -> dict[str, Any]:
    raw = await _get(s3, bucket, f"{run_dir}remediations.ndjson.gz")
    if raw is None:
        raise CliError(f"the run has no remediation snapshot ({run_dir}remediations.ndjson.gz)")
    rows = (orjson.loads(line) for line in gzip.decompress(raw).splitlines() if line.strip())
    return remediation_window(rows, *window)


def _parse(raw: bytes, where: str) -> dict[str, Any]:
    try:
        parsed: dict[str, Any] = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CliError(f"{where} is not JSON: {exc}") from exc
    return parsed


async def _bucket_of_stack(session: Any, stack: str | None, endpoint: str | None) -> str:
    if not stack:
        raise CliError(f"say which stack: --stack NAME or ${STACK_ENV} (or give --bucket NAME)")
    async with session.create_client("cloudformation", endpoint_url=endpoint) as cfn:
        try:
            response = await cfn.describe_stacks(StackName=stack)
        except ClientError as exc:
            raise CliError(f"stack {stack!r} not found: {exc.response['Error'].get('Message', exc)}") from exc
    for output in response["Stacks"][0].get("Outputs", []):
        if output.get("OutputKey") == BUCKET_OUTPUT and output.get("OutputValue"):
            return str(output["OutputValue"])
    raise CliError(f"stack {stack!r} has no {BUCKET_OUTPUT} output; is it a vuln-sync stack?")


async def _get(s3: S3Client, bucket: str, key: str) -> bytes | None:
    try:
        response = await s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return None
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise CliError(f"bucket {bucket!r} does not exist") from exc
        raise
    async with response["Body"] as body:
        data: bytes = await body.read()
    return data


def headline_rows(stats: dict[str, Any]) -> list[list[str]]:
    """The headline table: one row per severity and a total row, as display strings."""
    vulns, rem, trend = stats["vulnerabilities"], stats["remediations"], stats["trend"]
    buckets = vulns["sla"]["by_severity"]

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"

    rows = []
    for sev in SEVERITIES:
        bucket = buckets.get(sev, {})
        rows.append(
            [
                sev.title(),
                cell(vulns["by_severity"].get(sev, 0)),
                cell(bucket.get("overdue", 0)),
                cell(bucket.get("due_7d", 0)),
                cell(bucket.get("due_30d", 0)),
                cell(rem["mttr_days"].get(sev, {}).get("p50")),
                cell(None if trend["new"] is None else trend["new"].get(sev)),
                cell(None if trend["resolved"] is None else trend["resolved"].get(sev)),
            ]
        )
    rows.append(
        [
            "Total",
            cell(vulns["active"]),
            cell(vulns["sla"]["overdue"]),
            cell(vulns["sla"]["due_7d"]),
            cell(vulns["sla"]["due_30d"]),
            "",
            cell(None if trend["new"] is None else trend["new"]["total"]),
            cell(None if trend["resolved"] is None else trend["resolved"]["total"]),
        ]
    )
    return rows


HEADERS = ["Severity", "Open", "Overdue", "Due 7d", "Due 30d", "MTTR p50 (d)", "New", "Resolved"]


def print_headline(stats: dict[str, Any], *, saved_to: Path | None) -> None:
    """Print the run line, the headline table (rich when installed, plain text otherwise)."""
    run = stats["run"]
    title = f"run {run['id']} · scope {stats.get('scope', '?')} · as of {run['as_of']}"
    rows = headline_rows(stats)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
        print(title)
        for line in (HEADERS, *rows):
            cells = zip(line, widths, strict=True)
            print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells)))
    else:
        table = Table(title=title, title_justify="left")
        for i, header in enumerate(HEADERS):
            table.add_column(header, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row, end_section=row[0] == SEVERITIES[-1].title())
        Console().print(table)
    if saved_to is not None:
        print(f"saved {saved_to / 'stats.json'} and {saved_to / 'report.html'}")


WINDOW_HEADERS = ["Severity", "Fixed", "On time", "Late", "No SLA", "On-time %", "MTTR p50", "p90", "mean"]


def print_window(window: dict[str, Any]) -> None:
    """Print the remediation window's table (plain text: it is for reading and pasting)."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"

    rows = []
    for name, item in [*window["by_severity"].items(), ("Total", window["total"])]:
        mttr = item["mttr_days"]
        counts = [cell(item[k]) for k in ("remediated", "on_time", "late", "no_sla", "on_time_percent")]
        rows.append([name.title(), *counts, cell(mttr["p50"]), cell(mttr["p90"]), cell(mttr["mean"])])
    print(f"remediations fixed from {window['from']} to {window['to']} (MTTR in days)")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(WINDOW_HEADERS)]
    for line in (WINDOW_HEADERS, *rows):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
