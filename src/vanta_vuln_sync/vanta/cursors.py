"""Vanta page cursors: recognise `arrayconnection:<offset>` cursors and write one for any offset.

Vanta's documented cursors are base64 of `arrayconnection:N` (the Relay array-connection format): the
cursor names item N (0-based) and the page requested with it starts at item N + 1. Live cursors may
also be opaque; then nothing can be derived from them and chains must be walked in order.
"""

from __future__ import annotations

import base64
import binascii

_PREFIX = "arrayconnection:"


def decode_offset(cursor: str) -> int | None:
    """The item offset an `arrayconnection:N` cursor names, or None for any other (opaque) cursor."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(_PREFIX):
        return None
    digits = raw[len(_PREFIX) :]
    if not digits.isdigit() or not digits.isascii():
        return None
    return int(digits)


def encode_offset(offset: int) -> str:
    """The cursor naming item `offset` (so the page requested with it starts at `offset + 1`)."""
    if offset < 0:
        raise ValueError(f"a cursor offset cannot be negative, got {offset}")
    return base64.b64encode(f"{_PREFIX}{offset}".encode("ascii")).decode("ascii")


def cursor_before(offset: int) -> str | None:
    """The cursor whose next page starts at item `offset`; None (no cursor) for offset 0."""
    if offset < 0:
        raise ValueError(f"a page cannot start at a negative offset, got {offset}")
    return None if offset == 0 else encode_offset(offset - 1)
