"""Choosing the model of a run and building the pydantic-ai model for it.

Precedence, field by field: the execution's ``spec.model`` (``--model`` on the run), then the
environment (``STIGMER_LLM_PROVIDER``, ``STIGMER_LLM_MODEL``, ``STIGMER_LLM_BASE_URL``), then the
agent spec's ``model``. API keys come from the execution context's secrets, then the process
environment. pydantic-ai and the provider SDKs are imported only here, lazily.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from stigmer.core import InvalidArgument
from stigmer.proto.v1 import agent_pb2

if TYPE_CHECKING:
    from pydantic_ai.models import Model
    from pydantic_ai.settings import ModelSettings

__all__ = [
    "NO_MODEL_MESSAGE",
    "BuiltModel",
    "ModelChoice",
    "ModelNotConfigured",
    "build_model",
    "choose_model",
]

NO_MODEL_MESSAGE = (
    "no model configured: set `model: {provider: ..., name: ...}` in the agent spec, set "
    "STIGMER_LLM_PROVIDER and STIGMER_LLM_MODEL (and STIGMER_LLM_BASE_URL for a local server) in "
    "the environment, or give the run a model (the execution's spec.model)"
)

_OPENAI_COMPATIBLE = {
    "openai-compatible",
    "openai_compatible",
    "compatible",
    "vllm",
    "lmstudio",
    "lm-studio",
    "llamacpp",
    "llama.cpp",
    "llama-cpp",
}
PROVIDERS = {"openai", "anthropic", "ollama", *_OPENAI_COMPATIBLE}
_OLLAMA_DEFAULT = "http://localhost:11434"
_RUNNER_PARAMS = {"max_retries", "timeout"}


class ModelNotConfigured(InvalidArgument):
    """No provider/model could be determined, or the configuration is incomplete."""


@dataclass(frozen=True)
class ModelChoice:
    """The provider, model name, endpoint and parameters a run uses."""

    provider: str = ""
    name: str = ""
    base_url: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.name}"


@dataclass
class BuiltModel:
    """A ready pydantic-ai model, its settings, and the API key it holds (to redact)."""

    model: Model
    settings: ModelSettings
    choice: ModelChoice
    api_key: str = ""
    client: Any = None

    async def aclose(self) -> None:
        """Close the provider client's connections (each run has its own client)."""
        if self.client is not None:
            await self.client.close()


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _layer(config: agent_pb2.ModelConfig | None) -> ModelChoice:
    if config is None:
        return ModelChoice()
    params = json_format.MessageToDict(config.params) if config.HasField("params") else {}
    return ModelChoice(
        provider=config.provider.strip().lower(),
        name=config.name.strip(),
        base_url=config.base_url.strip(),
        params={_snake(k): v for k, v in params.items()},
    )


def _split_name(choice: ModelChoice) -> ModelChoice:
    """``openai:gpt-4o`` / ``anthropic/claude-x`` in the name field carries the provider."""
    for sep in (":", "/"):
        prefix, found, rest = choice.name.partition(sep)
        if found and prefix.lower() in PROVIDERS and rest:
            if choice.provider and choice.provider != prefix.lower():
                return choice
            return replace(choice, provider=prefix.lower(), name=rest)
    return choice


def choose_model(
    agent_model: agent_pb2.ModelConfig | None,
    run_model: agent_pb2.ModelConfig | None,
    environ: Mapping[str, str] | None = None,
) -> ModelChoice:
    """Merge the three sources; raise ``ModelNotConfigured`` with ``NO_MODEL_MESSAGE`` if none names a model."""
    env = os.environ if environ is None else environ
    env_layer = ModelChoice(
        provider=env.get("STIGMER_LLM_PROVIDER", "").strip().lower(),
        name=env.get("STIGMER_LLM_MODEL", "").strip(),
        base_url=env.get("STIGMER_LLM_BASE_URL", "").strip(),
    )
    merged = ModelChoice()
    for layer in (_split_name(_layer(agent_model)), _split_name(env_layer), _split_name(_layer(run_model))):
        if layer.provider and layer.provider != merged.provider and not layer.base_url:
            merged = replace(merged, base_url="")  # an endpoint belongs to the provider that set it
        merged = ModelChoice(
            provider=layer.provider or merged.provider,
            name=layer.name or merged.name,
            base_url=layer.base_url or merged.base_url,
            params={**merged.params, **layer.params},
        )
    if not merged.name:
        raise ModelNotConfigured(NO_MODEL_MESSAGE, ["spec.model"])
    if not merged.provider:
        merged = replace(merged, provider=_infer_provider(merged))
    if merged.provider in _OPENAI_COMPATIBLE:
        merged = replace(merged, provider="openai-compatible")
    if merged.provider not in PROVIDERS:
        known = ", ".join(sorted({"openai", "anthropic", "ollama", "openai-compatible"}))
        raise ModelNotConfigured(
            f"unknown model provider {merged.provider!r} (known: {known})", ["spec.model.provider"]
        )
    if merged.provider == "openai-compatible" and not merged.base_url:
        raise ModelNotConfigured(
            "provider openai-compatible needs a base URL: set `model.baseUrl` in the agent spec or "
            "STIGMER_LLM_BASE_URL",
            ["spec.model.base_url"],
        )
    if merged.provider == "ollama" and not merged.base_url:
        merged = replace(merged, base_url=env.get("OLLAMA_BASE_URL", "").strip() or _OLLAMA_DEFAULT)
    return merged


