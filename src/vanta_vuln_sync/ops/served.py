"""The state file of a served local stack: how `--stack local` finds `vuln-sync local --serve`.

The serve command writes the embedded endpoint, region, the stack's name and outputs (queue URLs, table,
bucket) and its process id to a small JSON file (default `out/local-stack.json`, or
`$VULN_SYNC_LOCAL_STATE`), and removes it when it stops. The credentials in it are moto's dummy ones:
the embedded endpoint accepts any key, and the file names no Vanta credential.

Imports nothing heavy: the operator commands read it without loading moto.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

LOCAL_STACK = "local"
STATE_ENV = "VULN_SYNC_LOCAL_STATE"
STATE_FILE_NAME = "local-stack.json"
DEFAULT_STATE_PATH = Path("out") / STATE_FILE_NAME


class ServedStackError(RuntimeError):
    """No served local stack can be reached through the state file; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ServedStack:
    """Where a served local stack listens and what it deployed."""

    stack_name: str
    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str
    outputs: dict[str, str]
    pid: int

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for a boto3 or aiobotocore client on the served endpoint."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }

    def environment(self) -> dict[str, str]:
        """The environment variables that point the aws CLI (or any SDK) at the served endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }


def state_path(out: Path | None = None) -> Path:
    """The state file: `$VULN_SYNC_LOCAL_STATE` when set, else `<out>/local-stack.json` (out/ by default)."""
    configured = os.environ.get(STATE_ENV)
    if configured:
        return Path(configured)
    return (out / STATE_FILE_NAME) if out is not None else DEFAULT_STATE_PATH


def write_served(path: Path, served: ServedStack) -> None:
    """Write the state file atomically (readers never see half of it), readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(orjson.dumps(_as_dict(served), option=orjson.OPT_INDENT_2))
    partial.replace(path)


def remove_served(path: Path, pid: int) -> None:
    """Remove the state file if it is still the one process `pid` wrote (a newer server keeps its own)."""
    try:
        if int(orjson.loads(path.read_bytes()).get("pid", -1)) == pid:
            path.unlink()
    except (FileNotFoundError, orjson.JSONDecodeError, ValueError, TypeError):
        return


def read_served(path: Path | None = None) -> ServedStack:
    """The served stack named by the state file; raises ServedStackError when there is no file, it is
    malformed, or the process that wrote it has ended."""
    path = path or state_path()
    start = "start one with `vuln-sync local --serve`"
    try:
        raw: dict[str, Any] = orjson.loads(path.read_bytes())
        served = ServedStack(
            stack_name=str(raw["stack_name"]),
            endpoint_url=str(raw["endpoint_url"]),
            region=str(raw["region"]),
            access_key_id=str(raw["access_key_id"]),
            secret_access_key=str(raw["secret_access_key"]),
            outputs={str(k): str(v) for k, v in raw["outputs"].items()},
            pid=int(raw["pid"]),
        )
    except FileNotFoundError:
        raise ServedStackError(
            f"no local stack is being served ({path} does not exist): {start}, or set {STATE_ENV} to "
            "the state file it printed"
        ) from None
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ServedStackError(f"{path} is not a local stack's state file ({exc!r}): {start}") from None
    if not _alive(served.pid):
        raise ServedStackError(
            f"the local stack in {path} was served by process {served.pid}, which has ended: {start}"
        )
    return served


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _as_dict(served: ServedStack) -> dict[str, Any]:
    return {
        "stack_name": served.stack_name,
        "endpoint_url": served.endpoint_url,
        "region": served.region,
        "access_key_id": served.access_key_id,
        "secret_access_key": served.secret_access_key,
        "outputs": served.outputs,
        "pid": served.pid,
    }
