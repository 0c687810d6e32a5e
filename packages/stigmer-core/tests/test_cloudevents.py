"""CloudEvent parsing (structured and binary mode), event filters and webhook signatures: known
answers, and for any input a clear ``InvalidArgument`` or a result, never another exception."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stigmer.core import (
    InvalidArgument,
    event_from_proto,
    event_to_proto,
    filter_may_match,
    listen_filters,
    parse_binary_event,
    parse_structured_event,
    schedule_on_filters,
    signature_matches,
)

EVENT = {"specversion": "1.0", "id": "1", "source": "https://shop.example", "type": "com.acme.paid"}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def test_structured_event_round_trips_through_the_contract() -> None:
    event = {
        **EVENT,
        "subject": "order-7",
        "time": "2026-12-05T10:00:00Z",
        "data": {"n": 7},
        "traceparent": "x",
    }
    parsed = parse_structured_event(json.dumps(event).encode())
    assert parsed == event
    back = event_from_proto(event_to_proto(parsed))
    assert back == {**event, "time": "2026-12-05T10:00:00Z"}


@pytest.mark.parametrize("missing", ["specversion", "id", "source", "type"])
def test_a_missing_required_attribute_is_named(missing: str) -> None:
    event = {k: v for k, v in EVENT.items() if k != missing}
    with pytest.raises(InvalidArgument, match=f"no '{missing}' attribute"):
        parse_structured_event(json.dumps(event).encode())


def test_binary_mode_reads_ce_headers_and_the_body() -> None:
    headers = {
        "CE-SpecVersion": "1.0",
        "ce-id": "9",
        "ce-source": "s",
        "ce-type": "t",
        "Content-Type": "application/json",
    }
    event = parse_binary_event(headers, b'{"a": 1}')
    assert event == {
        "specversion": "1.0",
        "id": "9",
        "source": "s",
        "type": "t",
        "datacontenttype": "application/json",
        "data": {"a": 1},
    }
    assert parse_binary_event({**headers, "Content-Type": "text/plain"}, b"hi")["data"] == "hi"
    with pytest.raises(InvalidArgument, match="not JSON"):
        parse_binary_event(headers, b"{")
    with pytest.raises(InvalidArgument, match=r"specversion '0\.3'"):
        parse_binary_event({**headers, "ce-specversion": "0.3"}, b"")


def test_filters_of_listen_tasks_and_schedule_on() -> None:
    document = {
        "schedule": {"on": {"any": [{"with": {"type": "a"}}, {"with": {"type": "b", "source": "s"}}]}},
        "do": [
            {"w": {"listen": {"to": {"one": {"with": {"type": "x"}}}}}},
            {"f": {"fork": {"branches": [{"v": {"listen": {"to": {"all": [{"with": {"type": "y"}}]}}}}]}}},
        ],
    }
    assert [f["with"]["type"] for f in listen_filters(document)] == ["x", "y"]
    on = schedule_on_filters(document)
    assert [f["with"]["type"] for f in on] == ["a", "b"]
    assert filter_may_match(on[1], {"type": "b", "source": "s"})
    assert not filter_may_match(on[1], {"type": "b", "source": "t"})
    assert filter_may_match({"with": {"type": '${ startswith("b") }'}}, {"type": "zz"})  # left to the runner
    assert schedule_on_filters({"do": []}) == []
    upstream = {"with": {"id": "approve", "type": "signal"}}  # upstream's dialect: a signal by id
    assert filter_may_match(upstream, {"type": "approve"}) and not filter_may_match(upstream, {"type": "x"})
    for bad, says in (
        ({"all": [{"with": {"type": "a"}}]}, "all is not supported"),
        ({"one": {"with": {"type": "${ . }"}}}, "literal values"),
        ({"one": {}}, "needs with"),
        ({"some": 1}, "takes one or any"),
    ):
        with pytest.raises(InvalidArgument, match=says):
            schedule_on_filters({"schedule": {"on": bad}})


def test_signature_matches_github_scheme_only() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    good = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature_matches(b"k", body, good)
    assert signature_matches(b"k", body, good.upper().replace("SHA256=", "sha256="))
    for bad in (None, "", good[:-1], good + "0", "sha1=" + good[7:], good[7:], "sha256=" + "g" * 64):
        assert not signature_matches(b"k", body, bad)
    assert not signature_matches(b"other", body, good)
    assert not signature_matches(b"k", body + b" ", good)


@given(st.binary(max_size=300))
def test_any_structured_body_parses_or_is_refused_clearly(body: bytes) -> None:
    try:
        event = parse_structured_event(body)
    except InvalidArgument as err:
        assert err.message
    else:
        assert event["specversion"] == "1.0"


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=8))
def test_any_json_object_parses_or_is_refused_clearly(attributes: dict[str, Any]) -> None:
    for candidate in (attributes, {**EVENT, **attributes}):
        try:
            event_to_proto(parse_structured_event(json.dumps(candidate).encode()))
        except InvalidArgument as err:
            assert err.message


@given(
    st.dictionaries(
        st.sampled_from(
            ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-Weird_Name", "content-type", "x"]
        ),
        st.text(max_size=12),
    ),
    st.binary(max_size=100),
)
def test_any_binary_mode_request_parses_or_is_refused_clearly(headers: dict[str, str], body: bytes) -> None:
    try:
        event_to_proto(parse_binary_event(headers, body))
    except InvalidArgument as err:
        assert err.message


@given(st.binary(max_size=64), st.binary(max_size=64), st.one_of(st.none(), st.text(max_size=80)))
def test_any_signature_header_is_a_yes_or_no(key: bytes, body: bytes, header: str | None) -> None:
    assert signature_matches(key, body, header) in (True, False)


@given(json_values)
def test_any_document_yields_filters_or_a_clear_refusal(document: Any) -> None:
    listen_filters(document)
    try:
        schedule_on_filters({"schedule": {"on": document}})
    except InvalidArgument as err:
        assert err.message
