"""Every record once per run: the last line of defence behind the joins of run/walk.py.

Where two ranges of a changing list could not be joined exactly, both may have written one record.
Before the statistics are computed, Finalize reads the run's raw objects in key order, keeps each id's
first copy, and rewrites only the objects that held a later copy, so `raw/` and `stats.json` count
every record once and agree with the manifest.
"""

from __future__ import annotations

import gzip
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import orjson

from vanta_vuln_sync.store.storage import NdjsonGzipWriter, put_raw

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


async def dedupe_objects(
    s3: S3Client, bucket: str, objects: list[tuple[str, dict[str, Any]]]
) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """`objects` as (resource, {"key", "records"}) with every id's later copies removed from S3; an
    object left empty is deleted and dropped. Returns the objects and how many copies were removed."""
    seen: dict[str, set[str]] = defaultdict(set)
    kept: list[tuple[str, dict[str, Any]]] = []
    removed = 0
    for resource, obj in sorted(objects, key=lambda item: (item[0], str(item[1]["key"]))):
        key = str(obj["key"])
        try:
            reply = await s3.get_object(Bucket=bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            continue  # emptied and deleted by an earlier delivery of this Finalize
        async with reply["Body"] as body:
            lines = gzip.decompress(await body.read()).splitlines()
        ids = seen[resource]
        unique: list[dict[str, Any]] = []
        for line in lines:
            record = orjson.loads(line)
            rid = record.get("id") if isinstance(record, dict) else None
            if isinstance(rid, str):
                if rid in ids:
                    continue
                ids.add(rid)
            unique.append(record)
        if len(unique) == len(lines):
            kept.append((resource, {**obj, "records": len(unique)}))
            continue
        removed += len(lines) - len(unique)
        if unique:
            writer = NdjsonGzipWriter()
            writer.write(unique)
            await put_raw(s3, bucket, key, writer.finish())
            kept.append((resource, {**obj, "records": len(unique)}))
        else:
            await s3.delete_object(Bucket=bucket, Key=key)
    return kept, removed
