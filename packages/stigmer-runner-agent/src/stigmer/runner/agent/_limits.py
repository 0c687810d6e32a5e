"""Limits, cost and per-request usage of an agent run.

An agent run may be bounded (``stigmer.v1.AgentLimits``) by its agent's spec, by the run itself
(``stigmer agent execute --max-…``) and by a server, which writes its ceiling into the run's spec
when the run is created: the lowest of the limits set wins. They are enforced with pydantic-ai's
``UsageLimits``, given what is *left* of each limit after what the run has spent so far (a run that
paused for approval, or a Temporal run whose turns are separate ``Agent.run`` calls, keeps its
budget): pydantic-ai checks request, token and cost limits before each model request and the
tool-call limit before the tools of a response run, so a run never stops in the middle of a tool
call's side effect. Reaching one fails the run with :class:`LimitReached`, which names the limit
and what was spent.

Cost comes from the price table pydantic-ai maintains (the ``genai-prices`` package) for known
models, or from the model's own ``price`` (USD per million tokens) for a model the table does not
know; a request whose price is unknown counts tokens only and marks the usage ``cost_unknown``.
Each model request is recorded (model, tokens, cost) by :class:`Meter`, a pydantic-ai capability
that works the same in Lite and in Temporal workflow code (it only reads the response).

This module imports nothing heavy at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from stigmer.core import StigmerError

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.usage import RunUsage, UsageLimits

__all__ = ["CURRENT_METER", "LimitReached", "Limits", "Meter", "Spent", "limit_reached", "turn_limits"]

#: pydantic-ai's limit names -> ours (as the spec and the CLI spell them).
_NAMES = {
    "request_limit": ("max_requests", "model requests"),
    "tool_calls_limit": ("max_tool_calls", "tool calls"),
    "input_tokens_limit": ("max_input_tokens", "input tokens"),
    "output_tokens_limit": ("max_output_tokens", "output tokens"),
    "total_tokens_limit": ("max_tokens", "tokens"),
    "cost_limit": ("max_cost_usd", "USD"),
}


class LimitReached(StigmerError):
    """The run reached one of its limits (the message names it and what was spent)."""


@dataclass(frozen=True)
class Limits:
    """A run's limits; 0 means none."""

    max_requests: int = 0
    max_tool_calls: int = 0
    max_input_tokens: int = 0
    max_output_tokens: int = 0
    max_tokens: int = 0
    max_cost_usd: float = 0.0

    @classmethod
    def combine(cls, *sources: Any) -> Limits:
        """The lowest limit set among ``sources`` (``AgentLimits`` messages, their dicts, or None)."""
        values: dict[str, float] = {}
        for source in sources:
            if source is None:
                continue
            for f in fields(cls):
                given = source.get(f.name, 0) if isinstance(source, Mapping) else getattr(source, f.name, 0)
                given = float(given or 0)
                if given < 0:
                    raise StigmerError(f"limits.{f.name} must not be negative (got {given:g})")
                if given and (not values.get(f.name) or given < values[f.name]):
                    values[f.name] = given
        kwargs: dict[str, Any] = {
            name: (float(value) if name == "max_cost_usd" else int(value)) for name, value in values.items()
        }
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v}

    def __bool__(self) -> bool:
        return any(asdict(self).values())

    def remaining(self, spent: Spent) -> UsageLimits | None:
        """pydantic-ai's limits for the next turn: what is left of each after ``spent``. None when
        nothing is limited; ``request_limit`` None when requests are not (the host then applies
        its own bound on one turn: :func:`turn_limits`)."""
        if not self:
            return None
        from pydantic_ai.usage import UsageLimits

        def left(limit: int, used: int) -> int | None:
            return max(limit - used, 0) if limit else None

        limits = UsageLimits(
            request_limit=left(self.max_requests, spent.requests),
            tool_calls_limit=left(self.max_tool_calls, spent.tool_calls),
            input_tokens_limit=left(self.max_input_tokens, spent.input_tokens),
            output_tokens_limit=left(self.max_output_tokens, spent.output_tokens),
            total_tokens_limit=left(self.max_tokens, spent.input_tokens + spent.output_tokens),
        )
        return limits  # cost: the Meter checks it (it also prices models the table does not know)


def turn_limits(limits: UsageLimits | None, turn_requests: int | None) -> UsageLimits | None:
    """The limits one ``Agent.run`` gets: what is left of the run's (``Limits.remaining``), with
    ``turn_requests`` (the runner's bound on the model requests of one turn) where the run sets no
    request limit. None when neither says anything (pydantic-ai's default applies)."""
    if limits is None and turn_requests is None:
        return None
    from pydantic_ai.usage import UsageLimits

    out = limits if limits is not None else UsageLimits()
    if limits is None or out.request_limit is None:
        out.request_limit = turn_requests if turn_requests is not None else UsageLimits().request_limit
    return out


