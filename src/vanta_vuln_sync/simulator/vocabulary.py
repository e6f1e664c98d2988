"""Fixed vocabulary the generated tenant draws from: integrations, asset types, packages, words."""

from __future__ import annotations

from dataclasses import dataclass

from vanta_vuln_sync.vanta.resources import ASSET_TYPES as ASSET_TYPES  # Vanta's vocabulary, one copy
from vanta_vuln_sync.vanta.resources import SEVERITIES as SEVERITIES

SEVERITY_WEIGHTS = (5, 20, 45, 30)
# Days from first detection to `remediateByDate`, per severity (a common SLA policy).
SLA_DAYS = (7, 30, 90, 180)
# cvssSeverityScore range (in tenths) consistent with each severity (CVSS v3 bands).
CVSS_TENTHS = ((90, 100), (70, 89), (40, 69), (1, 39))

VULNERABILITY_TYPES = ("COMMON", "CONFIGURATION", "GROUPED")


@dataclass(frozen=True, slots=True)
class Integration:
    """A scanner integration: its id as Vanta spells it, and what it scans."""

    integration_id: str
    display_name: str
    scan_source: str | None  # None: the field is absent from its vulnerabilities
    asset_types: tuple[int, ...]  # indexes into ASSET_TYPES
    accounts: tuple[str, ...]  # parentAccountOrOrganization values
    resource_kinds: tuple[str, ...]
    weight: int


INTEGRATIONS = (
    Integration(
        "aws",
        "Amazon Web Services (Inspector)",
        "AWS Inspector",
        (1, 2, 4, 5),
        ("123456789012", "210987654321", "555566667777"),
        ("EC2Instance", "ECRRepository", "ECRImage", "LambdaFunction"),
        30,
    ),
    Integration(
        "snyk",
        "Snyk",
        "Snyk Open Source",
        (0, 2, 3),
        ("acme-engineering", "acme-platform"),
        ("SnykProject",),
        20,
    ),
    Integration(
        "github",
        "GitHub (Dependabot)",
        None,
        (0, 3),
        ("acme-corp",),
        ("GithubRepo", "DependabotAlert"),
        20,
    ),
    Integration("qualys", "Qualys VMDR", "Not provided", (4, 6), ("acme-qualys-sub",), ("QualysHost",), 12),
    Integration(
        "crowdstrike",
        "CrowdStrike Falcon Spotlight",
        "Falcon Spotlight",
        (6, 4),
        ("acme-cs-cid-7f3a",),
        ("CrowdstrikeHost",),
        10,
    ),
    Integration(
        "azure",
        "Microsoft Azure (Defender)",
        "Microsoft Defender for Cloud",
        (4, 2, 5),
        ("9b0c4a1e-2f7d-4c55-a0a8-0c1f3e9d7b21",),
        ("AzureVirtualMachine", "AzureContainerImage", "AzureFunction"),
        8,
    ),
)

PACKAGES = (
    ("openssl", "3.0.7", "3.0.13"),
    ("log4j-core", "2.14.1", "2.17.1"),
    ("lodash", "4.17.20", "4.17.21"),
    ("requests", "2.25.1", "2.31.0"),
    ("urllib3", "1.26.4", "1.26.18"),
    ("glibc", "2.31-0ubuntu9", "2.31-0ubuntu9.14"),
    ("curl", "7.74.0", "8.4.0"),
    ("libxml2", "2.9.10", "2.9.14"),
    ("jackson-databind", "2.9.10.1", "2.13.4.2"),
    ("spring-core", "5.3.17", "5.3.18"),
    ("express", "4.17.1", "4.19.2"),
    ("minimist", "1.2.5", "1.2.6"),
    ("django", "3.2.4", "3.2.25"),
    ("pillow", "8.2.0", "10.0.1"),
    ("nginx", "1.18.0", "1.25.3"),
    ("openssh", "8.2p1", "9.6p1"),
    ("zlib", "1.2.11", "1.2.13"),
    ("sudo", "1.8.31", "1.9.5p2"),
    ("golang.org/x/net", "0.7.0", "0.17.0"),
    ("github.com/gin-gonic/gin", "1.7.2", "1.9.1"),
    ("axios", "0.21.1", "1.6.0"),
    ("protobuf", "3.19.4", "3.20.3"),
    ("netty-codec-http", "4.1.68", "4.1.100"),
    ("busybox", "1.33.1", "1.36.1"),
    ("werkzeug", "2.0.1", "3.0.1"),
    ("semver", "5.7.1", "7.5.2"),
    ("tar", "4.4.13", "6.2.1"),
    ("cryptography", "3.3.2", "41.0.6"),
)

WEAKNESSES = (
    "Heap-based buffer overflow",
    "Improper input validation",
    "Prototype pollution",
    "Remote code execution via crafted payload",
    "Denial of service through uncontrolled resource consumption",
    "Path traversal",
    "Server-side request forgery",
    "Use after free",
    "Improper certificate validation",
    "Regular expression denial of service (ReDoS)",
    "Cross-site scripting",
    "Integer overflow leading to out-of-bounds write",
    "Insecure deserialization of untrusted data",
    "HTTP request smuggling",
)

CONFIGURATION_CHECKS = (
    "S3 bucket allows public read access",
    "Security group allows unrestricted SSH ingress",
    "IMDSv1 enabled on instance",
    "EBS volume is not encrypted",
    "Root account has active access keys",
    "TLS 1.0 enabled on load balancer listener",
    "Password policy does not require symbols",
    "Disk encryption disabled on workstation",
    "Firewall disabled on host",
    "Automatic OS updates disabled",
)

DEACTIVATION_REASONS = (
    "Risk accepted: not reachable from the internet",
    "False positive: package not loaded at runtime",
    "Compensating control in place (WAF rule)",
    "Asset scheduled for decommissioning",
)

WORDS = (
    "atlas", "billing", "checkout", "dashboard", "edge", "forge", "gateway", "harbor", "identity",
    "ingest", "ledger", "mercury", "notifier", "orbit", "payments", "quartz", "reports", "search",
    "signal", "tempo", "uploader", "vault", "webhooks", "zephyr",
)  # fmt: skip

OPERATING_SYSTEMS = (
    "Ubuntu 22.04.3 LTS",
    "Amazon Linux 2023",
    "Debian 12",
    "Windows Server 2022",
    "macOS 14.1",
    "Windows 11 Pro 23H2",
    "Red Hat Enterprise Linux 9.2",
)

EXTRA_FIELD_VALUES = (
    ("epssScore", lambda n: round((n % 1000) / 1000, 3)),
    ("isKevListed", lambda n: n % 7 == 0),
    ("exploitMaturity", lambda n: ("UNPROVEN", "POC", "FUNCTIONAL", "HIGH")[n % 4]),
)
