"""``FullstackWorld``: the URLs the full-stack tests' workflows call, and their stand-in model."""

from __future__ import annotations

import time
from typing import Any

from ._http import HttpWorld, Request, Response, json_response
from ._llm import Reply, openai_response

__all__ = ["FullstackWorld"]


class FullstackWorld(HttpWorld):
    """The URLs the full-stack workflows call, and an OpenAI-compatible model under ``/v1``.

    ``hits`` counts requests per path (and per ``chat:…`` conversation step); ``/slow…`` paths
    take 3 s, ``/echo…`` echoes its query, ``/fail-once…`` answers 503 the first time. The model answers from the conversation: "add 2 and 3"
    / "add 4 and 5" call the ``counter`` tool (a sub-agent), "delete item" calls ``delete_item``,
    a sub-agent (``SUBAGENT`` in its instructions) answers plainly; the first answer after a tool
    call of "add 2 and 3", and the first ``SLOW`` sub-agent request, take ``slow_chat`` seconds (so
    a test can kill a worker meanwhile). Every model request first waits ``chat_delay`` seconds.
    "WORKSPACE write" writes ``notes.txt`` with the files tool, "WORKSPACE read" reads it back;
    after either call the model answers ``tool said: <the result>``. A conversation saying "FAIL
    AFTER TOOL" fails its first request after a tool call (400) once (``_fail_after_tool``).
    """

    def __init__(self, reply: str = "Hello from the stand-in model") -> None:
        super().__init__()
        self.hits: dict[str, int] = {}
        self.reply = reply
        self.slow_chat = 6.0
        self.chat_delay = 0.0

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits.get(path, 0)

    def _hit(self, key: str) -> int:
        with self.lock:
            self.hits[key] = self.hits.get(key, 0) + 1
            return self.hits[key]

    def handle(self, request: Request) -> Response:
        path = request.path
        count = self._hit(path)
        if path.endswith("/chat/completions"):
            if path.startswith("/slow"):
                time.sleep(self.slow_chat)  # a model request long enough to cancel during
            if self.chat_delay:
                time.sleep(self.chat_delay)
            body: dict[str, Any] = request.json() or {}
            failed = self._fail_after_tool(body)
            if failed is not None:
                return failed
            return openai_response(self._chat(body), body)
        if path.startswith("/slow"):
            time.sleep(3)
        if path.startswith("/fail-once") and count == 1:
            return json_response({"error": "down, try again"}, 503)
        reply: dict[str, Any] = {"path": path, "count": count}
        if path.startswith("/echo"):  # an API that echoes the query it got (URL-encoded)
            reply["query"] = request.query
        return json_response(reply)

    def _fail_after_tool(self, body: dict[str, Any]) -> Response | None:
        """A conversation that says "FAIL AFTER TOOL": counted under ``chat:fail:first`` (no
        tool result yet) and ``chat:fail:after-tool``; the first request after the tool call is
        answered 400 (not retried), later ones as usual."""
        messages = body.get("messages") or []
        if not any(
            "FAIL AFTER TOOL" in str(m.get("content", "")) for m in messages if m.get("role") == "user"
        ):
            return None
        has_tool = any(m.get("role") == "tool" for m in messages)
        seen = self._hit("chat:fail:after-tool" if has_tool else "chat:fail:first")
        if has_tool and seen == 1:
            return json_response(
                {"error": {"message": "bad request: model unloaded", "type": "invalid"}}, 400
            )
        return None

    def _chat(self, body: dict[str, Any]) -> Reply:
        messages = body.get("messages") or []
        last_user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        asks_delete = "delete item" in str(last_user.get("content", ""))
        asks_add = "add 2 and 3" in str(last_user.get("content", ""))
        has_tool = any(m.get("role") == "tool" for m in messages)
        # "add 4 and 5" is the same conversation as "add 2 and 3", except that the sub-agent
        # (the tool call) is the slow step instead of the model request after it.
        slow_tool = "add 4 and 5" in str(last_user.get("content", ""))
        asks_add = asks_add or slow_tool
        prefix = "chat:add45" if slow_tool else "chat:add"
        said = str(last_user.get("content", ""))
        if "WORKSPACE" in said:
            if messages and messages[-1].get("role") == "tool":
                return _reply(text=f"tool said: {messages[-1].get('content', '')}")
            if "WORKSPACE write" in said:
                return _reply(tool_calls=[("write_file", {"path": "notes.txt", "content": "from turn one"})])
            return _reply(tool_calls=[("read_file", {"path": "notes.txt"})])
        if any("SUBAGENT" in str(m.get("content", "")) for m in messages):
            slow = any("SLOW" in str(m.get("content", "")) for m in messages)
            sub = "chat:slowsub" if slow else "chat:sub"
            if self._hit(sub) == 1 and slow:
                time.sleep(self.slow_chat)  # long enough to kill the worker during the tool call
            asks_add = asks_delete = has_tool = False  # the sub-agent answers in plain text
        if asks_add:
            seen = self._hit(f"{prefix}:after-tool" if has_tool else f"{prefix}:first")
            if has_tool and seen == 1 and not slow_tool:
                time.sleep(self.slow_chat)  # long enough to kill the worker meanwhile
        if asks_add and not has_tool:
            task = "add 4 and 5" if slow_tool else "add 2 and 3"
            return _reply(tool_calls=[("counter", {"task": task})])
        if asks_add:
            return _reply(text="4 + 5 = 9" if slow_tool else "2 + 3 = 5")
        if has_tool:
            return _reply(text="Item 42 is gone.")
        if asks_delete:
            return _reply(tool_calls=[("delete_item", {"item": "42"})])
        return _reply(text=self.reply)


def _reply(text: str = "", tool_calls: list[tuple[str, dict[str, Any]]] | None = None) -> Reply:
    """A model reply with the usage every answer of the world reports (7 tokens in, 5 out)."""
    return Reply(text=text, tool_calls=list(tool_calls or []), input_tokens=7, output_tokens=5)
