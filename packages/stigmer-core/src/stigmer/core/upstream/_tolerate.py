"""Two spellings upstream's runner documents use that the DSL 1.0 names differently:
``document.description`` (the DSL has ``summary``) and a call's ``with.timeout_seconds`` (the DSL
has the task's ``timeout``). Both are mapped, with a notice, on every Workflow read."""

from __future__ import annotations

from typing import Any

from stigmer.core.upstream._common import Mapping

__all__ = ["tolerate_document"]


def tolerate_document(spec: dict[str, Any], m: Mapping) -> dict[str, Any]:
    out = dict(spec)
    document = out.get("document")
    if isinstance(document, dict) and "description" in document:
        document = dict(document)
        description = document.pop("description")
        if description not in (None, ""):
            document.setdefault("summary", str(description))
        out["document"] = document
        m.rename("document.description", "document.summary")
    if not _mentions_timeout_seconds(out.get("do")):  # the usual case: nothing to copy
        return out
    moved = [0]
    result = _walk(out, moved)
    if moved[0]:
        m.rename("with.timeout_seconds", "timeout.after.seconds")
    assert isinstance(result, dict)
    return result


def _mentions_timeout_seconds(value: Any) -> bool:
    if isinstance(value, list):
        return any(_mentions_timeout_seconds(v) for v in value)
    if isinstance(value, dict):
        return "timeout_seconds" in value or any(_mentions_timeout_seconds(v) for v in value.values())
    return False


def _walk(value: Any, moved: list[int]) -> Any:
    if isinstance(value, list):
        return [_walk(v, moved) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _walk(v, moved) for k, v in value.items()}
    with_ = out.get("with")
    if "call" in out and isinstance(with_, dict) and "timeout_seconds" in with_:
        with_ = dict(with_)
        seconds = with_.pop("timeout_seconds")
        out["with"] = with_
        out.setdefault("timeout", {"after": {"seconds": seconds}})
        moved[0] += 1
    return out
