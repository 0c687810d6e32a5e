"""Scrub secret values out of strings and nested data before they are stored, logged or printed.

A registered value is masked in every form it commonly takes once code has touched it:

- as is, and each line of a multi-line value (a PEM key) of at least ``MIN_LINE_LENGTH``
  characters;
- escaped for JSON (``tojson``, a JSON document) and for Python (``repr`` of a str or of its
  UTF-8 bytes: ``b'...\\n...'`` in an exception message);
- URL-encoded (``urllib.parse.quote(v, safe="")``, ``quote_plus``, jq's ``@uri``; hex digits in
  either case);
- base64 and URL-safe base64 of its UTF-8 bytes, with and without ``=`` padding, and the stable
  middle of its base64 at each of the 3 byte alignments it can have inside a longer text (an API
  response returned with ``output: raw``, a basic-auth pair); the same for each escaped and
  URL-encoded form (a JSON body, a URL, returned as base64).

Forms derived by encoding count only when they are at least ``MIN_ENCODED_LENGTH`` characters
long, so that a short value never masks the ordinary text of a base64 blob. Values shorter than
``MIN_SECRET_LENGTH`` are not masked at all. Masking is a courtesy to whoever is allowed to use a
secret, not a boundary: a program that can read a value can always transform it beyond recognition.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import urllib.parse
from collections.abc import Iterable
from typing import Any, Final

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "RedactingFilter",
    "Redactor",
    "configure_logging",
    "default_redactor",
    "masked_forms",
    "redact_logging",
]

MASK: Final = "***"
#: Shorter values would mask ordinary text; they are not masked (``stigmer secret set`` warns).
MIN_SECRET_LENGTH: Final = 3
#: A line of a multi-line value is masked on its own from this many characters (spaces stripped).
MIN_LINE_LENGTH: Final = 8
#: An encoded form (base64 and its alignments) is masked from this many characters.
MIN_ENCODED_LENGTH: Final = 8


def masked_forms(value: str) -> set[str]:
    """Every string the redactor masks for ``value`` (empty when ``value`` is too short)."""
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return set()
    forms = _text_forms(value)
    lines = [line.strip() for line in value.splitlines()]
    for line in lines if len(lines) > 1 else ():
        if len(line) >= MIN_LINE_LENGTH:
            forms |= _text_forms(line)
    # base64 of the value as is and as escaped or encoded (a JSON body or a URL sent as raw output)
    for text in {value, *_text_forms(value)}:
        encoded = _base64_forms(text.encode("utf-8", "surrogatepass"))
        forms |= {f for f in encoded if len(f) >= MIN_ENCODED_LENGTH}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def _text_forms(value: str) -> set[str]:
    """The value, escaped (JSON, Python repr of str and bytes) and URL-encoded."""
    forms = {value}
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1].replace("\x7f", "\\u007f"))  # jq's tojson
    forms.add(repr(value)[1:-1])
    forms.add(ascii(value)[1:-1])
    data = value.encode("utf-8", "surrogatepass")
    forms.add(repr(data)[2:-1])
    encoded = {
        urllib.parse.quote(data, safe=""),
        urllib.parse.quote_plus(data, safe=""),
        urllib.parse.quote(data),  # "/" kept, as in a URL path
    }
    forms |= encoded
    forms |= {
        _LOWER_HEX.sub(lambda m: m.group(0).lower(), e) for e in encoded
    }  # %2f as some servers write it
    return forms


_LOWER_HEX: Final = re.compile(r"%[0-9A-F]{2}")


def _base64_forms(data: bytes) -> set[str]:
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode("ascii")
        forms.add(whole)
        forms.add(whole.rstrip("="))
        # Inside a longer text the value starts at byte 0, 1 or 2 of a 3-byte group; the
        # characters that also encode bits of the neighbouring bytes differ, the rest do not.
        for offset in (1, 2):
            total = offset + len(data)
            text = encode(b"\0" * offset + data).decode("ascii").rstrip("=")
            end = (total // 3) * 4 + (total % 3)  # drop the last char when it mixes in a neighbour
            forms.add(text[offset + 1 : end])
        forms.add(whole.rstrip("=")[: (len(data) // 3) * 4 + len(data) % 3])
    return forms


class Redactor:
    """A set of secret values; ``scrub`` replaces every occurrence of any of their forms with ``***``.

    One compiled pattern finds where a form may start (a trie of the forms' first
    ``ANCHOR_LENGTH`` characters: small, so registering a long value stays cheap); the forms that
    start with the anchor found are then compared whole. Where forms overlap, the leftmost wins,
    then the longest.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._matcher: _Matcher | None = None
        self._revision = 0
        self.register(*values)

    def register(self, *values: str) -> None:
        """Add values to mask (with their forms). Empty and very short values are ignored."""
        with self._lock:
            added = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH} - self._values
            if not added:
                return
            forms = set().union(*(masked_forms(v) for v in added)) - self._forms
            self._values |= added
            if not forms:
                return
            self._forms |= forms
            self._matcher = _Matcher(self._forms)
            self._revision += 1

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    @property
    def revision(self) -> int:
        """A number that changes whenever the masked forms do: what ``scrub`` returned for a text
        stays right while it is the same (a cache of scrubbed texts keys on it)."""
        return self._revision

    @property
    def active(self) -> bool:
        """True once it masks anything."""
        return self._matcher is not None

    def scrub(self, value: Any) -> Any:
        """Return ``value`` with every registered secret masked; dicts, lists and tuples are walked."""
        matcher = self._matcher
        if matcher is None:
            return value
        return _scrub(value, matcher)

    def scrub_bytes(self, data: bytes) -> bytes:
        """``data`` with every registered secret masked in it (as UTF-8; other bytes are kept)."""
        matcher = self._matcher
        if matcher is None:
            return data
        text = data.decode("utf-8", "surrogateescape")
        return matcher.sub(text).encode("utf-8", "surrogateescape")


