"""Finding lists as files people open: CSV (RFC 4180, UTF-8, header row) and NDJSON, streamed to S3.

A list can hold most of a million findings, so rows are encoded a batch at a time and uploaded as the
parts of a multipart upload; memory holds one part, never a whole file.

CSV cells: empty for null, `true`/`false`, CVE ids separated by spaces, dates `YYYY-MM-DD`. A text cell
that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return)
is prefixed with `'` (OWASP's advice against CSV injection); NDJSON keeps every value as it is.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

CSV_CONTENT_TYPE = "text/csv; charset=utf-8; header=present"
NDJSON_CONTENT_TYPE = "application/x-ndjson"
GZIP_CONTENT_TYPE = "application/gzip"
PART_BYTES = 8 << 20  # S3's minimum part is 5 MiB
_BATCH = 2000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """One value as its CSV text (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = " ".join(str(item) for item in value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_chunks(columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """The CSV file of `rows` (header first), as UTF-8 chunks of about `_BATCH` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    pending = 1
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in columns])
        pending += 1
        if pending >= _BATCH:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if pending:
        yield buffer.getvalue().encode()


def ndjson_chunks(columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """One JSON object a line, keys in `columns` order, in chunks of about `_BATCH` rows."""
    batch: list[bytes] = []
    for row in rows:
        batch.append(orjson.dumps({column: row.get(column) for column in columns}))
        if len(batch) >= _BATCH:
            batch.append(b"")
            yield b"\n".join(batch)
            batch = []
    if batch:
        batch.append(b"")
        yield b"\n".join(batch)


def gzip_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """`chunks` gzip-compressed as they come."""
    deflater = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = deflater.compress(chunk)
        if out:
            yield out
    yield deflater.flush()


async def upload_stream(
    s3: S3Client, bucket: str, key: str, chunks: Iterable[bytes], content_type: str
) -> int:
    """Store the concatenated `chunks` at `key` with one multipart upload (parts of PART_BYTES; a
    small file is its single, last part), so memory holds one part. Returns the object's size.

    Always multipart, so one code path is exercised by every run (and its IAM needs are s3:PutObject
    alone). An upload cut short by a crash is left incomplete: the object never appears, a retried
    Finalize uploads it again, and the bucket's AbortIncompleteMultipartUpload rule removes the parts.
    """
    created = await s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType=content_type)
    upload_id = created["UploadId"]
    parts: list[dict[str, Any]] = []
    buffer = bytearray()
    size = 0
    for chunk in chunks:
        buffer += chunk
        size += len(chunk)
        if len(buffer) >= PART_BYTES:
            parts.append(await _part(s3, bucket, key, upload_id, len(parts) + 1, bytes(buffer)))
            buffer.clear()
    if buffer or not parts:
        parts.append(await _part(s3, bucket, key, upload_id, len(parts) + 1, bytes(buffer)))
    await s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
    )
    return size


async def _part(
    s3: S3Client, bucket: str, key: str, upload_id: str, number: int, body: bytes
) -> dict[str, Any]:
    response = await s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
    return {"ETag": response["ETag"], "PartNumber": number}
