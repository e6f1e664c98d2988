"""Secrets never leave their place: the client id, the client secret and the access token of a full
sync appear in no log line, metric, queue message, S3 object, state item (the token's own item apart)
or exception text.

The sync is `synced_stack` (conftest.py): the real template and handlers in the embedded runtime, the
credentials recognisable strings, some token-endpoint and API failures injected so error paths log
too. Traces are not checked here: there is no X-Ray daemon in the embedded runtime (Tracer is off);
the code puts no credential in an annotation or metadata call (see the report).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

import aiohttp
import pytest

from vanta_vuln_sync.simulator import Simulator
from vanta_vuln_sync.vanta import AuthError
from vanta_vuln_sync.vanta.auth import fetch_token

from .conftest import CLIENT_ID, CLIENT_SECRET, SyncedStack


def secrets_of(stack: SyncedStack) -> dict[str, str]:
    assert stack.token, "the fleet's token was not found in the state table"
    return {"client id": CLIENT_ID, "client secret": CLIENT_SECRET, "access token": stack.token}


def leaks(texts: Iterable[tuple[str, str]], secrets: dict[str, str]) -> list[str]:
    """`where: which secret` for every text that contains a secret."""
    return [f"{where}: {name}" for where, text in texts for name, value in secrets.items() if value in text]


def test_the_sync_that_is_searched_ran_and_left_something_everywhere(synced_stack: SyncedStack) -> None:
    # The other tests would pass on an empty run; this one makes sure there was something to search.
    assert synced_stack.run_status == "succeeded", synced_stack.function_errors
    assert synced_stack.tokens_minted == 1  # so the one token read from the table is every token there was
    assert any('"level":"INFO"' in line for line in synced_stack.log_lines)
    assert '"_aws"' in synced_stack.stdout  # Powertools EMF metrics
    assert any(k.startswith("raw/") for k in synced_stack.s3_objects)
    assert any(c.operation.startswith("SendMessage") for c in synced_stack.calls if c.aio)


def test_no_log_line_contains_a_credential_or_the_token(synced_stack: SyncedStack) -> None:
    texts = [(f"log line {i}", line) for i, line in enumerate(synced_stack.log_lines)]
    formatter = logging.Formatter()
    texts += [
        (f"traceback logged by {r.name}", formatter.formatException(r.exc_info))
        for r in synced_stack.log_records
        if r.exc_info
    ]
    assert not leaks(texts, secrets_of(synced_stack))


def test_no_metric_output_contains_a_credential_or_the_token(synced_stack: SyncedStack) -> None:
    assert not leaks([("stdout (EMF metrics)", synced_stack.stdout)], secrets_of(synced_stack))


def test_no_queue_message_sent_contains_a_credential_or_the_token(synced_stack: SyncedStack) -> None:
    sent = [
        (f"{c.operation} from {c.thread}", repr(c.params))
        for c in synced_stack.calls
        if c.service == "sqs" and c.operation.startswith("SendMessage")
    ]
    assert sent
    dlq = [(f"{q} DLQ message", repr(m)) for q, ms in synced_stack.dlq_messages.items() for m in ms]
    assert not leaks(sent + dlq, secrets_of(synced_stack))


def test_no_s3_object_contains_a_credential_or_the_token(synced_stack: SyncedStack) -> None:
    objects = [(key, body.decode("utf-8", "replace")) for key, body in synced_stack.s3_objects.items()]
    assert not leaks(objects, secrets_of(synced_stack))


def test_no_state_item_holds_the_token_or_a_credential_in_plain_text(
    synced_stack: SyncedStack,
) -> None:
    # The token item holds the token sealed with the stack's KMS key (see test_token_at_rest.py).
    items = {f"{i['pk']['S']}|{i['sk']['S']}": repr(i) for i in synced_stack.table_items}
    assert "token#vanta|token" in items
    assert leaks(items.items(), secrets_of(synced_stack)) == []


def test_no_failure_text_contains_a_credential_or_the_token(synced_stack: SyncedStack) -> None:
    texts = [(f"{name} last error", error) for name, error in synced_stack.function_errors.items()]
    texts += [
        (f"{q} DLQ reason", m.get("MessageAttributes", {}).get("reason", {}).get("StringValue", ""))
        for q, ms in synced_stack.dlq_messages.items()
        for m in ms
    ]
    assert not leaks(texts, secrets_of(synced_stack))


def test_poison_messages_reach_their_dlq_with_the_reason_attached(synced_stack: SyncedStack) -> None:
    for queue in ("request", "page", "finalize"):
        (message,) = synced_stack.dlq_messages[queue]
        reason = message["MessageAttributes"]["reason"]["StringValue"]
        assert reason.strip()
        assert len(reason.splitlines()) == 1


@pytest.mark.parametrize("wrong", ["client id", "client secret"])
async def test_rejected_credentials_fail_with_a_message_that_contains_neither(
    simulator: Callable[..., Awaitable[Simulator]], wrong: str
) -> None:
    # Given Vanta and credentials of which one is wrong (the likeliest place to echo them back)
    sim = await simulator(vulnerabilities=1, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    client_id = f"{CLIENT_ID}-wrong" if wrong == "client id" else CLIENT_ID
    client_secret = f"{CLIENT_SECRET}-wrong" if wrong == "client secret" else CLIENT_SECRET
    # When a token is requested
    async with aiohttp.ClientSession() as session:
        with pytest.raises(AuthError) as caught:
            await fetch_token(session, sim.auth_url, client_id, client_secret, attempts=1, min_interval=0)
    # Then the error, its cause chain and its repr name neither credential
    chain: list[BaseException] = []
    error: BaseException | None = caught.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    texts = [(type(e).__name__, f"{e} {e!r}") for e in chain]
    assert not leaks(texts, {"client id": CLIENT_ID, "client secret": CLIENT_SECRET})
