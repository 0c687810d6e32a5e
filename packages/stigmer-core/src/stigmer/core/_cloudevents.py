"""CloudEvents 1.0 as Stigmer reads them, the event filters of workflow documents, and webhook
signatures: what the server's ``POST /events`` and ``POST /hooks/{name}``, the store's
``PublishEvent`` and ``stigmer event send`` share.

An event is handled as its JSON envelope: a dict with ``specversion``, ``id``, ``source``,
``type`` and optionally ``subject``, ``time``, ``datacontenttype``, ``data`` and extension
attributes. Bad input raises :class:`InvalidArgument` naming the attribute, never anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from stigmer.core._errors import InvalidArgument

if TYPE_CHECKING:
    from stigmer.proto.v1 import backend_service_pb2 as svc

__all__ = [
    "EVENT_LABEL",
    "SIGNATURE_HEADER",
    "TRIGGER_LABEL",
    "cloud_event",
    "event_from_proto",
    "event_to_proto",
    "filter_may_match",
    "listen_filters",
    "parse_binary_event",
    "parse_structured_event",
    "schedule_on_filters",
    "signature_matches",
]

TRIGGER_LABEL = "stigmer.ai/trigger"  # the Trigger whose webhook started an execution
EVENT_LABEL = "stigmer.ai/event-type"  # the type of the event whose `schedule.on` started it
SIGNATURE_HEADER = "x-hub-signature-256"
REQUIRED = ("specversion", "id", "source", "type")
_KNOWN = {*REQUIRED, "subject", "time", "datacontenttype", "dataschema", "data", "data_base64"}
_EXTENSION = re.compile(r"[a-z0-9]{1,20}")
_MAX_ATTRIBUTE = 4096
_SIGNAL_TYPES = ("signal", "query", "update")


def cloud_event(attributes: Any) -> dict[str, Any]:
    """The validated envelope of an event given as a JSON object (structured mode)."""
    if not isinstance(attributes, Mapping):
        raise InvalidArgument(
            "a CloudEvent is a JSON object with specversion, id, source and type", ["event"]
        )
    event: dict[str, Any] = {}
    for name in REQUIRED:
        value = attributes.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidArgument(
                f"the CloudEvent has no {name!r} attribute (a non-empty string); "
                "required: specversion, id, source, type",
                [name],
            )
        event[name] = value
    if event["specversion"] != "1.0":
        raise InvalidArgument(
            f"specversion {event['specversion'][:40]!r} is not supported; send CloudEvents 1.0",
            ["specversion"],
        )
    for name, value in attributes.items():
        if not isinstance(name, str):
            raise InvalidArgument("CloudEvent attribute names are strings", ["event"])
        if name in REQUIRED or name == "data":
            continue
        if name not in _KNOWN and not _EXTENSION.fullmatch(name):
            raise InvalidArgument(
                f"invalid CloudEvent attribute name {name[:40]!r}: lower-case letters and digits, up to 20",
                [name],
            )
        if not isinstance(value, str | int | bool) or (
            isinstance(value, str) and len(value) > _MAX_ATTRIBUTE
        ):
            raise InvalidArgument(f"CloudEvent attribute {name!r} must be a short string", [name])
        event[name] = value if isinstance(value, str) else json.dumps(value)
    for name in REQUIRED[1:]:
        if len(event[name]) > _MAX_ATTRIBUTE:
            raise InvalidArgument(
                f"CloudEvent attribute {name!r} is longer than {_MAX_ATTRIBUTE} characters", [name]
            )
    if "data_base64" in event:
        raise InvalidArgument(
            "binary data (data_base64) is not supported; send JSON or text data", ["data_base64"]
        )
    if "data" in attributes:
        event["data"] = attributes["data"]
    return event


def parse_structured_event(body: bytes) -> dict[str, Any]:
    """An event in structured mode (``application/cloudevents+json``): the envelope is the body."""
    try:
        attributes = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"the body is not JSON: {exc}", ["body"]) from None
    return cloud_event(attributes)


def parse_binary_event(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """An event in binary mode: attributes in ``ce-*`` headers, the data in the body (JSON when
    the ``content-type`` says so, else UTF-8 text)."""
    attributes: dict[str, Any] = {}
    for key, value in headers.items():
        lower = key.lower()
        if lower.startswith("ce-") and len(lower) > 3:
            attributes[lower[3:]] = value
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if content_type:
        attributes["datacontenttype"] = content_type
    event = cloud_event(attributes)
    if body:
        media = content_type.split(";", 1)[0].strip().lower()
        if media == "application/json" or media.endswith("+json"):
            try:
                event["data"] = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidArgument(f"the body is not JSON: {exc}", ["data"]) from None
        else:
            try:
                event["data"] = body.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgument(
                    "the event data is not UTF-8 text; send JSON or text", ["data"]
                ) from None
    return event


def event_to_proto(event: Mapping[str, Any]) -> svc.CloudEvent:
    """The contract's ``CloudEvent`` of an envelope (validated again)."""
    from google.protobuf import json_format
    from stigmer.proto.v1 import backend_service_pb2 as svc

    checked = cloud_event(event)
    message = svc.CloudEvent(
        id=checked["id"],
        source=checked["source"],
        type=checked["type"],
        subject=str(checked.get("subject", "")),
        data_content_type=str(checked.get("datacontenttype", "")),
    )
    if checked.get("time"):
        try:
            message.time.FromJsonString(str(checked["time"]))
        except ValueError:
            raise InvalidArgument(
                f"time {str(checked['time'])[:40]!r} is not an RFC 3339 timestamp", ["time"]
            ) from None
    if "data" in checked and checked["data"] is not None:
        try:
            json_format.ParseDict(checked["data"], message.data)
        except (json_format.ParseError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"the event data is not JSON-compatible: {exc}", ["data"]) from None
    for name, value in checked.items():
        if name not in _KNOWN:
            message.extensions[name] = str(value)
    return message


