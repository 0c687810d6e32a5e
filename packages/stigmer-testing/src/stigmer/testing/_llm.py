"""``ScriptedLLM``: a model server on 127.0.0.1 answering from a script.

It speaks the OpenAI chat-completions wire format (JSON and SSE streaming, tool calls; also what
Ollama, vLLM and other OpenAI-compatible servers serve under ``/v1``) and the Anthropic messages
format (JSON and SSE). Real SDK clients talk to it, so nothing is mocked. The response builders
(:func:`openai_response`, :func:`anthropic_response`) serve other stand-ins that decide their
replies themselves.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._http import HttpWorld, Request, Response, json_response

__all__ = [
    "Reply",
    "ScriptedLLM",
    "anthropic_response",
    "call",
    "error",
    "openai_response",
    "text",
]

_ids = itertools.count(1)


@dataclass
class Reply:
    """One scripted model response: text, tool calls, or an HTTP error status."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    error: str = ""
    input_tokens: int = 11
    output_tokens: int = 7
    delay: float = 0.0  # seconds to wait before answering (to provoke client timeouts)


def text(value: str) -> Reply:
    """A reply that says ``value``."""
    return Reply(text=value)


def call(tool: str, **args: Any) -> Reply:
    """A reply that calls ``tool`` with ``args``."""
    return Reply(tool_calls=[(tool, args)])


def error(status: int, message: str = "scripted error") -> Reply:
    """A reply that fails with HTTP ``status``."""
    return Reply(status=status, error=message)


class ScriptedLLM(HttpWorld):
    """Serves scripted replies in order, then ``respond(body)`` if given, then ``default``.

    ``requests`` holds every model request body, ``headers`` their headers (lower-case names).
    """

    def __init__(
        self,
        replies: list[Reply] | None = None,
        *,
        default: str = "done",
        respond: Callable[[dict[str, Any]], Reply | None] | None = None,
    ) -> None:
        super().__init__()
        self.replies: list[Reply] = list(replies or [])
        self.default = default
        self.respond = respond
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._script_lock = threading.Lock()

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    base_url = openai_base_url

    def env(self) -> dict[str, str]:
        """Point every agent at this server, as one would at a local Ollama."""
        return {"STIGMER_LLM_BASE_URL": self.openai_base_url}

    def add(self, *replies: Reply) -> None:
        with self._script_lock:
            self.replies.extend(replies)

    def messages(self, index: int) -> list[dict[str, Any]]:
        """The messages of the ``index``-th model request."""
        return list(self.requests[index]["messages"])

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self._script_lock:
            self.requests.append(body)
            self.headers.append(headers)
            if self.replies:
                return self.replies.pop(0)
        answer = self.respond(body) if self.respond is not None else None
        return answer if answer is not None else Reply(text=self.default)

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return json_response({"error": {"message": f"no route {request.method} {request.path}"}}, 404)
        body: dict[str, Any] = request.json() or {}
        reply = self._next(body, request.headers)
        if reply.delay:
            time.sleep(reply.delay)
        if request.path.endswith("/chat/completions"):
            return openai_response(reply, body)
        if request.path.endswith("/messages"):
            return anthropic_response(reply, body)
        return json_response({"error": {"message": f"no route {request.path}"}}, 404)


# -- errors ----------------------------------------------------------------------------------------
def _error_response(reply: Reply) -> Response:
    return json_response(
        {"error": {"message": reply.error, "type": "scripted", "code": str(reply.status)}},
        reply.status,
        headers={"retry-after-ms": "10", "retry-after": "0"},
    )


def _sse(events: Iterator[tuple[str, Any]]) -> Response:
    def chunks() -> Iterator[bytes]:
        for name, payload in events:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            yield ((f"event: {name}\n" if name else "") + f"data: {data}\n\n").encode()

    return Response(content_type="text/event-stream", stream=chunks())


def _pieces(value: str) -> list[str]:
    """Split text into a few deltas, as a real streaming server would."""
    if not value:
        return []
    size = max(1, len(value) // 3)
    return [value[i : i + size] for i in range(0, len(value), size)]


# -- OpenAI chat completions -----------------------------------------------------------------------
def openai_response(reply: Reply, body: dict[str, Any]) -> Response:
    """``reply`` as an OpenAI chat-completions response to ``body`` (SSE when it asks to stream)."""
    if reply.status != 200:
        return _error_response(reply)
    if body.get("stream"):
        return _sse(_openai_chunks(reply, body))
    return json_response(_openai_completion(reply, body))


def _openai_usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def _openai_tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{next(_ids)}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for name, args in reply.tool_calls
    ]


def _openai_completion(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = _openai_tool_calls(reply)
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": 1700000000,
        "model": body.get("model", "stand-in"),
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}
        ],
        "usage": _openai_usage(reply),
    }


def _openai_chunks(reply: Reply, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    base = {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": body.get("model", "stand-in"),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[str, Any]:
        return ("", {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(reply.text):
        yield chunk({"content": piece})
    for index, tc in enumerate(_openai_tool_calls(reply)):
        yield chunk({"tool_calls": [{"index": index, **tc}]})
    yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
    yield ("", {**base, "choices": [], "usage": _openai_usage(reply)})
    yield ("", "[DONE]")


# -- Anthropic messages ----------------------------------------------------------------------------
def anthropic_response(reply: Reply, body: dict[str, Any]) -> Response:
    """``reply`` as an Anthropic messages response to ``body`` (SSE when it asks to stream)."""
    if reply.status != 200:
        return _error_response(reply)
    if body.get("stream"):
        return _sse(_anthropic_events(reply, body))
    return json_response(_anthropic_message(reply, body))


def _anthropic_content(reply: Reply) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for name, args in reply.tool_calls:
        content.append({"type": "tool_use", "id": f"toolu_{next(_ids)}", "name": name, "input": args})
    return content


def _anthropic_message(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"msg_{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "stand-in"),
        "content": _anthropic_content(reply),
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    }


def _anthropic_events(reply: Reply, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    message = _anthropic_message(reply, body)
    content = message.pop("content")
    message["content"] = []
    message["stop_reason"] = None
    message["usage"] = {"input_tokens": reply.input_tokens, "output_tokens": 1}
    yield "message_start", {"type": "message_start", "message": message}
    for index, block in enumerate(content):
        start: dict[str, Any]
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
            for piece in _pieces(block["text"]):
                delta = {"type": "text_delta", "text": piece}
                yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use" if reply.tool_calls else "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": reply.output_tokens},
        },
    )
    yield "message_stop", {"type": "message_stop"}
