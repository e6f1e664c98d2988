"""Turn the dataset's compact columns into the JSON objects Vanta serves (field names as documented)."""

from __future__ import annotations

import random
import time
import uuid
from typing import TYPE_CHECKING, Any

from vanta_vuln_sync.simulator.vocabulary import (
    ASSET_TYPES,
    DEACTIVATION_REASONS,
    EXTRA_FIELD_VALUES,
    INTEGRATIONS,
    OPERATING_SYSTEMS,
    SEVERITIES,
    VULNERABILITY_TYPES,
)

if TYPE_CHECKING:
    from vanta_vuln_sync.simulator.dataset import Dataset

DAY = 86_400

# Bits of the dataset's per-vulnerability `flags` column: which optional fields a record leaves out.
NULL_SOURCE_DATE = 1
NULL_LAST_DATE = 2
NULL_CVSS = 4
NULL_SCANNER_SCORE = 8
NO_FIXED_VERSION = 16
NO_SCAN_SOURCE = 32
EXTRA_FIELDS = 64


def iso(ts: int | None) -> str | None:
    """Vanta's timestamp format, `2021-01-01T00:00:00.000Z`; None stays None."""
    if ts is None or ts < 0:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def vulnerability(data: Dataset, serial: int) -> dict[str, Any]:
    flaw = data.flaws[data.v_flaw[serial]]
    flags = data.v_flags[serial]
    integration = INTEGRATIONS[data.v_integration[serial]]
    first = data.v_first[serial]
    asset = data.v_asset[serial]
    record: dict[str, Any] = {
        "id": data.vulnerability_id(serial),
        "name": flaw.name,
        "description": flaw.description,
        "integrationId": integration.integration_id,
        "packageIdentifier": flaw.package,
        "vulnerabilityType": VULNERABILITY_TYPES[flaw.kind],
        "targetId": data.asset_id(asset),
        "firstDetectedDate": iso(first),
        "sourceDetectedDate": None if flags & NULL_SOURCE_DATE else iso(first - data.v_source_delta[serial]),
        "lastDetectedDate": None if flags & NULL_LAST_DATE else iso(first + data.v_last_delta[serial]),
        "severity": SEVERITIES[flaw.severity],
        "cvssSeverityScore": None if flags & NULL_CVSS or flaw.cvss_tenths < 0 else flaw.cvss_tenths / 10,
        "scannerScore": None if flags & NULL_SCANNER_SCORE else data.v_scanner_score[serial],
        "isFixable": flaw.fixed_version is not None,
    }
    if flaw.fixed_version is not None and not flags & NO_FIXED_VERSION:
        record["fixedVersion"] = flaw.fixed_version
    record["remediateByDate"] = iso(data.v_remediate_by[serial])
    record["relatedVulns"] = [flaw.name] if flaw.name.startswith("CVE-") else []
    record["relatedUrls"] = (
        [f"https://nvd.nist.gov/vuln/detail/{flaw.name}"] if flaw.name.startswith("CVE-") else []
    )
    record["externalURL"] = _external_url(integration.integration_id, serial)
    if integration.scan_source is not None and not flags & NO_SCAN_SOURCE:
        record["scanSource"] = integration.scan_source
    record["deactivateMetadata"] = _deactivation(data, serial)
    if flags & EXTRA_FIELDS:  # Vanta adds fields without notice; clients must keep them
        name, value = EXTRA_FIELD_VALUES[serial % len(EXTRA_FIELD_VALUES)]
        record[name] = value(serial)
    return record


def _deactivation(data: Dataset, serial: int) -> dict[str, Any] | None:
    on = data.v_deactivated_on[serial]
    if on < 0:
        return None
    info = data.v_deactivation[serial]
    indefinitely = bool(info & 1)
    return {
        "deactivatedBy": data.user_id(serial % 17),
        "deactivatedOnDate": iso(on),
        "deactivationReason": DEACTIVATION_REASONS[info >> 1],
        # A time-boxed deactivation ends in the future (after that the finding would be active again).
        "deactivatedUntilDate": None
        if indefinitely
        else iso(max(on, data.now_ts) + (30 + serial % 150) * DAY),
        "isVulnDeactivatedIndefinitely": indefinitely,
    }


