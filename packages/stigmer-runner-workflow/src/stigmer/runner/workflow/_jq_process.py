"""jq within time and memory limits: which expressions may run in this process, and the jq
processes that run all others.

The ``jq`` package holds the GIL while it evaluates and cannot be interrupted, so nothing in the
evaluating process can stop a runaway expression (``[repeat(1)]``, ``last(range(1e10))``). Hence
two paths:

- **bounded expressions run in this process.** :func:`is_bounded` accepts only programs that
  cannot loop or grow: paths, variables, literals, object/array construction, arithmetic without
  ``*`` (and ``-`` only with a number), comparisons, ``if``, ``//`` and a few linear builtins,
  with at most 2 pipes, 8 references and 8 commas. Their cost is a small multiple of their input,
  which the other limits already bound. Most expressions of an ordinary workflow are such
  (``.total + 1``, ``$input.id``, ``{a: .b}``).
- **any other expression runs in a jq process**: a child Python process with an empty
  environment, its address space capped at ``jq_memory_bytes`` above its start, that evaluates
  one program at a time. The caller waits at most ``jq_seconds``; over that the child is killed
  and the evaluation fails with the jq time limit error; a child that runs out of memory dies and
  the evaluation fails with the jq memory limit error. Children are started on first need and
  reused, so a loop of such expressions pays a pipe round trip each, not a process start.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from functools import lru_cache
from typing import Any, Final

from ._errors import ErrorKind, WorkflowError
from ._limits import Limits, limit_exceeded

__all__ = ["evaluate_guarded", "is_bounded"]

# ----------------------------------------------------------------- bounded expressions
_SAFE_WORDS: Final = frozenset(
    {
        "and", "or", "not", "if", "then", "elif", "else", "end", "null", "true", "false", "empty",
        "length", "utf8bytelength", "tostring", "tonumber", "tojson", "type", "keys", "keys_unsorted",
        "has", "add", "ascii_downcase", "ascii_upcase", "floor", "ceil", "round", "fabs", "sqrt",
        "abs", "startswith", "endswith", "ltrimstr", "rtrimstr", "error", "isnan", "infinite", "nan",
        "min", "max", "reverse", "sort", "unique", "first", "last", "values", "nulls", "booleans",
        "numbers", "strings", "arrays", "objects", "iterables", "scalars", "to_number", "trim",
        "ltrim", "rtrim", "not_null",
    }
)  # fmt: skip
_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_WORD: Final = re.compile(r"(?<![.$\w])[A-Za-z_]\w*")
_KEY: Final = re.compile(r"(?<=[{,])\s*[A-Za-z_]\w*\s*:")  # an object key: {total: 0}
_UNBOUNDED: Final = re.compile(r"\.\.|\[\s*\]|[*@;#]|\?//")
_REFERENCE: Final = re.compile(r"\$\w+|(?<![\w\])}\"])\.")
_NUMBER_BEFORE: Final = re.compile(r"(?<![\w.$])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\s*$")
_NUMBER_AFTER: Final = re.compile(r"\s*\d")
_MAX_LENGTH: Final = 512
_MAX_PIPES: Final = 2
_MAX_REFERENCES: Final = 8
_MAX_COMMAS: Final = 8


@lru_cache(maxsize=4096)
def is_bounded(body: str) -> bool:
    """True when ``body`` cannot loop or grow much beyond its input (safe to run in-process)."""
    if len(body) > _MAX_LENGTH or "\\(" in body:  # string interpolation runs arbitrary jq
        return False
    code = _KEY.sub('"":', _STRING.sub('""', body))
    if '"' in code.replace('""', "") or _UNBOUNDED.search(code):
        return False
    for minus in re.finditer("-", code):  # array subtraction is quadratic: only "- <number>" runs here
        at = minus.start()
        if not (_NUMBER_AFTER.match(code, at + 1) or _NUMBER_BEFORE.search(code[:at])):
            return False
    if any(word not in _SAFE_WORDS for word in _WORD.findall(code)):
        return False
    return (
        code.count("|") <= _MAX_PIPES
        and len(_REFERENCE.findall(code)) <= _MAX_REFERENCES
        and code.count(",") <= _MAX_COMMAS
    )


# ------------------------------------------------------------------------- jq processes
# The child: reads sys.path, then frames "<program bytes> <input bytes>\n" + program + input, and
# answers "<kind> <bytes>\n" + body: ok (first result as JSON, or null), err (jq's message),
# big (the result's size, over the output limit).
_CHILD: Final = r"""
import json, os, resource, sys
rd, wr = sys.stdin.buffer, sys.stdout.buffer
sys.path[:0] = json.loads(rd.readline())
import jq
output_limit, memory = int(sys.argv[1]), int(sys.argv[2])
try:
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (size + memory, size + memory))
except (OSError, ValueError):
    pass
