"""Small integer codes for repeated strings (severities, integrations, CVE names, asset ids)."""

from __future__ import annotations

from collections.abc import Iterable


class Interner:
    """Maps each distinct string to a dense code 0, 1, 2, ... and back; memory grows with distinct values."""

    __slots__ = ("_codes", "values")

    def __init__(self, initial: Iterable[str] = ()) -> None:
        self._codes: dict[str, int] = {}
        self.values: list[str] = []
        for value in initial:
            self.code(value)

    def code(self, value: str) -> int:
        """The code of `value`, assigning the next one on first sight."""
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self.values)
            self.values.append(value)
        return code

    def find(self, value: str) -> int | None:
        """The code of `value` if it was seen, else None (never assigns)."""
        return self._codes.get(value)

    def __len__(self) -> int:
        return len(self.values)
