"""Shared fixtures of the integration tests.

``stigmer``: run the real ``stigmer`` command (``python -m stigmer.cli`` in this environment) in a
fresh ``STIGMER_HOME`` with a real SQLite store; returns the completed process.
``fullstack_world``: the URLs the full-stack tests' workflows call and their stand-in model.
The stand-ins themselves live in ``stigmer.testing``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stigmer.testing import (
    HttpWorld,
    Reply,
    Request,
    Response,
    cli_env,
    json_response,
    openai_response,
    self_signed_cert,
)

ROOT = Path(__file__).resolve().parent.parent

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def stigmer_home(tmp_path: Path) -> Path:
    home = tmp_path / "stigmer-home"
    home.mkdir()
    return home


# Runs the CLI as if the named plugins were not installed (their entry points hidden).
_HIDE_PLUGINS = """
import importlib.metadata as md, sys
_all = md.entry_points
def entry_points(**kw):
    found = _all(**kw)
    if "group" in kw:
        return md.EntryPoints(ep for ep in found if ep.name not in {hidden!r})
    return found
md.entry_points = entry_points
from stigmer.cli._app import main
main(sys.argv[1:])
"""


@pytest.fixture
def stigmer(stigmer_home: Path, tmp_path: Path) -> StigmerCli:
    def run(
        *args: str,
        input: str | None = None,
        timeout: float = 90,
        env: dict[str, str] | None = None,
        hide_plugins: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "stigmer.cli"]
        if hide_plugins:
            command = [sys.executable, "-c", _HIDE_PLUGINS.format(hidden=set(hide_plugins))]
        return subprocess.run(
            [*command, *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env={**cli_env(stigmer_home), **(env or {})},
        )

    return run


@pytest.fixture
def stigmer_env(stigmer_home: Path) -> dict[str, str]:
    """The environment the ``stigmer`` fixture runs the CLI with (for processes started by hand)."""
    return cli_env(stigmer_home)


@pytest.fixture
def make_cert(tmp_path: Path) -> Callable[[str], tuple[Path, Path]]:
    """``make_cert(name)``: a self-signed certificate and key named ``name`` in the test's folder
    (``tls_files``, the one named ``server`` in a folder of its own, comes with ``stigmer.testing``)."""
    return lambda name: self_signed_cert(tmp_path, name=name)


class FullstackWorld(HttpWorld):
    """The URLs the full-stack workflows call, and an OpenAI-compatible model under ``/v1``.

    ``hits`` counts requests per path (and per ``chat:…`` conversation step); ``/slow…`` paths
    take 3 s, ``/echo…`` echoes its query. The model answers from the conversation: "add 2 and 3"
    / "add 4 and 5" call the ``counter`` tool (a sub-agent), "delete item" calls ``delete_item``,
    a sub-agent (``SUBAGENT`` in its instructions) answers plainly; the first answer after a tool
    call of "add 2 and 3", and the first ``SLOW`` sub-agent request, take ``slow_chat`` seconds (so
    a test can kill a worker meanwhile). Every model request first waits ``chat_delay`` seconds.
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
            return openai_response(self._chat(body), body)
        if path.startswith("/slow"):
            time.sleep(3)
        reply: dict[str, Any] = {"path": path, "count": count}
        if path.startswith("/echo"):  # an API that echoes the query it got (URL-encoded)
            reply["query"] = request.query
        return json_response(reply)

    def _chat(self, body: dict[str, Any]) -> Reply:
        messages = body.get("messages") or []
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        asks_delete = "delete item" in str(last_user.get("content", ""))
        asks_add = "add 2 and 3" in str(last_user.get("content", ""))
        has_tool = any(m.get("role") == "tool" for m in messages)
        # "add 4 and 5" is the same conversation as "add 2 and 3", except that the sub-agent
        # (the tool call) is the slow step instead of the model request after it.
        slow_tool = "add 4 and 5" in str(last_user.get("content", ""))
        asks_add = asks_add or slow_tool
        prefix = "chat:add45" if slow_tool else "chat:add"
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
        usage = {"input_tokens": 7, "output_tokens": 5}
        if asks_add and not has_tool:
            task = "add 4 and 5" if slow_tool else "add 2 and 3"
            return Reply(tool_calls=[("counter", {"task": task})], **usage)
        if asks_add:
            return Reply(text="4 + 5 = 9" if slow_tool else "2 + 3 = 5", **usage)
        if has_tool:
            return Reply(text="Item 42 is gone.", **usage)
        if asks_delete:
            return Reply(tool_calls=[("delete_item", {"item": "42"})], **usage)
        return Reply(text=self.reply, **usage)


@pytest.fixture(scope="module")
def fullstack_world() -> Iterator[FullstackWorld]:
    with FullstackWorld() as world:
        yield world
