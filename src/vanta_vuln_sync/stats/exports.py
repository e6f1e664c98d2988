"""Finding lists as files people open: CSV (RFC 4180, UTF-8, header row) and NDJSON, streamed to S3.

A list can hold most of a million findings, so rows are encoded a batch at a time and uploaded as the
parts of a multipart upload (a list smaller than a part as one PutObject); memory holds one part, never
a whole file.

CSV cells: empty for null, `true`/`false`, CVE ids separated by spaces, dates `YYYY-MM-DD`. A text cell
that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return)
is prefixed with `'` (OWASP's advice against CSV injection); NDJSON keeps every value as it is.
"""

from __future__ import annotations

import re
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
_NEEDS_QUOTES = re.compile(r'[",\r\n]')


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


def csv_header(columns: tuple[str, ...]) -> bytes:
    """The CSV header line of `columns`."""
    return csv_rows([{column: column for column in columns}])


def csv_rows(rows: list[dict[str, Any]]) -> bytes:
    """CSV lines (RFC 4180: a cell holding `"`, `,`, CR or LF is quoted, quotes doubled; CRLF) of list
    rows, cells in each row's key order (see `csv_cell`), UTF-8. Written out by hand rather than with
    the csv module: the common cell types inline make the lists' largest cost about half as large."""
    lines = []
    for row in rows:
        cells = []
        for value in row.values():
            kind = type(value)
            if kind is str:
                text = "'" + value if value.startswith(_FORMULA_START) else value
            elif value is None:
                cells.append("")
                continue
            elif kind is bool:
                cells.append("true" if value else "false")
                continue
            else:
                text = csv_cell(value)
            cells.append('"' + text.replace('"', '""') + '"' if _NEEDS_QUOTES.search(text) else text)
        lines.append(",".join(cells))
    lines.append("")
    return "\r\n".join(lines).encode()


def ndjson_lines(rows: list[dict[str, Any]]) -> bytes:
    """NDJSON lines of `rows`."""
    return b"".join([orjson.dumps(row) + b"\n" for row in rows])


def json_lines_chunks(values: Iterable[Any]) -> Iterator[bytes]:
    """One JSON value a line, in chunks of about `_BATCH` values."""
    for batch in _batches(values):
        yield b"".join([orjson.dumps(value) + b"\n" for value in batch])


def _batches(rows: Iterable[Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def gzip_chunks(chunks: Iterable[bytes], level: int = 6) -> Iterator[bytes]:
    """`chunks` gzip-compressed as they come."""
    deflater = zlib.compressobj(level, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = deflater.compress(chunk)
        if out:
            yield out
    yield deflater.flush()


class MultipartWriter:
    """One S3 object written as the parts of a multipart upload: `write` buffers and uploads a part
    whenever PART_BYTES are pending, `close` uploads the rest. A file that never filled a part is one
    PutObject at `close` (a multipart upload of it took three requests, and a run writes a dozen lists,
    most of them small: a tenth of a 300-page sync's cost floor). Either way its IAM needs are
    s3:PutObject alone. An upload cut short by a crash is left incomplete: the object never appears, a
    retried Finalize uploads it again, and the bucket's AbortIncompleteMultipartUpload rule removes the
    parts.
    """

    def __init__(self, s3: S3Client, bucket: str, key: str, content_type: str) -> None:
        self._s3, self._bucket, self._key, self._content_type = s3, bucket, key, content_type
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._buffer = bytearray()
        self.size = 0

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= PART_BYTES:
            await self._flush()

    async def close(self) -> None:
        if not self._parts:
            await self._s3.put_object(
                Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer), ContentType=self._content_type
            )
            return
        if self._buffer:
            await self._flush()
        await self._s3.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=await self._upload(),
            MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
        )

    async def _upload(self) -> str:
        if self._upload_id is None:
            created = await self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, ContentType=self._content_type
            )
            self._upload_id = created["UploadId"]
        return self._upload_id

    async def _flush(self) -> None:
        number = len(self._parts) + 1
        response = await self._s3.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=await self._upload(),
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"ETag": response["ETag"], "PartNumber": number})
        self._buffer.clear()


async def upload_stream(
    s3: S3Client, bucket: str, key: str, chunks: Iterable[bytes], content_type: str
) -> int:
    """Store the concatenated `chunks` at `key` through a MultipartWriter (memory holds one part).
    Returns the object's size in bytes."""
    writer = MultipartWriter(s3, bucket, key, content_type)
    for chunk in chunks:
        await writer.write(chunk)
    await writer.close()
    return writer.size
