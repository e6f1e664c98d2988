"""The history index: one small JSON object per scope under `history/`, listing its successful runs.

Each entry names the run's compact artefacts (active vulnerability ids with severity; the merged
remediation snapshot) so the next run of the scope can compute its trend and merge its remediations,
and carries the headline numbers the report's trend chart draws. One object per scope because runs of
one scope never overlap (the scheduler keeps one run per scope going), so its read-modify-write has a
single writer; runs of different scopes write different objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

HISTORY_VERSION = 1
MAX_ENTRIES = 90  # about three months of daily runs: enough for the trend chart, still a small object


def history_key(scope: str) -> str:
    """S3 key of the scope's history index (the scope is percent-encoded: any string is a valid scope)."""
    return f"history/scope={quote(scope, safe='')}.json"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One successful run of a scope, as the next run and the report need it."""

    run_id: str
    started_at: str
    finished_at: str
    active_key: str
    remediations_key: str
    headline: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> HistoryEntry:
        return cls(
            run_id=str(raw["run_id"]),
            started_at=str(raw["started_at"]),
            finished_at=str(raw["finished_at"]),
            active_key=str(raw["active_key"]),
            remediations_key=str(raw["remediations_key"]),
            headline=dict(raw.get("headline") or {}),
        )


@dataclass(slots=True)
class History:
    """The runs of one scope, oldest first."""

    scope: str
    entries: list[HistoryEntry] = field(default_factory=list)

    def previous(self, run_id: str, started_at: str) -> HistoryEntry | None:
        """The latest run that started before `started_at` other than `run_id` itself (retry-safe)."""
        earlier = [e for e in self.entries if e.run_id != run_id and e.started_at < started_at]
        return earlier[-1] if earlier else None

    def record(self, entry: HistoryEntry) -> None:
        """Add or replace `entry` (a retried Finalize replaces its own entry), keep order and the cap."""
        kept = [e for e in self.entries if e.run_id != entry.run_id]
        kept.append(entry)
        kept.sort(key=lambda e: (e.started_at, e.run_id))
        self.entries = kept[-MAX_ENTRIES:]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": HISTORY_VERSION,
                "scope": self.scope,
                "runs": [asdict(entry) for entry in self.entries],
            },
            option=orjson.OPT_INDENT_2,
        )


async def load_history(s3: S3Client, bucket: str, scope: str) -> History:
    """The scope's history; empty when the scope has none yet. Raises ValueError for a corrupt index."""
    try:
        response = await s3.get_object(Bucket=bucket, Key=history_key(scope))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return History(scope)
        raise
    async with response["Body"] as body:
        raw = orjson.loads(await body.read())
    try:
        return History(scope, [HistoryEntry.from_json(item) for item in raw["runs"]])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{history_key(scope)} is not a history index: {exc}") from exc


async def save_history(s3: S3Client, bucket: str, history: History) -> None:
    """Write the scope's history index."""
    await s3.put_object(
        Bucket=bucket,
        Key=history_key(history.scope),
        Body=history.to_json(),
        ContentType="application/json",
    )
