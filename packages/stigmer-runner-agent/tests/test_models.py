"""Choosing the model: agent spec < environment < the run's spec.model."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2
from stigmer.proto.v1 import agent_pb2
from stigmer.runner.agent._models import NO_MODEL_MESSAGE, ModelNotConfigured, build_model, choose_model


def cfg(
    provider: str = "", name: str = "", base_url: str = "", **params: str | float | bool
) -> agent_pb2.ModelConfig:
    config = agent_pb2.ModelConfig(provider=provider, name=name, base_url=base_url)
    if params:
        s = struct_pb2.Struct()
        s.update(params)
        config.params.CopyFrom(s)
    return config


def test_agent_spec_alone() -> None:
    choice = choose_model(cfg("openai", "gpt-4o-mini", temperature=0.2, maxTokens=100), None, {})
    assert (choice.provider, choice.name, choice.base_url) == ("openai", "gpt-4o-mini", "")
    assert choice.params == {"temperature": 0.2, "max_tokens": 100}


def test_environment_overrides_agent_and_run_overrides_both() -> None:
    env = {"STIGMER_LLM_PROVIDER": "ollama", "STIGMER_LLM_MODEL": "llama3.2"}
    assert choose_model(cfg("anthropic", "claude-x"), None, env).label == "ollama/llama3.2"
    run = cfg("openai", "gpt-4o")
    assert choose_model(cfg("anthropic", "claude-x"), run, env).label == "openai/gpt-4o"


def test_endpoint_belongs_to_its_provider() -> None:
    agent = cfg("openai-compatible", "local", "http://gpu:8000/v1")
    chosen = choose_model(agent, cfg("anthropic", "claude-x"), {})
    assert chosen.label == "anthropic/claude-x"
    assert chosen.base_url == ""


def test_prefixed_names_and_inference() -> None:
    assert choose_model(cfg(name="anthropic:claude-3"), None, {}).label == "anthropic/claude-3"
    assert choose_model(cfg(name="ollama/qwen2.5:7b"), None, {}).label == "ollama/qwen2.5:7b"
    assert choose_model(cfg(name="claude-sonnet"), None, {}).provider == "anthropic"
    assert choose_model(cfg(name="gpt-4o"), None, {}).provider == "openai"
    assert (
        choose_model(cfg(name="mistral", base_url="http://x:1/v1"), None, {}).provider == "openai-compatible"
    )
    assert choose_model(cfg("vllm", "m", "http://x:1"), None, {}).provider == "openai-compatible"


def test_ollama_base_url() -> None:
    assert choose_model(cfg("ollama", "llama3.2"), None, {}).base_url == "http://localhost:11434"
    env = {"OLLAMA_BASE_URL": "http://box:11434"}
    assert choose_model(cfg("ollama", "llama3.2"), None, env).base_url == "http://box:11434"


@pytest.mark.parametrize(
    ("agent", "env", "message"),
    [
        (None, {}, NO_MODEL_MESSAGE),
        (cfg("openai"), {}, NO_MODEL_MESSAGE),
        (cfg(name="mystery"), {}, "has no provider"),
        (cfg("bedrock", "x"), {}, "unknown model provider 'bedrock'"),
        (cfg("openai-compatible", "x"), {}, "needs a base URL"),
    ],
)
def test_configuration_errors(agent: agent_pb2.ModelConfig | None, env: dict[str, str], message: str) -> None:
    with pytest.raises(ModelNotConfigured) as caught:
        choose_model(agent, None, env)
    assert message in caught.value.message


def test_build_needs_a_key_for_hosted_providers() -> None:
    with pytest.raises(ModelNotConfigured) as caught:
        build_model(choose_model(cfg("anthropic", "claude-x"), None, {}), lambda name: None)
    assert "ANTHROPIC_API_KEY" in caught.value.message
    built = build_model(choose_model(cfg("ollama", "llama3.2"), None, {}), lambda name: None)
    assert built.model.model_name == "llama3.2"
    assert built.api_key == ""


def test_compatible_servers_prefer_their_own_key() -> None:
    keys = {"STIGMER_LLM_API_KEY": "local-key", "OPENAI_API_KEY": "sk-openai"}
    choice = choose_model(cfg("vllm", "m", "http://gpu:8000"), None, {})
    assert build_model(choice, keys.get).api_key == "local-key"
    assert build_model(choice, {"OPENAI_API_KEY": "sk-openai"}.get).api_key == "sk-openai"
    assert build_model(choice, dict[str, str]().get).api_key == ""
