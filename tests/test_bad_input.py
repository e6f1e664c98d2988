"""Bad input at the edges never crashes: it is accepted, or rejected with one clear line.

Property tests (hypothesis) of the queue message parsers, of filter validation and of the CLI's
`--filter NAME=VALUE` handling, with arbitrary bytes, arbitrary JSON and mutations of the valid
examples in events/. A parser that raised anything but MessageError would make a poison message a
retry loop (the batch fails, SQS redelivers it five times); a CLI that raised would show a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vanta_vuln_sync.cli import main
from vanta_vuln_sync.messages import (
    SYNC_RESOURCES,
    Message,
    MessageError,
    parse_message,
    parse_page_message,
    parse_sync_request,
)
from vanta_vuln_sync.vanta.errors import InvalidFilterError
from vanta_vuln_sync.vanta.resources import RESOURCES, validate_filters

EVENTS = Path(__file__).resolve().parent.parent / "events"
# The bare message examples (the sqs-*.json files wrap the same bodies in an SQS event).
VALID_MESSAGES: list[dict[str, Any]] = [
    json.loads(path.read_text()) for path in sorted(EVENTS.glob("*.json")) if not path.name.startswith("sqs-")
]
PARSERS: tuple[Callable[[str | bytes], Message], ...] = (
    parse_message,
    parse_sync_request,
    parse_page_message,
)
FILTER_NAMES = sorted({name for spec in RESOURCES.values() for name in spec.filters})
FIELD_NAMES = sorted({key for message in VALID_MESSAGES for key in message} | {"filters", "mode", "reason"})

quick = settings(max_examples=60, deadline=None)

# orjson refuses integers outside 64 bits when dumping; huge numbers are still fed as raw text below.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from([*SYNC_RESOURCES, *FILTER_NAMES, "SyncRequest", "PageRange", "Finalize", ""])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=8,
)


def assert_one_clear_line(text: str) -> None:
    assert text.strip(), "an error without a message"
    assert len(text.splitlines()) == 1, f"error spans lines: {text!r}"


def rejection(parse: Callable[[str | bytes], Message], body: str | bytes) -> MessageError | None:
    """The MessageError `parse` raises for `body`, or None when it accepts it (anything else raises).
    An accepted message must survive a round trip: what the pipeline sends on is what it read."""
    try:
        message = parse(body)
    except MessageError as exc:
        return exc
    assert parse_message(message.to_json()) == message
    return None


def assert_accepted_or_rejected_clearly(body: str | bytes) -> None:
    """Every parser either returns a message or raises MessageError with a one-line, non-empty reason."""
    for parse in PARSERS:
        error = rejection(parse, body)
        if error is not None:
            assert error.reason == str(error)
            assert_one_clear_line(error.reason)


@st.composite
def mutated_messages(draw: st.DrawFn) -> dict[str, Any]:
    """A valid example with one to three fields removed, replaced by arbitrary JSON, or added."""
    message = dict(draw(st.sampled_from(VALID_MESSAGES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        key = draw(st.sampled_from(sorted(message)) | st.sampled_from(FIELD_NAMES) | st.text(max_size=8))
        action = draw(st.sampled_from(["drop", "replace", "filter"]))
        if action == "drop":
            message.pop(key, None)
        elif action == "replace":
            message[key] = draw(json_values)
        else:  # a filter with an arbitrary value, where a message carries filters
            resource = draw(st.sampled_from(SYNC_RESOURCES))
            name = draw(st.sampled_from(FILTER_NAMES) | st.text(max_size=8))
            value = draw(json_values)
            if message.get("type") == "SyncRequest":
                message["filters"] = {resource: {name: value}}
            else:
                message["filters"] = {name: value}
    return message


def test_examples_the_properties_mutate_are_valid() -> None:
    # Given the examples in events/, when parsed, then each is accepted (else mutations prove little)
    assert len(VALID_MESSAGES) >= 5
    for message in VALID_MESSAGES:
        parse_message(orjson.dumps(message))


@quick
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_accepted_or_rejected_with_one_line(body: bytes) -> None:
    assert_accepted_or_rejected_clearly(body)


@quick
@given(st.text(max_size=300))
def test_arbitrary_text_is_accepted_or_rejected_with_one_line(body: str) -> None:
    assert_accepted_or_rejected_clearly(body)


@quick
@given(json_values)
def test_arbitrary_json_is_accepted_or_rejected_with_one_line(document: Any) -> None:
    assert_accepted_or_rejected_clearly(orjson.dumps(document))


@quick
@given(
    st.fixed_dictionaries(
        {"v": st.just(1) | json_scalars, "type": st.sampled_from(["SyncRequest", "PageRange", "Finalize"])},
        optional={name: json_values for name in FIELD_NAMES if name not in ("v", "type")},
    )
)
def test_arbitrary_fields_of_each_message_type_are_accepted_or_rejected_with_one_line(
    document: dict[str, Any],
) -> None:
    assert_accepted_or_rejected_clearly(orjson.dumps(document))


@quick
@given(mutated_messages())
def test_mutated_valid_messages_are_accepted_or_rejected_with_one_line(document: dict[str, Any]) -> None:
    assert_accepted_or_rejected_clearly(orjson.dumps(document))


@quick
@given(st.sampled_from([b"1" * 400, b'{"v": 1' + b"0" * 30 + b"}", b"[" * 5000, b'{"v":1,"type":"\xff"}']))
def test_numbers_too_big_deep_nesting_and_bad_utf8_are_rejected_with_one_line(body: bytes) -> None:
    assert_accepted_or_rejected_clearly(body)


@pytest.mark.parametrize(
    "message",
    [
        {"v": 1, "type": "Finalize", "run_id": "20260101T000000Z-abc\n"},
        {
            "v": 1,
            "type": "PageRange",
            "run_id": "20260101T000000Z-abc",
            "resource": "vulnerabilities",
            "shard": "o00001\n",
            "seq": 0,
            "page_budget": 1,
        },
    ],
    ids=["run_id", "shard"],
)
def test_an_id_with_a_trailing_newline_is_rejected(message: dict[str, Any]) -> None:
    # A newline in a run id or shard would end up in S3 keys and state table keys.
    with pytest.raises(MessageError):
        parse_message(orjson.dumps(message))


@pytest.mark.parametrize("value", [None, {"a": 1}, ["x"]], ids=["null", "object", "array"])
def test_a_filter_value_that_is_not_a_string_number_or_boolean_is_rejected(value: Any) -> None:
    message = {"v": 1, "type": "SyncRequest", "resources": ["vulnerabilities"]}
    message["filters"] = {"vulnerabilities": {"q": value}}
    with pytest.raises(MessageError):
        parse_message(orjson.dumps(message))


filter_values = (
    st.text(max_size=40)
    | st.booleans()
    | st.integers()
    | st.datetimes(timezones=st.none() | st.just(UTC))
    | st.sampled_from(["true", "FALSE", " yes ", "critical", "2024-01-31T00:00:00Z", "2024-01-31", ""])
)


@quick
@given(
    resource=st.sampled_from(sorted(RESOURCES)) | st.text(max_size=20),
    filters=st.dictionaries(st.sampled_from(FILTER_NAMES) | st.text(max_size=20), filter_values, max_size=4),
)
def test_filters_are_rendered_as_strings_or_rejected_with_one_line(
    resource: str, filters: dict[str, str | bool | int | datetime]
) -> None:
    try:
        rendered = validate_filters(resource, filters)
    except InvalidFilterError as exc:
        assert_one_clear_line(str(exc))
    else:
        assert all(isinstance(value, str) and value for value in rendered.values())
        assert set(filters) <= set(rendered)


def _rejected(resource: str, name: str, value: str) -> bool:
    try:
        validate_filters(resource, {name.strip(): value})
    except InvalidFilterError:
        return True
    return False


@st.composite
def bad_filter_args(draw: st.DrawFn) -> tuple[str, str]:
    """(resource, NAME=VALUE text) that the CLI must refuse: no `=`, no name, an unknown name, or a
    known name with a value Vanta would not accept."""
    resource = draw(st.sampled_from(SYNC_RESOURCES))
    spec = RESOURCES[resource]
    kind = draw(st.sampled_from(["no-equals", "no-name", "unknown-name", "bad-value"]))
    if kind == "no-equals":
        return resource, draw(st.text(max_size=30).filter(lambda t: "=" not in t))
    if kind == "no-name":
        return resource, "=" + draw(st.text(max_size=30))
    if kind == "unknown-name":
        name = draw(
            st.text(min_size=1, max_size=20).filter(lambda n: "=" not in n and n.strip() not in spec.filters)
        )
        return resource, f"{name}={draw(st.text(max_size=20))}"
    typed = sorted(n for n, s in spec.filters.items() if s.kind.value != "text")
    name = draw(st.sampled_from(typed))
    value = draw(st.text(max_size=30).filter(lambda v: _rejected(resource, name, v)))
    return resource, f"{name}={value}"


def run_cli(argv: list[str]) -> tuple[int, str]:
    """`vuln-sync ARGV` in-process: its exit code and what it wrote to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors
            code = int(exc.code or 0)
    return code, err.getvalue()


