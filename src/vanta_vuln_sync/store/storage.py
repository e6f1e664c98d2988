"""The run's objects in the data bucket: raw records (gzip NDJSON) and the run manifest.

Raw keys name the range step and the delivery that wrote them
(`raw/resource=<resource>/dt=<run date>/run=<run_id>/<shard>-<seq:05d>-<attempt>.ndjson.gz`): two
deliveries of one step never write the same object, so a late duplicate cannot overwrite the object
another delivery committed (on a list that changes, the two would hold different records). What a run
wrote is exactly the objects its committed steps list in the state table; a delivery that loses the
commit deletes its object, and Finalize deletes any left by a crash (`delete_uncommitted`).
"""

from __future__ import annotations

import gzip
import io
from typing import TYPE_CHECKING, Any

import orjson

from vanta_vuln_sync.messages import run_id_date

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


def raw_prefix(resource: str, run_id: str) -> str:
    """Where a run's raw objects of one resource live (Hive-style partitions for Athena)."""
    return f"raw/resource={resource}/dt={run_id_date(run_id)}/run={run_id}/"


def raw_key(resource: str, run_id: str, shard: str, seq: int, attempt: str) -> str:
    """The S3 key of one delivery (`attempt`, a few random hex digits) of one range step's records."""
    return f"{raw_prefix(resource, run_id)}{shard}-{seq:05d}-{attempt}.ndjson.gz"


def manifest_key(run_id: str) -> str:
    return f"runs/{run_id}/manifest.json"


class NdjsonGzipWriter:
    """Compresses records as they arrive, so a step holds only compressed bytes in memory."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        # mtime=0: the same records give the same bytes, so a retried step writes an identical object.
        self._gzip = gzip.GzipFile(fileobj=self._buffer, mode="wb", compresslevel=6, mtime=0)
        self.records = 0

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append records, one JSON object a line, exactly as Vanta sent them."""
        if records:
            self._gzip.write(b"".join(orjson.dumps(record) + b"\n" for record in records))
            self.records += len(records)

    def finish(self) -> bytes:
        """The complete gzip object; the writer cannot be used afterwards."""
        self._gzip.close()
        return self._buffer.getvalue()


async def delete_uncommitted(s3: S3Client, bucket: str, prefix: str, committed: set[str]) -> int:
    """Delete the objects under `prefix` that no committed step lists (left by deliveries that crashed
    between writing and losing the commit); returns how many. Athena reads every object under raw/."""
    stray: list[str] = []
    token: str | None = None
    while True:
        listing = await (
            s3.list_objects_v2(Bucket=bucket, Prefix=prefix, ContinuationToken=token)
            if token
            else s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        )
        stray += [o["Key"] for o in listing.get("Contents", []) if o["Key"] not in committed]
        token = listing.get("NextContinuationToken")
        if not token:
            break
    for key in stray:
        await s3.delete_object(Bucket=bucket, Key=key)
    return len(stray)


async def put_raw(s3: S3Client, bucket: str, key: str, body: bytes) -> None:
    """Write one step's object."""
    await s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/gzip",
    )


async def put_manifest(s3: S3Client, bucket: str, run_id: str, manifest: dict[str, Any]) -> str:
    """Write the run manifest; returns its key."""
    key = manifest_key(run_id)
    body = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    await s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return key
