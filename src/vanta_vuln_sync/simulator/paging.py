"""Cursor pagination: `arrayconnection` cursors (Relay offsets, forgeable) or opaque server-issued ones."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vanta_vuln_sync.simulator.config import CursorStyle

PREFIX = "arrayconnection:"


class CursorError(ValueError):
    """A `pageCursor` this server did not issue for these filters (answered with 400)."""


def encode_offset(offset: int) -> str:
    """The Relay array-connection cursor naming item `offset`: base64 of `arrayconnection:<offset>`."""
    return base64.b64encode(f"{PREFIX}{offset}".encode()).decode()


def decode_offset(cursor: str) -> int:
    """The offset an array-connection cursor names; raises CursorError when it is not one."""
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise CursorError("pageCursor is not a valid cursor") from None
    if not text.startswith(PREFIX) or not text[len(PREFIX) :].isdigit():
        raise CursorError("pageCursor is not a valid cursor")
    return int(text[len(PREFIX) :])


class CursorBook:
    """Issues and checks cursors in the configured style.

    Opaque cursors are an HMAC of (filters, offset) under a key made at startup, remembered in memory
    with what they name: unguessable, and valid only with the filters they were issued for. (Array-
    connection cursors are valid with any filters: the offset is simply read in the filtered list.)
    """

    MAX_REMEMBERED = 2_000_000  # about 400 MB at worst; the oldest cursors are forgotten first

    def __init__(self, style: CursorStyle) -> None:
        self.style: CursorStyle = style
        self._key = secrets.token_bytes(32)
        self._issued: dict[str, tuple[str, int]] = {}

    def encode(self, filters: str, offset: int) -> str:
        if self.style == "arrayconnection":
            return encode_offset(offset)
        digest = hmac.new(self._key, f"{filters}\x00{offset}".encode(), hashlib.sha256).digest()
        cursor = base64.urlsafe_b64encode(digest[:18]).decode()
        if cursor not in self._issued:
            if len(self._issued) >= self.MAX_REMEMBERED:
                del self._issued[next(iter(self._issued))]
            self._issued[cursor] = (filters, offset)
        return cursor

    def decode(self, filters: str, cursor: str) -> int:
        """The offset `cursor` names; raises CursorError for a forged cursor or one of other filters."""
        if self.style == "arrayconnection":
            return decode_offset(cursor)
        issued = self._issued.get(cursor)
        if issued is None:
            raise CursorError("pageCursor was not issued by this server")
        if issued[0] != filters:
            raise CursorError("pageCursor was issued for different filters")
        return issued[1]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a selection: which rows, and the `pageInfo` Vanta sends with them."""

    rows: Sequence[int]
    page_info: dict[str, Any]


def paginate(rows: Sequence[int], *, after: int | None, size: int, book: CursorBook, filters: str) -> Page:
    """The page that starts after item `after` (or at the start): Relay connection semantics."""
    start = 0 if after is None else after + 1
    chosen = rows[start : start + size]
    count = len(chosen)
    return Page(
        chosen,
        {
            "hasNextPage": start + count < len(rows),
            "hasPreviousPage": start > 0,
            "startCursor": book.encode(filters, start) if count else None,
            "endCursor": book.encode(filters, start + count - 1) if count else None,
        },
    )