@pytest.fixture
def offline_vanta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials set (so `fetch` gets as far as the filters) and Vanta pointing nowhere, no stack."""
    monkeypatch.setenv("VANTA_CLIENT_ID", "bad-input-test")
    monkeypatch.setenv("VANTA_CLIENT_SECRET", "bad-input-test")
    monkeypatch.setenv("VANTA_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("VANTA_AUTH_URL", "http://127.0.0.1:9/oauth/token")
    monkeypatch.delenv("VULN_SYNC_STACK", raising=False)


cli_settings = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.usefixtures("offline_vanta")
@cli_settings
@given(bad_filter_args())
def test_fetch_refuses_a_bad_filter_with_exit_2_and_one_error_line(args: tuple[str, str]) -> None:
    resource, pair = args
    code, err = run_cli(["fetch", f"--filter={pair}", "--", resource])
    assert code == 2
    assert_one_clear_line(err)
    assert err.startswith("vuln-sync: error: ")


@pytest.mark.usefixtures("offline_vanta")
@cli_settings
@given(bad_filter_args())
def test_resync_refuses_a_bad_filter_with_exit_2_and_one_error_line(args: tuple[str, str]) -> None:
    resource, pair = args
    code, err = run_cli(["resync", "--resource", resource, f"--filter={pair}", "--wait", "0"])
    assert code == 2
    assert_one_clear_line(err)
    assert err.startswith("vuln-sync: error: ")


@pytest.mark.usefixtures("offline_vanta")
@cli_settings
@given(st.text(max_size=30).filter(lambda name: name not in RESOURCES))
def test_fetch_and_resync_refuse_an_unknown_resource_with_exit_2_and_one_error_line(resource: str) -> None:
    for argv in (["fetch", "--", resource], ["resync", f"--resource={resource}", "--wait", "0"]):
        code, err = run_cli(argv)
        assert code == 2
        assert_one_clear_line(err)
        assert err.startswith("vuln-sync: error: ")
        assert "unknown resource" in err


@pytest.mark.usefixtures("offline_vanta")
@cli_settings
@given(st.integers().filter(lambda n: not 1 <= n <= 100))
def test_fetch_refuses_a_page_size_out_of_range_with_exit_2_and_one_error_line(size: int) -> None:
    code, err = run_cli(["fetch", f"--page-size={size}", "vulnerabilities"])
    assert code == 2
    assert_one_clear_line(err)
    assert "--page-size" in err


@pytest.mark.usefixtures("offline_vanta")
def test_resync_with_valid_arguments_but_no_stack_says_how_to_name_one() -> None:
    # Given a good request but no stack, when resync runs, then it stops before any AWS call, in one line
    code, err = run_cli(["resync", "--resource", "vulnerabilities", "--filter", "severity=high"])
    assert code == 2
    assert err.strip() == "vuln-sync: error: no stack: pass --stack NAME (or local) or set VULN_SYNC_STACK"
