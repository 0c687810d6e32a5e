"""YAML 1.2 loading and dumping (``on:`` stays a string), with source positions for errors."""

from __future__ import annotations

import io
import warnings
from typing import Any

from stigmer.core._errors import InvalidArgument

__all__ = ["ManifestError", "dump_yaml", "load_yaml_documents", "load_yaml_text", "plain"]

# Anchors and aliases could expand a small file into a huge tree ("billion laughs"): cap the size.
MAX_NODES = 200_000


class ManifestError(InvalidArgument):
    """A manifest cannot be read; the message names the file, the line and the field path."""

    def __init__(self, message: str, source: str = "", line: int | None = None, field_path: str = "") -> None:
        where = source or "<input>"
        if line is not None:
            where += f":{line}"
        text = f"{where}: {field_path + ': ' if field_path else ''}{message}"
        super().__init__(text, [field_path] if field_path else [])
        self.source = source
        self.line = line
        self.field_path = field_path
        self.reason = message


def _yaml(typ: str, version: bool = True) -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ=typ, pure=True)
    if version:
        y.version = (1, 2)
    y.allow_duplicate_keys = False
    return y


def _problem_line(exc: Exception) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None and getattr(mark, "line", None) is not None:
        return int(mark.line) + 1
    return None


def _reason(exc: Exception) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem:
        text = str(problem)
        if context:
            text = f"{context}: {text}"
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"invalid YAML: {text}"


def load_yaml_documents(text: str, source: str = "") -> list[tuple[Any, int]]:
    """Parse every document of a YAML stream; returns ``(round-trip tree, first line)`` pairs.

    The trees keep line information (``ruamel.yaml`` CommentedMap/Seq); use :func:`plain` to turn
    one into ordinary dicts and lists. Any parse problem raises :class:`ManifestError`.
    """
    y = _yaml("rt")
    try:
        with warnings.catch_warnings():
            # YAML lets a later anchor reuse a name; ruamel warns on stderr, which a CLI must not show.
            warnings.simplefilter("ignore")
            docs = list(y.load_all(io.StringIO(text)))
    except RecursionError:
        raise ManifestError("document nests too deeply", source) from None
    except Exception as exc:  # ruamel raises many unrelated types for bad input
        raise ManifestError(_reason(exc), source, _problem_line(exc)) from None
    out: list[tuple[Any, int]] = []
    for doc in docs:
        lc = getattr(doc, "lc", None)
        line = int(lc.line) + 1 if lc is not None and lc.line is not None else 1
        out.append((doc, line))
    return out


def load_yaml_text(text: str, source: str = "") -> Any:
    """Parse a single YAML document into plain Python data."""
    docs = load_yaml_documents(text, source)
    if not docs:
        return None
    if len(docs) > 1:
        raise ManifestError("expected one YAML document, found several", source, docs[1][1])
    return plain(docs[0][0], source)


def plain(node: Any, source: str = "") -> Any:
    """Convert a round-trip tree into dicts, lists, str, int, float, bool and None."""
    budget = [MAX_NODES]

    def conv(n: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise ManifestError(f"document is too large (more than {MAX_NODES} nodes after aliases)", source)
        if depth > 200:
            raise ManifestError("document nests too deeply", source)
        if isinstance(n, dict):
            out: dict[str, Any] = {}
            for k, v in n.items():
                if not isinstance(k, str):
                    if isinstance(k, bool) or k is None or isinstance(k, (int, float)):
                        k = "null" if k is None else str(k).lower() if isinstance(k, bool) else str(k)
                    else:
                        raise ManifestError(f"mapping keys must be strings, not {type(k).__name__}", source)
                out[str(k)] = conv(v, depth + 1)
            return out
        if isinstance(n, (list, tuple)):
            return [conv(v, depth + 1) for v in n]
        if isinstance(n, bool) or n is None:
            return n
        if isinstance(n, int):
            return int(n)
        if isinstance(n, float):
            return float(n)
        if isinstance(n, str):
            return str(n)
        if isinstance(n, bytes):
            raise ManifestError("binary values are not supported", source)
        # dates, timestamps and other tagged scalars become their YAML text
        return str(n)

    return conv(node, 0)


def dump_yaml(documents: list[Any]) -> str:
    """Dump plain data as a multi-document YAML stream (block style, keys in given order)."""
    y = _yaml("safe", version=False)
    y.default_flow_style = False
    y.sort_base_mapping_type_on_output = False
    buf = io.StringIO()
    y.explicit_start = len(documents) > 1
    y.dump_all(documents, buf)
    return buf.getvalue()