cache = {}
def reply(kind, body):
    wr.write(b"%s %d\n" % (kind, len(body)) + body)
    wr.flush()
while True:
    header = rd.readline()
    if not header:
        break
    n, m = map(int, header.split())
    program, text = rd.read(n).decode(), rd.read(m).decode()
    try:
        if program not in cache:
            if len(cache) > 256:
                cache.clear()
            cache[program] = jq.compile(program)
        results = cache[program].input_text(text).all()
        body = json.dumps(results[0] if results else None, separators=(",", ":")).encode()
    except MemoryError:
        reply(b"mem", b"")
        continue
    except Exception as exc:
        reply(b"err", str(exc).encode())
        continue
    reply(b"big", str(len(body)).encode()) if len(body) > output_limit else reply(b"ok", body)
"""


class _Child:
    def __init__(self, limits: Limits) -> None:
        # With the pid: a forked process starts jq processes of its own instead of sharing pipes.
        self.key = (limits.output_bytes, limits.jq_memory_bytes, os.getpid())
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", _CHILD, str(limits.output_bytes), str(limits.jq_memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},  # jq's $ENV, had it been reachable, holds nothing here
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in = self.process.stdin
        self._out = self.process.stdout.fileno()
        self._in.write(json.dumps(sys.path).encode() + b"\n")
        self._buffer = b""

    def ask(self, program: str, text: str, deadline: float) -> tuple[bytes, bytes] | None:
        """Send one evaluation; its (kind, body), or None when the deadline passed first."""
        head, body = program.encode(), text.encode()
        self._in.write(b"%d %d\n" % (len(head), len(body)) + head + body)
        self._in.flush()
        header = self._read_until(lambda: b"\n" in self._buffer, deadline)
        if header is None:
            return None
        line, self._buffer = self._buffer.split(b"\n", 1)
        kind, size = line.split()
        if self._read_until(lambda: len(self._buffer) >= int(size), deadline) is None:
            return None
        answer, self._buffer = self._buffer[: int(size)], self._buffer[int(size) :]
        return kind, answer

    def _read_until(self, ready: Any, deadline: float) -> bool | None:
        while not ready():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._out], [], [], remaining)[0]:
                return None
            chunk = os.read(self._out, 1 << 20)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        return True

    def end(self) -> int:
        """Kill the child (if still running); its exit status."""
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        return code


_IDLE: list[_Child] = []
_IDLE_LOCK = threading.Lock()
_MAX_IDLE: Final = 4


def evaluate_guarded(program: str, value: Any, limits: Limits) -> Any:
    """The first result of jq ``program`` on ``value`` (None if none), evaluated in a jq process
    within ``limits``. A jq error raises ``ValueError`` with jq's message (as the ``jq`` package
    does); a limit raises :class:`LimitExceeded`."""
    text = json.dumps(value)
    key = (limits.output_bytes, limits.jq_memory_bytes, os.getpid())
    with _IDLE_LOCK:
        child = next((c for c in _IDLE if c.key == key), None)
        if child is not None:
            _IDLE.remove(child)
    if child is None:
        child = _Child(limits)
    deadline = time.monotonic() + limits.jq_seconds
    try:
        answer = child.ask(program, text, deadline)
    except (EOFError, OSError):
        answer = (b"died", b"")
    if answer is None:
        child.end()
        raise limit_exceeded("jq_seconds", f"an expression ran longer than {limits.jq_seconds:g} seconds")
    kind, body = answer
    if kind in (b"died", b"mem"):
        code = child.end()
        if kind == b"mem" or code in (-6, -9, -11):  # jq aborts when an allocation fails
            raise limit_exceeded(
                "jq_memory_bytes", f"an expression needed more than {limits.jq_memory_bytes} bytes of memory"
            )
        raise WorkflowError.of(ErrorKind.RUNTIME, f"the jq process ended unexpectedly (exit status {code})")
    _release(child)
    if kind == b"err":
        raise ValueError(body.decode())
    if kind == b"big":
        raise limit_exceeded(
            "output_bytes",
            f"an expression's result is {body.decode()} bytes, over the limit of {limits.output_bytes} bytes",
        )
    return json.loads(body)


def _release(child: _Child) -> None:
    """Keep a healthy child for the next evaluation (a few at most)."""
    with _IDLE_LOCK:
        if len(_IDLE) < _MAX_IDLE:
            _IDLE.append(child)
            return
    child.end()
