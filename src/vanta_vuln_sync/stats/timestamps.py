"""RFC 3339 timestamps as integer epoch milliseconds: exact arithmetic, cheap to keep in arrays."""

from __future__ import annotations

from datetime import UTC, datetime

# Stands for "no date" in the `array('q')` columns (Vanta sends null for many dates).
NO_DATE = -(2**63)
MS_PER_DAY = 86_400_000


def parse_ms(raw: object) -> int:
    """Epoch milliseconds of an RFC 3339 string (`2021-01-01T00:00:00.000Z`); NO_DATE for null/empty.

    Raises ValueError for a string that is not a date: a malformed date is a bad payload, not a null.
    A date without a zone is read as UTC (Vanta's dates are UTC).
    """
    if raw is None or raw == "":
        return NO_DATE
    if not isinstance(raw, str):
        raise ValueError(f"expected an RFC 3339 date string, got {type(raw).__name__}")
    moment = datetime.fromisoformat(raw)  # 3.11 reads the `Z` suffix and fractions of any length
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.microsecond % 1000 == 0:
        # Whole milliseconds (what Vanta sends): the scaled float is within far less than 0.5 of the
        # integer, so rounding it is exact and much cheaper than timedelta arithmetic (runs 3M times).
        return round(moment.timestamp() * 1000)
    return datetime_ms(moment)


def datetime_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (a naive one is read as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def format_rfc3339(moment: datetime) -> str:
    """`2021-01-01T00:00:00.000Z`: UTC, milliseconds, `Z`, as Vanta writes dates."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
