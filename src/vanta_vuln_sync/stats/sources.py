"""Where raw objects are read from: any async byte stream, so the statistics never care whether the
bytes come from S3 (Finalize) or a local directory (the benchmark, separating compute from I/O).

Objects are gzip NDJSON (one Vanta record a line). They are decompressed and split incrementally:
memory holds one chunk and one partial line, never a whole object.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

CHUNK_BYTES = 1 << 20


class RawObjectError(ValueError):
    """A raw object is not gzip NDJSON of JSON objects; the message names the object and the line."""


class MissingObjectError(LookupError):
    """The named object does not exist (raised by every ByteSource alike)."""


class ByteSource(Protocol):
    """Opens a named object as an async stream of byte chunks."""

    def chunks(self, key: str) -> AsyncIterator[bytes]: ...


class S3Source:
    """Objects of one S3 bucket, streamed with GetObject (never read whole into memory)."""

    def __init__(self, s3: S3Client, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    async def chunks(self, key: str) -> AsyncIterator[bytes]:
        try:
            response = await self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                raise MissingObjectError(f"s3://{self._bucket}/{key} does not exist") from exc
            raise
        async with response["Body"] as body:
            while chunk := await body.read(CHUNK_BYTES):
                yield chunk


class DirectorySource:
    """Objects as files under a directory (`key` is the relative path)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    async def chunks(self, key: str) -> AsyncIterator[bytes]:
        path = self._root / key
        if not path.is_file():
            raise MissingObjectError(f"{path} does not exist")
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk


async def gunzip_line_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """The non-empty lines of a gzip stream (concatenated gzip members included), a batch per chunk
    read, decompressed lazily. Batches keep the per-line cost to a plain loop: no await per record."""
    inflater = zlib.decompressobj(wbits=31)
    in_member = False
    pending = b""
    async for chunk in chunks:
        data = chunk
        while data:
            in_member = True
            pending += inflater.decompress(data)
            data = inflater.unused_data
            if inflater.eof:  # a member ended; another may follow (concatenated gzip is valid gzip)
                inflater = zlib.decompressobj(wbits=31)
                in_member = False
            *lines, pending = pending.split(b"\n")
            batch = [line for line in lines if line.strip()]
            if batch:
                yield batch
    if in_member:
        raise zlib.error("truncated gzip stream")
    if pending.strip():
        yield [pending]


async def iter_record_batches(source: ByteSource, key: str) -> AsyncIterator[list[dict[str, Any]]]:
    """The JSON records of one gzip NDJSON object, in batches; raises RawObjectError naming the object
    and the line when it is not gzip NDJSON of JSON objects."""
    number = 0
    try:
        async for lines in gunzip_line_batches(source.chunks(key)):
            batch = []
            for line in lines:
                number += 1
                record = orjson.loads(line)
                if not isinstance(record, dict):
                    raise RawObjectError(f"{key}: line {number} is not a JSON object")
                batch.append(record)
            yield batch
    except orjson.JSONDecodeError as exc:
        raise RawObjectError(f"{key}: line {number} is not valid JSON ({exc})") from exc
    except zlib.error as exc:
        raise RawObjectError(f"{key}: not a gzip object ({exc})") from exc


async def iter_records(source: ByteSource, key: str) -> AsyncIterator[dict[str, Any]]:
    """The JSON records of one gzip NDJSON object, one at a time (see iter_record_batches)."""
    async for batch in iter_record_batches(source, key):
        for record in batch:
            yield record
