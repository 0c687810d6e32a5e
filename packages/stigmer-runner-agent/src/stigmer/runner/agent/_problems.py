"""Turning what went wrong during an agent run into an RFC 7807 problem (``ExecutionError``).

Types are the Serverless Workflow 1.0 error types, so agent and workflow failures read alike.
Details are one line, say what to do where possible, and never carry a traceback.
"""

from __future__ import annotations

from stigmer.core import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StigmerError,
    Unauthenticated,
    Unavailable,
)
from stigmer.proto.v1 import execution_pb2

__all__ = ["problem_from_exception"]

_BASE = "https://serverlessworkflow.io/spec/1.0.0/errors/"


def _problem(
    kind: str, title: str, status: int, detail: str, instance: str = ""
) -> execution_pb2.ExecutionError:
    detail = " ".join(detail.split())  # one line
    if len(detail) > 2000:
        detail = detail[:1997] + "..."
    return execution_pb2.ExecutionError(
        type=_BASE + kind, title=title, status=status, detail=detail, instance=instance
    )


def problem_from_exception(
    exc: BaseException, *, model: str = "", endpoint: str = ""
) -> execution_pb2.ExecutionError:
    """The problem description of ``exc``; ``model``/``endpoint`` name what was being called."""
    from stigmer.runner.agent._limits import LimitReached
    from stigmer.runner.agent._models import ModelNotConfigured
    from stigmer.runner.agent.mcp import McpServerFailed

    if isinstance(exc, ModelNotConfigured):
        return _problem("configuration", "Model not configured", 400, exc.message, "/spec/model")
    if isinstance(exc, LimitReached):
        return _problem("runtime", "Usage limit exceeded", 429, exc.message)
    if isinstance(exc, McpServerFailed):
        return _problem("runtime", "MCP server failed", 502, exc.message, "/spec/mcpServers")
    if isinstance(exc, StigmerError):
        mapping: list[tuple[type[StigmerError], str, str, int]] = [
            (NotFound, "configuration", "Not found", 404),
            (InvalidArgument, "validation", "Invalid definition", 400),
            (PermissionDenied, "authorization", "Permission denied", 403),
            (Unauthenticated, "authentication", "Not authenticated", 401),
            (FailedPrecondition, "runtime", "Failed precondition", 409),
            (Unavailable, "communication", "Unavailable", 503),
        ]
        for cls, kind, title, status in mapping:
            if isinstance(exc, cls):
                return _problem(kind, title, status, exc.message)
        return _problem("runtime", "Runtime error", 500, exc.message)
    try:
        from pydantic_ai import exceptions as pe
    except ImportError:  # pragma: no cover - pydantic-ai is a dependency
        pe = None  # type: ignore[assignment]
    what = f"model {model}" if model else "the model"
    where = f" at {endpoint}" if endpoint else ""
    if pe is not None:
        if isinstance(exc, pe.ModelAuthenticationError) or (
            isinstance(exc, pe.ModelHTTPError) and exc.status_code in (401, 403)
        ):
            status = getattr(exc, "status_code", 401)
            return _problem(
                "authentication",
                "Model provider rejected the credentials",
                status,
                f"{what}{where} refused the API key (HTTP {status}): check the key "
                f"(`stigmer secret set ...`) and that the agent is granted it. {_message(exc)}",
            )
        if isinstance(exc, pe.ModelRateLimitError) or (
            isinstance(exc, pe.ModelHTTPError) and exc.status_code == 429
        ):
            return _problem(
                "communication",
                "Model provider rate limit",
                429,
                f"{what}{where} kept answering 429 (rate limited) after retries with backoff; "
                f"try again later or lower the request rate. {_message(exc)}",
            )
        if isinstance(exc, pe.ModelTimeoutError | pe.ModelRequestTimeout):
            return _problem(
                "timeout",
                "Model request timed out",
                504,
                f"{what}{where} did not answer in time. {_message(exc)}",
            )
        if isinstance(exc, pe.ModelConnectionError):
            return _problem(
                "communication",
                "Model provider unreachable",
                503,
                f"cannot reach {what}{where}: is the server running and the base URL right? {_message(exc)}",
            )
        if isinstance(exc, pe.ModelNotFoundError) or (
            isinstance(exc, pe.ModelHTTPError) and exc.status_code == 404
        ):
            return _problem(
                "communication",
                "Model not found",
                404,
                f"{what}{where} does not exist there. {_message(exc)}",
            )
        if isinstance(exc, pe.ModelHTTPError):
            return _problem(
                "communication",
                "Model provider error",
                exc.status_code,
                f"{what}{where} answered HTTP {exc.status_code}. {_message(exc)}",
            )
        if isinstance(exc, pe.ModelAPIError):
            return _problem("communication", "Model provider error", 502, f"{what}{where}: {_message(exc)}")
        if isinstance(exc, pe.UsageLimitExceeded):
            detail = _message(exc)
            if "request_limit" in detail:
                detail += (
                    " (the agent_requests limit: model requests in one turn; raise it with "
                    "STIGMER_LIMIT_AGENT_REQUESTS or limits.agentRequests in config.yaml)"
                )
            return _problem("runtime", "Usage limit exceeded", 429, detail)
        if isinstance(exc, pe.UnexpectedModelBehavior):
            return _problem("runtime", "Unexpected model behavior", 502, f"{what}: {_message(exc)}")
    return _problem("runtime", "Agent run failed", 500, f"{type(exc).__name__}: {_message(exc)}")


def _message(exc: BaseException) -> str:
    """What the provider (or the exception) said, preferring the message inside an API error body."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        said = inner.get("message") if isinstance(inner, dict) else None
        if isinstance(said, str) and said.strip():
            return f"The provider said: {said.strip()}"
    text = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, BaseExceptionGroup):
        text = "; ".join(_message(e) for e in exc.exceptions)
    return str(text).strip()
