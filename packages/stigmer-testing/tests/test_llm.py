"""The LLM stand-in answers real clients in the OpenAI and Anthropic wire formats."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from stigmer.testing import Reply, ScriptedLLM, call, error, text


def _post(url: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as failed:
        return failed.code, failed.read().decode()


def test_the_openai_client_gets_scripted_text_then_tool_calls_then_the_default() -> None:
    from openai import OpenAI

    with ScriptedLLM([text("Hello."), call("add", a=2, b=3)], default="fallback") as llm:
        client = OpenAI(base_url=llm.openai_base_url, api_key="sk-test", max_retries=0)
        first = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        second = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "add"}])
        third = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "?"}])
    assert first.choices[0].message.content == "Hello."
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None and first.usage.prompt_tokens == 11
    [tool_call] = second.choices[0].message.tool_calls or []
    assert tool_call.function.name == "add"  # type: ignore[union-attr]
    assert json.loads(tool_call.function.arguments) == {"a": 2, "b": 3}  # type: ignore[union-attr]
    assert second.choices[0].finish_reason == "tool_calls"
    assert third.choices[0].message.content == "fallback"
    assert [r["messages"][0]["content"] for r in llm.requests] == ["hi", "add", "?"]
    assert llm.headers[0]["authorization"] == "Bearer sk-test"


def test_streaming_sends_deltas_that_add_up_and_usage_last() -> None:
    from openai import OpenAI

    with ScriptedLLM([text("streamed words here")]) as llm:
        client = OpenAI(base_url=llm.openai_base_url, api_key="k", max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed words here"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


def test_an_error_reply_is_an_http_error_and_respond_chooses_by_content() -> None:
    def respond(body: dict[str, Any]) -> Reply | None:
        return text("pong") if "ping" in json.dumps(body) else None

    with ScriptedLLM([error(429, "slow down")], respond=respond, default="other") as llm:
        url = llm.openai_base_url + "/chat/completions"
        status, body = _post(url, {"model": "m", "messages": []})
        assert status == 429 and json.loads(body)["error"]["message"] == "slow down"
        _, pong = _post(url, {"model": "m", "messages": [{"role": "user", "content": "ping"}]})
        _, other = _post(url, {"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert json.loads(pong)["choices"][0]["message"]["content"] == "pong"
    assert json.loads(other)["choices"][0]["message"]["content"] == "other"


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_messages(stream: bool) -> None:
    with ScriptedLLM([Reply(text="Hi", tool_calls=[("look", {"q": "x"})])]) as llm:
        status, body = _post(llm.url + "/v1/messages", {"model": "claude", "stream": stream})
    assert status == 200
    if not stream:
        message = json.loads(body)
        assert [b["type"] for b in message["content"]] == ["text", "tool_use"]
        assert message["stop_reason"] == "tool_use"
        return
    events = [line.split(": ", 1)[1] for line in body.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_delta" in events
