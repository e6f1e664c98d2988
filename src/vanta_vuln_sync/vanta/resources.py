"""The Vanta list endpoints this project syncs, their filters, and filter validation.

Vanta silently ignores a misspelled filter and returns the unfiltered list, so every filter is checked
here by name and value before any request is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from .errors import InvalidFilterError

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
ASSET_TYPES = (
    "CODE_REPOSITORY",
    "CONTAINER_REPOSITORY",
    "CONTAINER_REPOSITORY_IMAGE",
    "MANIFEST_FILE",
    "SERVER",
    "SERVERLESS_FUNCTION",
    "WORKSTATION",
)
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})

FilterValue = str | bool | int | datetime


class FilterKind(Enum):
    TEXT = "text"
    BOOL = "bool"
    DATETIME = "datetime"  # RFC 3339
    CHOICE = "choice"  # one of FilterSpec.choices, case-insensitive, sent upper case


@dataclass(frozen=True, slots=True)
class FilterSpec:
    kind: FilterKind
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """One list endpoint: its name in this project, its path under the API base, its filters."""

    name: str
    path: str
    filters: Mapping[str, FilterSpec]
    defaults: Mapping[str, str] = field(default_factory=dict)


_TEXT = FilterSpec(FilterKind.TEXT)
_BOOL = FilterSpec(FilterKind.BOOL)
_DATE = FilterSpec(FilterKind.DATETIME)
_SEVERITY = FilterSpec(FilterKind.CHOICE, SEVERITIES)

RESOURCES: dict[str, ResourceSpec] = {
    "vulnerabilities": ResourceSpec(
        name="vulnerabilities",
        path="/vulnerabilities",
        filters={
            "q": _TEXT,
            "isDeactivated": _BOOL,
            "externalVulnerabilityId": _TEXT,
            "isFixAvailable": _BOOL,
            "packageIdentifier": _TEXT,
            "slaDeadlineAfterDate": _DATE,
            "slaDeadlineBeforeDate": _DATE,
            "severity": _SEVERITY,
            "integrationId": _TEXT,
            "includeVulnerabilitiesWithoutSlas": _BOOL,
            "vulnerableAssetId": _TEXT,
        },
        # Without it Vanta leaves out every vulnerability with no SLA date, so counts silently shrink.
        defaults={"includeVulnerabilitiesWithoutSlas": "true"},
    ),
    "vulnerability-remediations": ResourceSpec(
        name="vulnerability-remediations",
        path="/vulnerability-remediations",
        filters={
            "integrationId": _TEXT,
            "severity": _SEVERITY,
            "isRemediatedOnTime": _BOOL,
            "remediatedAfterDate": _DATE,
            "remediatedBeforeDate": _DATE,
        },
    ),
    "vulnerable-assets": ResourceSpec(
        name="vulnerable-assets",
        path="/vulnerable-assets",
        filters={
            "q": _TEXT,
            "integrationId": _TEXT,
            "assetType": FilterSpec(FilterKind.CHOICE, ASSET_TYPES),
            "assetExternalAccountId": _TEXT,
        },
    ),
    "integrations": ResourceSpec(name="integrations", path="/integrations", filters={}),
}


def resource_spec(resource: str) -> ResourceSpec:
    """The spec of `resource`; raises InvalidFilterError naming the known resources when unknown."""
    spec = RESOURCES.get(resource)
    if spec is None:
        raise InvalidFilterError(f"unknown Vanta resource {resource!r}; use one of: {', '.join(RESOURCES)}")
    return spec


def validate_filters(resource: str, filters: Mapping[str, FilterValue] | None) -> dict[str, str]:
    """Query parameters for `resource` from `filters`, checked by name and value and rendered as Vanta
    wants them (booleans `true`/`false`, choices upper case, dates RFC 3339), plus the resource's
    defaults (vulnerabilities: `includeVulnerabilitiesWithoutSlas=true` unless set).

    Raises InvalidFilterError (listing the valid names or values) for an unknown resource, a misspelled
    filter name or a value Vanta would not accept.
    """
    spec = resource_spec(resource)
    params = dict(spec.defaults)
    for name, value in (filters or {}).items():
        filter_spec = spec.filters.get(name)
        if filter_spec is None:
            valid = ", ".join(sorted(spec.filters)) or "none"
            raise InvalidFilterError(
                f"{resource} has no filter {name!r} (Vanta would silently ignore it and return "
                f"everything); valid filters: {valid}"
            )
        params[name] = _render(resource, name, filter_spec, value)
    return params


def _render(resource: str, name: str, spec: FilterSpec, value: FilterValue) -> str:
    # Messages carry filters as JSON: a null, list or object must not reach Vanta as "None" or a repr.
    if not isinstance(value, str | int | float | bool | datetime):
        raise InvalidFilterError(
            f"{resource} filter {name} needs one text, number or boolean value, got {type(value).__name__}"
        )
    if spec.kind is FilterKind.BOOL:
        if isinstance(value, bool):
            return "true" if value else "false"
        text = str(value).strip().lower()
        if text in _TRUE:
            return "true"
        if text in _FALSE:
            return "false"
        raise InvalidFilterError(f"{resource} filter {name} must be true or false, got {value!r}")
    if spec.kind is FilterKind.CHOICE:
        text = str(value).strip().upper()
        if text not in spec.choices:
            raise InvalidFilterError(
                f"{resource} filter {name} must be one of {', '.join(spec.choices)}, got {value!r}"
            )
        return text
    if spec.kind is FilterKind.DATETIME:
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = datetime.fromisoformat(str(value).strip())
            except ValueError:
                moment = None
        if moment is None or moment.tzinfo is None:
            raise InvalidFilterError(
                f"{resource} filter {name} must be an RFC 3339 date-time with a time zone, "
                f"e.g. 2024-01-31T00:00:00Z; got {value!r}"
            )
        if isinstance(value, datetime):
            return value.isoformat().replace("+00:00", "Z")
        return str(value).strip()
    text = str(value)
    if text == "":
        raise InvalidFilterError(f"{resource} filter {name} needs a value")
    return text
