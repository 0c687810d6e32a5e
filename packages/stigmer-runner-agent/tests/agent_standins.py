"""Stand-in LLM servers for tests: a real HTTP server on 127.0.0.1 speaking the OpenAI
chat-completions wire format (JSON and SSE streaming, tool calls), the Anthropic messages format
(SSE) and Ollama's OpenAI-compatible ``/v1`` API, answering from a script.

The real SDK clients (openai, anthropic) talk to it through pydantic-ai, so nothing is mocked.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
    return Reply(text=value)


def call(tool: str, **args: Any) -> Reply:
    return Reply(tool_calls=[(tool, args)])


def error(status: int, message: str = "scripted error") -> Reply:
    return Reply(status=status, error=message)


class ScriptedLLM:
    """Serves scripted replies in order; records every request body it received."""

    def __init__(self, replies: list[Reply] | None = None, *, default: str = "done") -> None:
        self.replies: list[Reply] = list(replies or [])
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> ScriptedLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            return self.replies.pop(0) if self.replies else Reply(text=self.default)

    # -- HTTP ------------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = llm._next(body, headers)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    self._send_json(
                        reply.status,
                        {"error": {"message": reply.error, "type": "scripted", "code": str(reply.status)}},
                        extra={"retry-after-ms": "10", "retry-after": "0"},
                    )
                    return
                if self.path.endswith("/chat/completions"):
                    if body.get("stream"):
                        self._send_sse(llm._openai_chunks(reply, body), named=False)
                    else:
                        self._send_json(200, llm._openai_completion(reply, body))
                elif self.path.endswith("/messages"):
                    if body.get("stream"):
                        self._send_sse(llm._anthropic_events(reply, body), named=True)
                    else:
                        self._send_json(200, llm._anthropic_message(reply, body))
                else:
                    self._send_json(404, {"error": {"message": f"no route {self.path}"}})

            def _send_json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _send_sse(self, events: Iterator[tuple[str, Any]], *, named: bool) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                for name, payload in events:
                    data = payload if isinstance(payload, str) else json.dumps(payload)
                    chunk = (f"event: {name}\n" if named else "") + f"data: {data}\n\n"
                    self.wfile.write(chunk.encode())
                    self.wfile.flush()
                self.close_connection = True

        return Handler

    # -- OpenAI chat completions -----------------------------------------------------------------
    @staticmethod
    def _pieces(value: str) -> list[str]:
        """Split text into a few deltas, as a real streaming server would."""
        if not value:
            return []
        size = max(1, len(value) // 3)
        return [value[i : i + size] for i in range(0, len(value), size)]

    def _openai_usage(self, reply: Reply) -> dict[str, int]:
        return {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }

    def _openai_tool_calls(self, reply: Reply) -> list[dict[str, Any]]:
        return [
            {
                "id": f"call_{next(self._ids)}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for name, args in reply.tool_calls
        ]

    def _openai_completion(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = self._openai_tool_calls(reply)
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": 1700000000,
            "model": body.get("model", "stand-in"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": self._openai_usage(reply),
        }

    def _openai_chunks(self, reply: Reply, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        base = {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": body.get("model", "stand-in"),
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[str, Any]:
            return ("", {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        yield chunk({"role": "assistant", "content": ""})
        for piece in self._pieces(reply.text):
            yield chunk({"content": piece})
        for index, tc in enumerate(self._openai_tool_calls(reply)):
            yield chunk({"tool_calls": [{"index": index, **tc}]})
        yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
        yield ("", {**base, "choices": [], "usage": self._openai_usage(reply)})
        yield ("", "[DONE]")

    # -- Anthropic messages ----------------------------------------------------------------------
    def _anthropic_content(self, reply: Reply) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for name, args in reply.tool_calls:
            content.append(
                {"type": "tool_use", "id": f"toolu_{next(self._ids)}", "name": name, "input": args}
            )
        return content

    def _anthropic_message(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"msg_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "stand-in"),
            "content": self._anthropic_content(reply),
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
        }

    def _anthropic_events(self, reply: Reply, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        message = self._anthropic_message(reply, body)
        content = message.pop("content")
        message["content"] = []
        message["stop_reason"] = None
        message["usage"] = {"input_tokens": reply.input_tokens, "output_tokens": 1}
        yield "message_start", {"type": "message_start", "message": message}
        for index, block in enumerate(content):
            if block["type"] == "text":
                start = {"type": "text", "text": ""}
                yield (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
                for piece in self._pieces(block["text"]):
                    delta = {"type": "text_delta", "text": piece}
                    yield (
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
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
                "delta": {
                    "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": reply.output_tokens},
            },
        )
        yield "message_stop", {"type": "message_stop"}
