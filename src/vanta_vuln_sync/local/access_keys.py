"""Each emulated Lambda container signs its AWS requests with its own access key, revoked when it dies.

In Lambda, an invocation that passes its function timeout is killed with its container: nothing it had
not yet written is written. Here a container is a thread, which cannot be killed; instead it gets its own
access key id (`AKIDCONTAINER<n>`, as a Lambda container gets its own role credentials in its
environment) and the embedded moto server refuses every request signed with a revoked key (see
`embedded_aws.MotoServer`). The poller revokes a container's key at its invocation's deadline; the next
container gets a fresh one.

The key reaches the container's clients through `use_container_key`, called on the container's thread:
every aiobotocore client created on that thread afterwards signs with it (`install_container_keys` wraps
`AioSession.create_client` once per process, adding the key where the caller passed no credentials).
Threads that are not containers (the poller, the CLI, tests) keep the process's credentials.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from typing import Any

from aiobotocore.session import AioSession

CONTAINER_KEY_PREFIX = "AKIDCONTAINER"
_SECRET = "embedded-container"  # noqa: S105 - moto checks no signature
_WRAPPED = "_vanta_vuln_sync_container_keys"


class AccessKeys:
    """The container keys of this process: issued, in use by requests, revoked.

    Process-wide (`ACCESS_KEYS`), as moto's backends are: the poller revokes and the moto server's
    guard checks the same set. Keys are never reused, so nothing needs resetting between runs.
    """

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self._condition = threading.Condition()
        self._revoked: set[str] = set()
        self._in_flight: Counter[str] = Counter()
        self._guards = 0
        self.refused = 0

    def issue(self) -> str:
        """A fresh access key id, `AKIDCONTAINER` and seven digits (20 characters, as AWS's)."""
        return f"{CONTAINER_KEY_PREFIX}{next(self._numbers):07d}"

    @property
    def guarded(self) -> bool:
        """True while a moto server of this process refuses revoked keys."""
        with self._condition:
            return self._guards > 0

    def add_guard(self) -> None:
        with self._condition:
            self._guards += 1

    def remove_guard(self) -> None:
        with self._condition:
            self._guards -= 1

    def revoke(self, key: str, drain_seconds: float = 2.0) -> bool:
        """Refuse every later request signed with `key`; wait (up to `drain_seconds`) until none of
        its requests is still being applied. True when none is: from then on nothing `key` sends
        changes state."""
        deadline = time.monotonic() + drain_seconds
        with self._condition:
            self._revoked.add(key)
            while self._in_flight[key] > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(left)
            return True

    def is_revoked(self, key: str) -> bool:
        with self._condition:
            return key in self._revoked

    def enter(self, key: str) -> bool:
        """A request signed with `key` starts: False (and counted as refused) when `key` is revoked."""
        with self._condition:
            if key in self._revoked:
                self.refused += 1
                return False
            self._in_flight[key] += 1
            return True

    def leave(self, key: str) -> None:
        """A request that `enter` let in is over (answered or refused)."""
        with self._condition:
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]
                self._condition.notify_all()

    def refuse(self) -> None:
        """Count a request that entered but was refused later (revoked while it waited)."""
        with self._condition:
            self.refused += 1


ACCESS_KEYS = AccessKeys()

_thread = threading.local()


def use_container_key(key: str | None) -> None:
    """Sign the aiobotocore clients created on this thread from now on with `key` (None: stop)."""
    _thread.key = key


def container_key() -> str | None:
    """The key this thread's new clients sign with, or None outside a container."""
    key: str | None = getattr(_thread, "key", None)
    return key


def install_container_keys() -> None:
    """Make `use_container_key` take effect (idempotent; re-installs if something restored the
    original `AioSession.create_client`, as the chaos suite's fault injector does on exit)."""
    current = AioSession.create_client
    if getattr(current, _WRAPPED, False):
        return

    def create_client(session: AioSession, *args: Any, **kwargs: Any) -> Any:
        key = container_key()
        # Credentials passed by position (the 7th argument) or by name are the caller's choice.
        if key is not None and len(args) < 6 and kwargs.get("aws_access_key_id") is None:
            kwargs.update(aws_access_key_id=key, aws_secret_access_key=_SECRET, aws_session_token=None)
        return current(session, *args, **kwargs)

    setattr(create_client, _WRAPPED, True)
    AioSession.create_client = create_client  # type: ignore[method-assign,assignment]
