"""Label selectors: ``k=v``, ``k!=v``, ``k`` (exists) and ``!k`` (absent), comma separated."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stigmer.core import InvalidArgument

__all__ = ["LABEL_KEY", "Requirement", "check_labels", "matches", "parse_selector"]

LABEL_KEY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_./-]{0,251}[A-Za-z0-9])?")
_MAX_VALUE = 253


@dataclass(frozen=True)
class Requirement:
    """One term of a selector. ``op`` is ``=``, ``!=``, ``exists`` or ``!exists``."""

    key: str
    op: str
    value: str = ""


def _bad(term: str, why: str) -> InvalidArgument:
    return InvalidArgument(
        f"invalid label selector term {term!r}: {why}; use key=value, key!=value, key or !key, "
        "separated by commas",
        ["label_selector"],
    )


def _key(key: str, term: str) -> str:
    if not LABEL_KEY.fullmatch(key):
        raise _bad(term, f"{key!r} is not a valid label key")
    return key


def parse_selector(text: str) -> list[Requirement]:
    """Parse a selector; an empty selector selects everything."""
    if not text.strip():
        return []
    out: list[Requirement] = []
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            raise _bad(raw, "empty term")
        if "!=" in term:
            key, _, value = term.partition("!=")
            op = "!="
        elif "=" in term:
            key, _, value = term.partition("=")
            if value.startswith("="):
                value = value[1:]
            op = "="
        elif term.startswith("!"):
            out.append(Requirement(_key(term[1:].strip(), term), "!exists"))
            continue
        else:
            out.append(Requirement(_key(term, term), "exists"))
            continue
        key, value = key.strip(), value.strip()
        if "=" in value or "!" in value:
            raise _bad(term, "more than one operator")
        if len(value) > _MAX_VALUE:
            raise _bad(term, f"the value is longer than {_MAX_VALUE} characters")
        out.append(Requirement(_key(key, term), op, value))
    return out


def matches(requirements: list[Requirement], labels: dict[str, str]) -> bool:
    """Whether ``labels`` satisfy every requirement (used by tests and in-memory filtering)."""
    for r in requirements:
        present = r.key in labels
        if r.op == "exists" and not present:
            return False
        if r.op == "!exists" and present:
            return False
        if r.op == "=" and labels.get(r.key) != r.value:
            return False
        if r.op == "!=" and labels.get(r.key) == r.value:
            return False
    return True


def check_labels(labels: dict[str, str], field: str) -> None:
    """Refuse label keys a selector could not name, and over-long values."""
    for key, value in labels.items():
        if not LABEL_KEY.fullmatch(key):
            raise InvalidArgument(
                f"invalid label key {key!r}: use letters, digits, '-', '_', '.', '/', "
                "starting and ending with a letter or digit",
                [f"{field}.{key}"],
            )
        if len(value) > _MAX_VALUE:
            raise InvalidArgument(f"label {key!r} is longer than {_MAX_VALUE} characters", [f"{field}.{key}"])
