"""Compact per-run artefacts as gzip NDJSON: encoded incrementally, read back by streaming."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson

from .sources import ByteSource, gunzip_line_batches


def gzip_ndjson(rows: Iterable[Any]) -> bytes:
    """One JSON value a line, gzip-compressed as it goes (only the compressed bytes are held)."""
    deflater = zlib.compressobj(6, zlib.DEFLATED, 31)
    parts: list[bytes] = []
    batch: list[bytes] = []
    for row in rows:
        batch.append(orjson.dumps(row))
        if len(batch) >= 4096:
            batch.append(b"")
            parts.append(deflater.compress(b"\n".join(batch)))
            batch = []
    if batch:
        batch.append(b"")
        parts.append(deflater.compress(b"\n".join(batch)))
    parts.append(deflater.flush())
    return b"".join(parts)


async def read_ndjson(source: ByteSource, key: str) -> AsyncIterator[Any]:
    """The JSON values of a gzip NDJSON artefact, one at a time."""
    async for lines in gunzip_line_batches(source.chunks(key)):
        for line in lines:
            yield orjson.loads(line)
