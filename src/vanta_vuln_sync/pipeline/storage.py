"""The run's objects in the data bucket: raw records (gzip NDJSON) and the run manifest.

Raw keys are deterministic per range step
(`raw/resource=<resource>/dt=<run date>/run=<run_id>/<shard>-<seq:05d>.ndjson.gz`), so a retried step
overwrites its own object instead of adding a second copy: what a run wrote is exactly the objects its
committed steps list in the state table.
"""

from __future__ import annotations

import gzip
import io
from typing import TYPE_CHECKING, Any

import orjson

from vanta_vuln_sync.messages import run_id_date

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


def raw_key(resource: str, run_id: str, shard: str, seq: int) -> str:
    """The S3 key of one range step's records (Hive-style partitions for Athena)."""
    return f"raw/resource={resource}/dt={run_id_date(run_id)}/run={run_id}/{shard}-{seq:05d}.ndjson.gz"


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


async def put_raw(s3: S3Client, bucket: str, key: str, body: bytes) -> None:
    """Write one step's object (overwriting a previous attempt's)."""
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
