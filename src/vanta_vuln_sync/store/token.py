"""The fleet's one Vanta token, kept in the DynamoDB state table and refreshed single-flight.

Vanta keeps one live token per application: a container that mints its own token revokes everyone
else's. So every container reads the token from one item (`pk="token#vanta"`, `sk="token"`), keeps it
in memory until it expires or Vanta rejects it, and only the holder of a conditional-write lease mints a
new one; the others poll the item until it appears. The token is never logged.

At rest the token is sealed: with a `TokenCipher` (the functions use `KmsTokenCipher`, a customer-managed
KMS key only the two function roles may use) the item holds only the ciphertext (`token_sealed`), so a
principal that can read the table but not use the key learns nothing it can call Vanta with.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError as BotoClientError

from vanta_vuln_sync.store.dynamo import conditional_write
from vanta_vuln_sync.store.keys import TOKEN_KEY
from vanta_vuln_sync.vanta.auth import MINTS_PER_MINUTE, CachedToken, Token, TokenFetch
from vanta_vuln_sync.vanta.errors import TokenUnavailableError

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_kms import KMSClient

log = logging.getLogger(__name__)

_NAMES = {
    "#tok": "token",
    "#sealed": "token_sealed",
    "#exp": "expires_at",
    "#gen": "generation",
    "#holder": "lease_holder",
    "#until": "lease_until",
    "#mints": "mints",
    "#rev": "rev",
}

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenCipher(Protocol):
    """Seals the token before it is stored and opens it after it is read."""

    async def seal(self, token: str) -> str:
        """The token as stored: text that reveals nothing without the key."""
        ...

    async def unseal(self, sealed: str) -> str | None:
        """The token `seal` made `sealed` from; None when it cannot be opened (not ours, corrupted)."""
        ...


class KmsTokenCipher:
    """A TokenCipher on a KMS key: Encrypt and Decrypt, bound to the state table by encryption context.

    The context (table name and item) makes a ciphertext copied to another item or table useless, and
    names the table in CloudTrail's record of every decrypt. Decrypt names the key too, so a ciphertext
    under another key is refused rather than decrypted with it.
    """

    def __init__(self, kms: KMSClient, key_id: str, table: str) -> None:
        self._kms = kms
        self._key_id = key_id
        self._context = {"table": table, "item": "token#vanta"}

    async def seal(self, token: str) -> str:
        reply = await self._kms.encrypt(
            KeyId=self._key_id, Plaintext=token.encode(), EncryptionContext=self._context
        )
        return base64.b64encode(reply["CiphertextBlob"]).decode()

    async def unseal(self, sealed: str) -> str | None:
        try:
            blob = base64.b64decode(sealed, validate=True)
            reply = await self._kms.decrypt(
                KeyId=self._key_id, CiphertextBlob=blob, EncryptionContext=self._context
            )
        except binascii.Error:
            return None
        except BotoClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidCiphertextException":
                return None
            raise
        return bytes(reply["Plaintext"]).decode()


class TokenBroker:
    """A TokenProvider shared by the whole fleet through the state table.

    Promises: at most one token request in flight fleet-wide (the lease holder's); at most 5 token
    requests in any 60 s (the last five request times live in the item and a lease is granted only by a
    conditional write when the oldest of them is over 60 s + `skew_margin` old); a 401 leads to a new
    token only if the rejected token is still the current one. `fetch` must make ONE token request per
    call (see `auth.token_fetcher`): each call is counted as a mint and transient failures are retried
    here, paced by the same record. `lease_seconds` must exceed the fetch's timeout.

    With a `cipher` the token is stored only sealed and a plain `token` attribute is never trusted (an
    item from before the key was introduced is replaced by the next mint); without one (tests, tools)
    it is stored as it is.
    """

    def __init__(
        self,
        ddb: DynamoDBClient,
        table: str,
        fetch: TokenFetch,
        clock: Clock = time.time,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        holder: str | None = None,
        lease_seconds: float = 45.0,
        poll_interval: float = 0.2,
        max_wait: float = 150.0,
        skew_margin: float = 1.0,
        retry_delay: float = 2.0,
        cipher: TokenCipher | None = None,
    ) -> None:
        self._ddb = ddb
        self._cipher = cipher
        self._table = table
        self._fetch = fetch
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.holder = holder or uuid.uuid4().hex
        self._lease_seconds = lease_seconds
        self._poll = poll_interval
        self._max_wait = max_wait
        self._skew = skew_margin
        self._retry_delay = retry_delay
        self._cache = CachedToken(self._obtain, clock)
        self._failed: str | None = None
        self.minted = 0

    async def token(self) -> str:
        """The fleet's current token: from memory while usable, else from the table, else minted.

        Raises AuthError if Vanta refuses the credentials, TokenUnavailableError if no token could be
        had within `max_wait` seconds.
        """
        return await self._cache.get()

    async def invalidate(self, failed: str) -> None:
        """Vanta answered 401 to `failed`: stop using it; the next token() replaces it in the table only
        if the table still holds it (else another container already did)."""
        if self._cache.forget(failed):
            self._failed = failed

    async def _obtain(self) -> Token:
        deadline = self._clock() + self._max_wait
        while True:
            item = await self._read()
            now = self._clock()
            token = await self._token_of(item)
            if token is not None and token.value != self._failed and token.usable(now):
                return token
            if now > deadline:
                raise TokenUnavailableError(
                    f"no Vanta token became available within {self._max_wait:g}s; "
                    "the token endpoint may be down, try again later"
                )
            recent = self._recent_mints(item, now)
            wait = self._wait_before_lease(item, now, recent)
            if wait > 0:
                # Jitter after the wait, never before it: waking early only costs another read.
                await self._sleep(min(wait, max(0.0, deadline - now)) + self._rng.uniform(0, self._poll))
                continue
            rev = int(_number(item, "rev"))
            mints = [*recent, now][-MINTS_PER_MINUTE:]
            if not await self._take_lease(rev, now, mints) or not await self._holds_lease(rev + 1):
                await self._sleep(self._poll * self._rng.uniform(0.1, 0.5))
                continue
            minted = await self._mint(rev + 1, mints)
            if minted is not None:
                return minted

    def _recent_mints(self, item: Mapping[str, Any], now: float) -> list[float]:
        """When the token requests of the last minute (and the skew margin) ended, oldest first."""
        mints = _numbers(item, "mints")
        if "lease_holder" in item and mints:
            # A holder that vanished mid-mint: its request ended by its lease's end at the latest.
            mints[-1] = max(mints[-1], _number(item, "lease_until"))
        return [m for m in mints if m > now - 60.0 - self._skew]

    def _wait_before_lease(self, item: Mapping[str, Any], now: float, recent: list[float]) -> float:
        """Seconds until this container may try for the lease (0: now)."""
        lease_until = _number(item, "lease_until")
        if lease_until > now:  # someone is minting: poll for their token
            return min(self._poll, lease_until - now)
        if len(recent) >= MINTS_PER_MINUTE:
            log.debug("5 Vanta token requests in the last minute fleet-wide; waiting to mint")
            return recent[-MINTS_PER_MINUTE] + 60.0 + self._skew - now
        return 0.0

    async def _take_lease(self, rev: int, now: float, mints: list[float]) -> bool:
        values: dict[str, Any] = {
            ":holder": {"S": self.holder},
            ":until": {"N": _n(now + self._lease_seconds)},
            ":mints": _number_list(mints),
            ":rev": {"N": str(rev)},
            ":next": {"N": str(rev + 1)},
            ":now": {"N": _n(now)},
            ":limit": {"N": str(MINTS_PER_MINUTE)},
            ":cutoff": {"N": _n(now - 60.0 - self._skew)},
        }
        # rev pins everything read above; the other clauses state the invariants for the table itself.
        condition = (
            "(attribute_not_exists(#rev) OR #rev = :rev) "
            "AND (attribute_not_exists(#until) OR #until < :now) "
            "AND (attribute_not_exists(#mints) OR size(#mints) < :limit OR #mints[0] < :cutoff)"
        )
        return await self._conditional_update(
            "SET #holder = :holder, #until = :until, #mints = :mints, #rev = :next", condition, values
        )

    async def _holds_lease(self, rev: int) -> bool:
        """Reads the lease back before minting: one cheap read per mint that keeps single-flight even on
        stores whose conditional writes race under concurrency (moto server does)."""
        item = await self._read()
        return item.get("lease_holder", {}).get("S") == self.holder and int(_number(item, "rev")) == rev

    async def _mint(self, rev: int, mints: list[float]) -> Token | None:
        """Mint as lease holder and publish; None when the loop should look again.

        The request is recorded by when it ended, not when it started: Vanta counted it somewhere in
        between, so spacing the 6th request a minute after the 1st one's end holds whatever the latency.
        """
        try:
            token = await self._fetch()
        except TokenUnavailableError as exc:
            log.warning("Vanta token request failed (%s); will retry", exc)
            await self._release(rev, [*mints[:-1], self._clock()])
            await self._sleep(self._retry_delay * self._rng.uniform(0.5, 1.5))
            return None
        except BaseException:
            await asyncio.shield(self._release(rev, [*mints[:-1], self._clock()]))
            raise
        self.minted += 1
        if self._cipher is not None:
            stored, kept, dropped = {"S": await self._cipher.seal(token.value)}, "#sealed", "#tok"
        else:
            stored, kept, dropped = {"S": token.value}, "#tok", "#sealed"
        values: dict[str, Any] = {
            ":mints": _number_list([*mints[:-1], self._clock()]),
            ":tok": stored,
            ":exp": {"N": _n(token.expires_at)},
            ":one": {"N": "1"},
            ":zero": {"N": "0"},
            ":holder": {"S": self.holder},
            ":rev": {"N": str(rev)},
            ":next": {"N": str(rev + 1)},
        }
        published = await self._conditional_update(
            f"SET {kept} = :tok, #exp = :exp, #gen = if_not_exists(#gen, :zero) + :one, #rev = :next, "
            "#mints = :mints "
            f"REMOVE #holder, #until, {dropped}",
            "#holder = :holder AND #rev = :rev",
            values,
        )
        if not published:  # our lease lapsed and someone else took over: their token wins
            log.warning("Vanta token lease lapsed before the new token was stored; re-reading")
            return None
        log.info("minted the fleet's Vanta access token (valid until %.0f)", token.expires_at)
        self._failed = None
        return token

    async def _release(self, rev: int, mints: list[float]) -> None:
        values = {
            ":holder": {"S": self.holder},
            ":rev": {"N": str(rev)},
            ":next": {"N": str(rev + 1)},
            ":mints": _number_list(mints),
        }
        await self._conditional_update(
            "SET #rev = :next, #mints = :mints REMOVE #holder, #until",
            "#holder = :holder AND #rev = :rev",
            values,
        )

    async def _token_of(self, item: Mapping[str, Any]) -> Token | None:
        """The token an item holds, opened with the cipher when there is one; None if none is usable."""
        if "expires_at" not in item:
            return None
        expires_at = float(item["expires_at"]["N"])
        if self._cipher is None:
            return Token(value=item["token"]["S"], expires_at=expires_at) if "token" in item else None
        if "token_sealed" not in item:
            return None
        value = await self._cipher.unseal(item["token_sealed"]["S"])
        if value is None:
            log.warning("the stored Vanta token cannot be opened with the token key; minting a new one")
            return None
        return Token(value=value, expires_at=expires_at)

    async def _read(self) -> dict[str, Any]:
        response = await self._ddb.get_item(TableName=self._table, Key=TOKEN_KEY, ConsistentRead=True)
        return dict(response.get("Item") or {})

    async def _conditional_update(self, update: str, condition: str, values: dict[str, Any]) -> bool:
        names = {k: v for k, v in _NAMES.items() if k in update or k in condition}
        written = await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=TOKEN_KEY,
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        return written is not None


def _n(value: float) -> str:
    return f"{value:.6f}"


def _number_list(values: list[float]) -> dict[str, Any]:
    return {"L": [{"N": _n(value)} for value in values]}


def _number(item: Mapping[str, Any], name: str) -> float:
    attr = item.get(name)
    return float(attr["N"]) if attr and "N" in attr else 0.0


def _numbers(item: Mapping[str, Any], name: str) -> list[float]:
    attr = item.get(name)
    if not attr or "L" not in attr:
        return []
    return sorted(float(entry["N"]) for entry in attr["L"])