def _external_url(integration_id: str, serial: int) -> str:
    if integration_id == "aws":
        return f"https://console.aws.amazon.com/inspector/v2/home#/findings/{serial:016x}"
    if integration_id == "snyk":
        return f"https://app.snyk.io/org/acme/project/{uuid.UUID(int=serial * 7_919 + 1)}"
    if integration_id == "github":
        return f"https://github.com/acme-corp/service-{serial % 97}/security/dependabot/{serial}"
    return f"https://{integration_id}.example.com/findings/{serial}"


def remediation(data: Dataset, index: int) -> dict[str, Any]:
    serial = data.r_vuln[index]
    return {
        "id": data.remediation_id(index),
        "vulnerabilityId": data.vulnerability_id(serial),
        "vulnerableAssetId": data.asset_id(data.v_asset[serial]),
        "severity": SEVERITIES[data.flaws[data.v_flaw[serial]].severity].lower(),
        "detectedDate": iso(data.v_first[serial]),
        "slaDeadlineDate": iso(data.v_remediate_by[serial]),
        "remediationDate": iso(data.r_date[index]),
    }


def scanner_account(asset_index: int, integration: int) -> str:
    """The `parentAccountOrOrganization` of an asset's scanner from `integration`."""
    accounts = INTEGRATIONS[integration].accounts
    return accounts[(asset_index * 7 + integration) % len(accounts)]


def asset(data: Dataset, index: int) -> dict[str, Any]:
    asset_type = ASSET_TYPES[data.asset_type[index]]
    rng = random.Random(data.seed * 1_000_003 + index)
    asset_id = data.asset_id(index)
    is_image = asset_type == "CONTAINER_REPOSITORY_IMAGE"
    is_host = asset_type in ("SERVER", "WORKSTATION")
    scanners = []
    for integration in data.asset_integrations[index]:
        octet = rng.randrange(1, 255)
        scanners.append(
            {
                "resourceId": f"{INTEGRATIONS[integration].integration_id}:{rng.getrandbits(48):012x}",
                "integrationId": INTEGRATIONS[integration].integration_id,
                "imageDigest": f"sha256:{rng.getrandbits(256):064x}" if is_image else None,
                "imagePushedAtDate": iso(data.asset_created[index] + rng.randrange(DAY))
                if is_image
                else None,
                "imageTags": ["latest", f"v1.{rng.randrange(40)}.{rng.randrange(10)}"] if is_image else [],
                "assetTags": [{"key": "team", "value": rng.choice(("platform", "payments", "growth", "it"))}]
                + ([{"key": "env", "value": rng.choice(("prod", "staging"))}] if rng.random() < 0.7 else []),
                "parentAccountOrOrganization": scanner_account(index, integration),
                "biosUuid": str(uuid.UUID(int=rng.getrandbits(128))) if is_host else None,
                "ipv4s": [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{octet}"] if is_host else None,
                "ipv6s": [f"fd00::{rng.getrandbits(16):x}:{octet:x}"]
                if is_host and rng.random() < 0.3
                else None,
                "macAddresses": [_mac(rng)] if is_host else None,
                "hostnames": [data.asset_names[index].split(".")[0]] if is_host else None,
                "fqdns": [data.asset_names[index]] if asset_type == "SERVER" else None,
                "operatingSystems": [rng.choice(OPERATING_SYSTEMS)] if is_host else None,
                "targetId": asset_id,
            }
        )
    return {
        "id": asset_id,
        "name": data.asset_names[index],
        "assetType": asset_type,
        "hasBeenScanned": rng.random() < 0.97,
        "imageScanTag": "latest" if is_image and rng.random() < 0.8 else None,
        "scanners": scanners,
    }


def _mac(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256):02x}" for _ in range(6))


def integration(data: Dataset, index: int) -> dict[str, Any]:
    spec = INTEGRATIONS[index]
    rng = random.Random(data.seed * 31 + index)
    connections = []
    for number, account in enumerate(spec.accounts):
        disabled = rng.random() < 0.1
        connection_id = f"{data.id_middle['integration']}{index:02x}{number:02x}{rng.getrandbits(40):010x}"
        connections.append(
            {
                "connectionId": connection_id,
                "isDisabled": disabled,
                "connectionErrorMessage": None if not disabled else f"Credentials for {account} were revoked",
            }
        )
    return {
        "integrationId": spec.integration_id,
        "displayName": spec.display_name,
        "resourceKinds": list(spec.resource_kinds),
        "connections": connections,
    }