@dataclass
class Spent:
    """What a run has spent: counts, cost, and the model requests not reported yet."""

    requests: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cost_unknown: bool = False

    @classmethod
    def of(cls, usage: Any) -> Spent:
        """From a ``stigmer.v1.Usage`` (or its dict): what earlier turns of this run reported."""
        if usage is None:
            return cls()
        get = usage.get if isinstance(usage, Mapping) else lambda k, d=0: getattr(usage, k, d)
        return cls(
            requests=int(get("requests", 0) or 0),
            tool_calls=int(get("tool_calls", 0) or 0),
            input_tokens=int(get("input_tokens", 0) or 0),
            output_tokens=int(get("output_tokens", 0) or 0),
            cost_usd=float(get("cost_usd", 0) or 0),
            cost_unknown=bool(get("cost_unknown", False)),
        )

    def add(self, usage: RunUsage, meter: Meter) -> None:
        """Count a turn's usage (its cost is the meter's: priced per request)."""
        self.requests += usage.requests or 0
        self.tool_calls += usage.tool_calls or 0
        self.input_tokens += usage.input_tokens or 0
        self.output_tokens += usage.output_tokens or 0
        self.cost_usd += meter.turn_cost
        self.cost_unknown = self.cost_unknown or meter.turn_cost_unknown

    def describe(self) -> str:
        tokens = self.input_tokens + self.output_tokens
        parts = [
            _count(self.requests, "model request"),
            _count(self.tool_calls, "tool call"),
            f"{tokens:,} tokens ({self.input_tokens:,} in, {self.output_tokens:,} out)",
        ]
        if self.cost_usd or not self.cost_unknown:
            parts.append(f"${self.cost_usd:.4f}" + (" (some requests unpriced)" if self.cost_unknown else ""))
        else:
            parts.append("cost unknown (no price for the model)")
        return ", ".join(parts)


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def limit_reached(exc: BaseException, limits: Limits, spent: Spent) -> LimitReached | None:
    """``LimitReached`` for pydantic-ai's ``UsageLimitExceeded``: the limit by its Stigmer name and
    the whole run's figure (pydantic-ai's message speaks of what was left for one turn)."""
    text = str(exc)
    found = next((key for key in _NAMES if key in text), "")
    if not found:
        return LimitReached(
            f"the run reached a usage limit ({text.split('. ')[0]}); spent: {spent.describe()}"
        )
    name, unit = _NAMES[found]
    value = getattr(limits, name)
    if not value:  # not the run's limit: the runner's bound on one turn (left as pydantic-ai says it)
        return None
    shown = f"${value:g}" if name == "max_cost_usd" else f"{value:,} {unit}"
    return LimitReached(f"the run reached its limit {name} = {shown}; spent: {spent.describe()}")


#: The meter of the turn running in this context: sub-agents (tools of the turn, run in its
#: context) are priced, recorded and held to the cost limit by it too.
CURRENT_METER: ContextVar[Meter | None] = ContextVar("stigmer_current_meter", default=None)


@dataclass
class Meter:
    """Prices each model response and records it (a pydantic-ai capability, made by :meth:`capability`).

    ``price`` is the model's own (USD per million input and output tokens), used when the price
    table does not know the model.
    """

    price: tuple[float, float] | None = None
    limits: Limits = field(default_factory=Limits)
    spent: Spent = field(default_factory=Spent)  # the loop's count, added to after each turn
    requests: list[dict[str, Any]] = field(default_factory=list)  # not reported yet
    turn_cost: float = 0.0
    turn_cost_unknown: bool = False

    def start_turn(self) -> None:
        self.turn_cost, self.turn_cost_unknown = 0.0, False

    def drain(self) -> list[dict[str, Any]]:
        out, self.requests = self.requests, []
        return out

    def record(self, response: ModelResponse) -> None:
        usage = response.usage
        if usage.cost is None and self.price is not None:
            per_in, per_out = self.price
            usage.cost = (
                Decimal(str(per_in)) * usage.input_tokens / 1_000_000
                + Decimal(str(per_out)) * usage.output_tokens / 1_000_000
            )
        entry: dict[str, Any] = {
            "model": response.model_name or "",
            "input_tokens": usage.input_tokens or 0,
            "output_tokens": usage.output_tokens or 0,
        }
        if usage.cost is None:
            entry["cost_unknown"] = True
            self.turn_cost_unknown = True
        else:
            entry["cost_usd"] = float(usage.cost)
            self.turn_cost += float(usage.cost)
        self.requests.append(entry)

    def check_cost(self) -> None:
        """Before a model request: refuse it when the run's cost has reached ``max_cost_usd``, or
        cannot be known."""
        limit = self.limits.max_cost_usd
        if not limit:
            return
        if self.turn_cost_unknown:
            model = next((r["model"] for r in reversed(self.requests) if r.get("cost_unknown")), "")
            raise LimitReached(
                f"max_cost_usd is set but the price of model {model or '(unnamed)'} is unknown: give the "
                "model a `price` (USD per million input and output tokens) or remove the cost limit"
            )
        if self.spent.cost_usd + self.turn_cost >= limit:
            from pydantic_ai.exceptions import UsageLimitExceeded

            raise UsageLimitExceeded(f"The next request would exceed the cost_limit of {limit}")

    def capability(self) -> Any:
        from pydantic_ai.capabilities import AbstractCapability

        meter = self

        class PriceAndRecord(AbstractCapability[Any]):
            async def before_model_request(self, ctx: RunContext[Any], request_context: Any) -> Any:
                meter.check_cost()
                return request_context

            async def after_model_request(
                self, ctx: RunContext[Any], *, request_context: Any, response: ModelResponse
            ) -> ModelResponse:
                meter.record(response)
                return response

        return PriceAndRecord()