def event_from_proto(message: svc.CloudEvent) -> dict[str, Any]:
    """The envelope of a contract ``CloudEvent``; :class:`InvalidArgument` when it lacks an id,
    source or type."""
    from google.protobuf import json_format

    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": message.id,
        "source": message.source,
        "type": message.type,
    }
    if message.subject:
        event["subject"] = message.subject
    if message.HasField("time"):
        event["time"] = message.time.ToJsonString()
    if message.data_content_type:
        event["datacontenttype"] = message.data_content_type
    event.update(message.extensions)
    if message.HasField("data"):
        event["data"] = json_format.MessageToDict(message.data)
    return cloud_event(event)


# -- the event filters of workflow documents -------------------------------------------------------


def _strategy_filters(strategy: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(strategy, Mapping):
        return
    for key in ("one",):
        if isinstance(strategy.get(key), Mapping):
            yield strategy[key]
    for key in ("any", "all"):
        if isinstance(strategy.get(key), list):
            yield from (f for f in strategy[key] if isinstance(f, Mapping))
    if isinstance(strategy.get("until"), Mapping):
        yield from _strategy_filters(strategy["until"])


def listen_filters(document: Any) -> list[Mapping[str, Any]]:
    """The event filters of every ``listen`` task in a workflow document (nested ones too)."""
    found: list[Mapping[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, Mapping):
            listen = value.get("listen")
            if isinstance(listen, Mapping):
                found.extend(_strategy_filters(listen.get("to")))
            for key, item in value.items():
                if key != "schedule":
                    walk(item)

    walk(document.get("do") if isinstance(document, Mapping) else None)
    return found


def _is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.strip().startswith("${")


def filter_may_match(filter_: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether ``event`` may match a filter ``{with: {attribute: value}}``: every literal value
    equals the event's attribute (an expression is left to the runner, which checks it)."""
    wanted = filter_.get("with") or {}
    if not isinstance(wanted, Mapping):
        return False
    if wanted.get("type") in _SIGNAL_TYPES and isinstance(wanted.get("id"), str):
        # upstream's listen for a signal by id waits for an event of that type (its dialect)
        return bool(event.get("type") == wanted["id"])
    return all(_is_expression(expected) or event.get(key) == expected for key, expected in wanted.items())


def schedule_on_filters(document: Any) -> list[Mapping[str, Any]]:
    """The filters of a workflow document's ``schedule.on`` (``one`` or ``any``); empty when it
    has none. A run starts for each event matching one of them. Expressions and ``all`` are
    refused (an event alone decides whether a run starts)."""
    schedule = document.get("schedule") if isinstance(document, Mapping) else None
    on = schedule.get("on") if isinstance(schedule, Mapping) else None
    if on is None:
        return []
    where = "spec.schedule.on"
    if not isinstance(on, Mapping) or not on:
        raise InvalidArgument(f"{where} takes one: {{with: {{type: ...}}}} or any: [filters]", [where])
    if "all" in on or "until" in on:
        raise InvalidArgument(
            f"{where}.{'all' if 'all' in on else 'until'} is not supported: a run starts for each "
            "matching event; use one or any",
            [where],
        )
    if set(on) - {"one", "any"}:
        raise InvalidArgument(f"{where} takes one or any", [where])
    filters: Any = [on["one"]] if "one" in on else on.get("any")
    if not isinstance(filters, list) or not filters:
        raise InvalidArgument(f"{where}.any is a non-empty list of filters", [where])
    for i, filter_ in enumerate(filters):
        wanted = filter_.get("with") if isinstance(filter_, Mapping) else None
        if not isinstance(wanted, Mapping) or not wanted:
            raise InvalidArgument(f"{where}: filter {i} needs with: {{type: ...}}", [where])
        for key, value in wanted.items():
            if _is_expression(value) or not isinstance(value, str | int | float | bool):
                raise InvalidArgument(
                    f"{where}: filter {i} compares {key!r} with {str(value)[:40]!r}; "
                    "schedule.on filters compare attributes with literal values",
                    [where],
                )
    return list(filters)


# -- webhook signatures --------------------------------------------------------------------------


def signature_matches(key: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (GitHub's ``X-Hub-Signature-256: sha256=<hex>``) is the HMAC-SHA256 of
    ``body`` under ``key``; compared in constant time. A missing or malformed header is False."""
    if not header:
        return False
    scheme, sep, digest = header.strip().partition("=")
    if not sep or scheme.strip().lower() != "sha256":
        return False
    digest = digest.strip().lower()
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        return False
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, digest)