def _infer_provider(choice: ModelChoice) -> str:
    name = choice.name.lower()
    if name.startswith("claude"):
        return "anthropic"
    if re.match(r"(gpt-|o\d|chatgpt)", name):
        return "openai" if not choice.base_url else "openai-compatible"
    if choice.base_url:
        return "openai-compatible"
    raise ModelNotConfigured(
        f"model {choice.name!r} has no provider: set `model.provider` (openai, anthropic, ollama or "
        "openai-compatible) or STIGMER_LLM_PROVIDER",
        ["spec.model.provider"],
    )


def _openai_base(url: str) -> str:
    """OpenAI-compatible servers serve under ``/v1``; accept the bare host too (Ollama's habit)."""
    url = url.rstrip("/")
    return url if re.search(r"/v\d+[a-z]*$", url) else url + "/v1"


def build_model(choice: ModelChoice, lookup: Callable[[str], str | None]) -> BuiltModel:
    """Build the pydantic-ai model; ``lookup`` finds API keys (context secrets, then environment)."""
    params = dict(choice.params)
    max_retries = int(params.pop("max_retries", 3))
    timeout = float(params.pop("timeout", 120.0))
    settings: dict[str, Any] = {k: v for k, v in params.items() if k not in _RUNNER_PARAMS}
    if choice.provider == "anthropic":
        key = lookup("ANTHROPIC_API_KEY") or ""
        if not key:
            raise ModelNotConfigured(_missing_key("ANTHROPIC_API_KEY", choice), ["spec.secrets"])
        from anthropic import AsyncAnthropic
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        anthropic_client = AsyncAnthropic(
            api_key=key, base_url=choice.base_url or None, max_retries=max_retries, timeout=timeout
        )
        model: Model = AnthropicModel(
            choice.name, provider=AnthropicProvider(anthropic_client=anthropic_client)
        )
        return BuiltModel(model, settings, choice, key, anthropic_client)  # type: ignore[arg-type]

    from openai import AsyncOpenAI

    if choice.provider == "openai":
        key = lookup("OPENAI_API_KEY") or ""
        if not key:
            raise ModelNotConfigured(_missing_key("OPENAI_API_KEY", choice), ["spec.secrets"])
        base_url = _openai_base(choice.base_url) if choice.base_url else None
    else:  # ollama, openai-compatible: a key only if the server wants one
        if choice.provider == "openai-compatible":
            key = lookup("STIGMER_LLM_API_KEY") or lookup("OPENAI_API_KEY") or ""
        else:
            key = lookup("OLLAMA_API_KEY") or ""
        base_url = _openai_base(choice.base_url)
    client = AsyncOpenAI(
        api_key=key or "not-needed", base_url=base_url, max_retries=max_retries, timeout=timeout
    )
    if choice.provider == "ollama":
        from pydantic_ai.models.ollama import OllamaModel
        from pydantic_ai.providers.ollama import OllamaProvider

        model = OllamaModel(choice.name, provider=OllamaProvider(openai_client=client))
    else:
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        model = OpenAIChatModel(choice.name, provider=OpenAIProvider(openai_client=client))
    return BuiltModel(model, settings, choice, key, client)  # type: ignore[arg-type]


def _missing_key(name: str, choice: ModelChoice) -> str:
    return (
        f"model {choice.label} needs {name}: set it with `stigmer secret set {name}` and list it in the "
        f"agent's `secrets:` (or an environment it uses), or export it in the runner's environment"
    )
