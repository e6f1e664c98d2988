"""The morning digest: one short plain-text message per successful full run, to an opt-in SNS topic.

It says the headline numbers with their change since the previous run, the new critical and high
findings, the findings that became overdue since the previous run, the exceptions that expire within
14 days, and a presigned link (7 days) to the run's report.html. Everything comes from the stats.json
dict Finalize already has (its `findings.digest` picks) and the scope's history; nothing is re-read.

A presigned URL lives at most as long as the credentials that signed it: signed by the Lambda's role
(temporary credentials) it stops working when that session ends, possibly before 7 days. The message
therefore also says how to fetch the report with `vuln-sync report`.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from vanta_vuln_sync.aws import new_session

from .findings_section import list_files
from .history import load_history
from .model import FULL_SCOPE, run_prefix

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

logger = logging.getLogger(__name__)

LINK_SECONDS = 7 * 24 * 3600  # SigV4's longest presigned URL
SUBJECT_LIMIT = 100  # SNS: ASCII, no line breaks, at most 100 characters


async def send_digest(
    s3: S3Client,
    bucket: str,
    stats: dict[str, Any],
    *,
    topic_arn: str | None,
    sns: Any | None = None,  # an aiobotocore SNS client (types-aiobotocore-sns is not installed)
) -> bool:
    """Publish the digest of the run `stats` describes to `topic_arn`; True when it was published.

    Does nothing (False) when no topic is configured or the run's scope is not the full one. A refusal
    by S3 or SNS is logged and returns False: the run has succeeded and stays succeeded. `sns` is
    opened here (and closed) when not given, and so is a SigV4 signer for the link (pointed where `s3`
    points; botocore would otherwise presign with SigV2, which newer regions refuse).
    """
    if not topic_arn or stats.get("scope") != FULL_SCOPE:
        return False
    try:
        async with AsyncExitStack() as stack:
            session = new_session()
            signer = await stack.enter_async_context(
                session.create_client(
                    "s3",
                    endpoint_url=s3.meta.endpoint_url,
                    region_name=s3.meta.region_name,
                    config=AioConfig(signature_version="s3v4"),
                )
            )
            publisher: Any = sns or await stack.enter_async_context(session.create_client("sns"))
            previous = await _previous_headline(s3, bucket, stats)
            url = await signer.generate_presigned_url(
                "get_object",
                Params={"Bucket": bucket, "Key": f"{run_prefix(stats['run']['id'])}report.html"},
                ExpiresIn=LINK_SECONDS,
            )
            subject, body = digest_message(stats, previous, report_url=url, bucket=bucket)
            await publisher.publish(TopicArn=topic_arn, Subject=subject, Message=body)
    except (BotoCoreError, ClientError) as exc:
        logger.warning("digest not sent: %s", exc)
        return False
    return True


async def _previous_headline(s3: S3Client, bucket: str, stats: dict[str, Any]) -> dict[str, Any] | None:
    previous_run = stats["trend"].get("previous_run")
    if previous_run is None:
        return None
    history = await load_history(s3, bucket, stats["scope"])
    return next((e.headline for e in history.entries if e.run_id == previous_run), None)


def digest_message(
    stats: dict[str, Any], previous: dict[str, Any] | None, *, report_url: str, bucket: str
) -> tuple[str, str]:
    """(subject, body) of the digest: plain text, lines short enough for any mail client."""
    run, vulns = stats["run"], stats["vulnerabilities"]
    day = datetime.fromisoformat(run["as_of"]).strftime("%Y-%m-%d")
    now = {
        "active": vulns["active"],
        "overdue": vulns["sla"]["overdue"],
        "due_7d": vulns["sla"]["due_7d"],
        "critical": vulns["by_severity"].get("CRITICAL", 0),
    }
    before = previous or {}
    then = {
        "active": before.get("active"),
        "overdue": before.get("overdue"),
        "due_7d": before.get("due_7d"),
        "critical": (before.get("by_severity") or {}).get("CRITICAL"),
    }
    subject = (
        f"Vulnerabilities {day}: {now['active']:,} open{_delta(now['active'], then['active'])}, "
        f"{now['overdue']:,} overdue{_delta(now['overdue'], then['overdue'])}"
    )
    subject = subject.encode("ascii", "replace").decode()[:SUBJECT_LIMIT]
    trend = stats["trend"]
    lines = [
        f"Vanta vulnerability digest, scope {stats['scope']}, as of {run['as_of']}",
        "",
        *(
            f"  {label:<14}{now[key]:>9,}{_delta(now[key], then[key])}"
            for key, label in (
                ("active", "Open"),
                ("overdue", "Overdue"),
                ("due_7d", "Due in 7 days"),
                ("critical", "Open critical"),
            )
        ),
    ]
    if trend.get("new") is not None:
        new, resolved = trend["new"]["total"], trend["resolved"]["total"]
        lines.append(f"  Since the previous run: {new:,} new, {resolved:,} resolved")
    else:
        lines.append("  First run of this scope: changes are reported from the next run on.")
    picks = stats["findings"]["digest"]
    lists = stats["findings"]["lists"]
    lines += _section("New critical and high findings", picks.get("new_critical_high"), "new" in lists, "new")
    lines += _section(
        "Became overdue since the previous run", picks.get("newly_overdue"), True, "overdue", due=True
    )
    lines += _section(
        "Exceptions expiring within 14 days", picks.get("expiring_exceptions"), True, "exceptions", until=True
    )
    prefix = run_prefix(run["id"])
    lines += [
        "",
        "Full report (link valid up to 7 days):",
        report_url,
        "",
        f"All lists (CSV and NDJSON): s3://{bucket}/{prefix}findings/",
        f"Without AWS console access: vuln-sync report --run {run['id']} --out DIR",
    ]
    return subject, "\n".join(lines) + "\n"


def _delta(now: int, then: int | None) -> str:
    if then is None:
        return ""
    change = now - then
    return " (no change)" if change == 0 else f" ({change:+,})"


def _section(
    title: str,
    pick: dict[str, Any] | None,
    applies: bool,
    list_name: str,
    *,
    due: bool = False,
    until: bool = False,
) -> list[str]:
    lines = ["", f"{title.upper()}"]
    if pick is None or not applies:
        return [*lines, "  (no previous run to compare with)"]
    lines[-1] += f" ({pick['count']:,})"
    if not pick["count"]:
        return [*lines, "  none"]
    for row in pick["rows"]:
        when = f"until {row.get('deactivated_until')}" if until else f"due {row.get('due_date') or '-'}"
        if due and row.get("days_overdue") is not None:
            when += f", {row['days_overdue']} d late"
        asset = row.get("asset_name") or row.get("asset_id") or "?"
        lines.append(
            f"  {row.get('severity') or '?'!s:<8} {row.get('name') or row['id']} on {asset} "
            f"[{row.get('owner')}] {when}"
        )
        if row.get("vanta_url"):
            lines.append(f"           {row['vanta_url']}")
    if pick["count"] > len(pick["rows"]):
        lines.append(f"  ... and {pick['count'] - len(pick['rows']):,} more in {list_files(list_name)[0]}")
    return lines