#: Forms are found by their first characters; the rest is compared as text.
ANCHOR_LENGTH: Final = 16
#: Texts up to this long (names, paths, subjects) are remembered scrubbed, up to this many of them
#: per set of forms: they come again and again (a task's path, in its started and completed events).
MEMO_LENGTH: Final = 256
MEMO_SIZE: Final = 1024


class _Matcher:
    """An immutable snapshot of the forms: the anchor pattern and the forms by anchor."""

    def __init__(self, forms: Iterable[str]) -> None:
        by_anchor: dict[str, list[str]] = {}
        for form in forms:
            by_anchor.setdefault(form[:ANCHOR_LENGTH], []).append(form)
        for group in by_anchor.values():
            group.sort(key=len, reverse=True)
        self.by_anchor = by_anchor
        self.anchor_lengths = sorted({len(a) for a in by_anchor}, reverse=True)
        self.search = _compile(by_anchor).search
        self.memo: dict[str, str] = {}  # short texts scrubbed (see MEMO_LENGTH)

    def scrub_text(self, text: str) -> str:
        """:meth:`sub`, remembering short texts."""
        if len(text) > MEMO_LENGTH:
            return self.sub(text)
        memo = self.memo
        done = memo.get(text)
        if done is None:
            done = self.sub(text)
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[text] = done
        return done

    def sub(self, text: str) -> str:
        search = self.search
        found = search(text)
        if found is None:
            return text
        out: list[str] = []
        last = 0
        while found is not None:
            start = found.start()
            length = self._longest_at(text, start)
            if length:
                out.append(text[last:start])
                out.append(MASK)
                last = start + length
                found = search(text, last)
            else:
                found = search(text, start + 1)
        out.append(text[last:])
        return "".join(out)

    def _longest_at(self, text: str, start: int) -> int:
        """The length of the longest form at ``start`` (0 when none is whole there)."""
        best = 0
        for size in self.anchor_lengths:
            group = self.by_anchor.get(text[start : start + size])
            for form in group or ():
                if len(form) <= best:
                    break
                if text.startswith(form, start):
                    best = len(form)
                    break
        return best


def _scrub(value: Any, matcher: _Matcher) -> Any:
    if type(value) is str:
        return matcher.scrub_text(value)
    if isinstance(value, str):
        return matcher.sub(value)
    if isinstance(value, dict):
        return {_scrub(k, matcher): _scrub(v, matcher) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, matcher) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrub(v, matcher) for v in value)
    return value


def _compile(anchors: Iterable[str]) -> re.Pattern[str]:
    ordered = sorted(anchors, key=len, reverse=True)
    try:
        return re.compile(_trie_regex(ordered))
    except (RecursionError, re.error):  # pathological nesting: one alternative per anchor
        return re.compile("|".join(re.escape(a) for a in ordered))


_END: Final = ""


def _trie_regex(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, longest first, factored by common prefixes."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[_END] = {}
    return _node_regex(root)


def _node_regex(node: dict[str, Any]) -> str:
    branches: list[str] = []
    for char in sorted(k for k in node if k != _END):
        child = node[char]
        prefix = char
        # Follow single-child chains as one literal run.
        while len(child) == 1 and _END not in child:
            (next_char, grandchild), *_ = child.items()
            prefix += next_char
            child = grandchild
        rest = _node_regex(child) if child else ""
        branches.append(re.escape(prefix) + rest)
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if _END in node:  # a word may end here: try the longer ones first
        return "(?:" + body + ")?" if len(branches) == 1 else body + "?"
    return body


class RedactingFilter(logging.Filter):
    """A logging filter that masks the secrets of a redactor (the process-wide one by default) in
    each record's message, traceback and stack; attach it to a handler (``handler.addFilter``).

    Libraries install no handlers: the programs that configure logging (``stigmer server``, the
    workers) put it on theirs.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self._redactor if self._redactor is not None else default_redactor()
        if not redactor.active:
            return True
        record.msg = str(redactor.scrub(record.getMessage()))
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = str(redactor.scrub(record.exc_text))
        if record.stack_info:
            record.stack_info = str(redactor.scrub(record.stack_info))
        return True


def redact_logging() -> None:
    """Mask the process-wide redactor's secrets in everything this program logs: puts a
    :class:`RedactingFilter` on each handler of the root logger, of every other configured logger
    (such as a non-propagating ``stigmer`` logger) and on ``logging.lastResort`` (which prints
    warnings when no handler is configured). Programs call it once their logging is configured;
    calling it again adds no second filter."""
    loggers = [logging.getLogger()] + [
        item for item in logging.Logger.manager.loggerDict.values() if isinstance(item, logging.Logger)
    ]
    handlers = [h for logger in loggers for h in logger.handlers] + [logging.lastResort]
    for handler in handlers:
        if handler is not None and not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


#: The libraries whose own lines a program logs at its level (other libraries: warnings only — an
#: HTTP client's INFO lines hold the URLs it requests, which can carry a value, and cost a line per
#: request).
OWN_LOGGERS = ("stigmer", "temporalio")


def configure_logging(level: str, stream: Any = None) -> None:
    """A program's logging: ``stigmer``'s (and Temporal's SDK's) lines at ``level``, other
    libraries' warnings only, one line each on ``stream`` (stderr), secrets masked
    (:func:`redact_logging`)."""
    import sys

    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=stream if stream is not None else sys.stderr,
    )
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(getattr(logging, str(level).upper(), logging.INFO))
    redact_logging()


_default = Redactor()


def default_redactor() -> Redactor:
    """The process-wide redactor that runners register resolved secrets with."""
    return _default
