"""`vuln-sync report --run RUN|latest`: fetch a run's stats.json and report.html from the data bucket
of a deployed stack and print the headline numbers."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from vanta_vuln_sync.cli import CliError
from vanta_vuln_sync.stats.model import SEVERITIES

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

STACK_ENV = "VULN_SYNC_STACK"
BUCKET_OUTPUT = "DataBucketName"
# Run ids are ours (scheduler-made), so anything else is a typo or an attempt at another key.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")

EXAMPLES = f"""\
examples:
  vuln-sync report --run latest
  vuln-sync report --run latest --out out/ --stack vuln-sync
  vuln-sync report --run 20261126T060000Z-3f9a --bucket my-vuln-sync-data

The bucket comes from --bucket, or from the {BUCKET_OUTPUT} output of the CloudFormation stack named by
--stack or ${STACK_ENV}. AWS credentials and region come from the usual AWS environment
(AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `report` to the `vuln-sync` command line."""
    parser = subparsers.add_parser(
        "report",
        help="fetch a run's statistics and HTML report and print the headline numbers",
        description="Fetch stats.json and report.html of a run (or the latest full run) from the "
        "data bucket and print the headline numbers per severity.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run", required=True, metavar="RUN|latest", help="a run id, or `latest`")
    parser.add_argument("--out", type=Path, metavar="DIR", help="save stats.json and report.html here")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--stack", metavar="NAME", help=f"the deployed stack (default: ${STACK_ENV})")
    target.add_argument("--bucket", metavar="NAME", help="the data bucket (skips the stack lookup)")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """The `report` command; raises CliError for anything the user can fix."""
    prefix = run_prefix(args.run)
    stats, html = asyncio.run(_fetch(args.stack, args.bucket, prefix, args.run))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "stats.json").write_bytes(orjson.dumps(stats, option=orjson.OPT_INDENT_2))
        if html is not None:
            (args.out / "report.html").write_bytes(html)
    print_headline(stats, saved_to=args.out if args.out is not None else None)
    return 0


def run_prefix(run: str) -> str:
    """The key prefix of `run` (`latest/` or `runs/<id>/`); raises CliError for a malformed id."""
    if run == "latest":
        return "latest/"
    if not RUN_ID.fullmatch(run):
        raise CliError(f"{run!r} is not a run id (letters, digits and ._:+- only), nor `latest`")
    return f"runs/{run}/"


async def _fetch(
    stack: str | None, bucket: str | None, prefix: str, run: str
) -> tuple[dict[str, Any], bytes | None]:
    session = get_session()
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    try:
        if bucket is None:
            bucket = await _bucket_of_stack(session, stack or os.environ.get(STACK_ENV), endpoint)
        async with session.create_client("s3", endpoint_url=endpoint) as s3:
            raw = await _get(s3, bucket, f"{prefix}stats.json")
            if raw is None:
                what = "no full run has finished yet" if run == "latest" else f"no run {run!r}"
                raise CliError(f"{what} in s3://{bucket}/ ({prefix}stats.json is missing)")
            html = await _get(s3, bucket, f"{prefix}report.html")
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"AWS refused the request: {exc}") from exc
    try:
        stats = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CliError(f"s3://{bucket}/{prefix}stats.json is not JSON: {exc}") from exc
    return stats, html


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
