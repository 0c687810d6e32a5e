"""The validated form of workflow documents, kept on disk so a run does not check them again.

``apply`` validates a document (schema, semantic checks, jq syntax) and keeps what came out, the
document in the current model, under ``$STIGMER_HOME/cache/workflows/``; a later run of the same
stored spec in any process of this host loads that form instead of validating again (on a
1,000-task document checking costs ≈ 50 ms, loading the kept form ≈ 2 ms).

An entry's name is a digest of the spec's deterministic protobuf encoding and of this validator
(the runner's version and its modules and schema files, by size and modification time), so a
changed document or an upgraded (or edited) runner is simply a miss. Entries are written 0600 in a
0700 folder, only where the home already exists; what cannot be read or written is a miss, never
an error. The folder keeps the :data:`KEEP` most recently used entries.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from stigmer.core import PRIVATE_FILE_MODE, private_dir, stigmer_home

__all__ = ["KEEP", "ValidatedForms", "fingerprint", "keep_validated", "spec_key"]

KEEP = 256
_FOLDER = ("cache", "workflows")


def fingerprint(package: Path) -> bytes:
    """A digest of a package's modules and schema files (name, size, modification time)."""
    digest = hashlib.sha256(b"stigmer-runner-workflow/validated/1")
    for folder in (package, package / "schema", package / "_tasks"):
        with contextlib.suppress(OSError):
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if entry.is_file() and entry.name.endswith((".py", ".json")):
                    info = entry.stat()
                    digest.update(f"{folder.name}/{entry.name}:{info.st_size}:{info.st_mtime_ns};".encode())
    return digest.digest()


@functools.cache
def _validator_fingerprint() -> bytes:
    """This runner's :func:`fingerprint`, read once a process."""
    return fingerprint(Path(__file__).parent)


def spec_key(spec_bytes: bytes) -> str:
    """The entry name of a spec, given its deterministic protobuf encoding."""
    return hashlib.sha256(_validator_fingerprint() + spec_bytes).hexdigest()


class ValidatedForms:
    """Validated documents by :func:`spec_key`, in ``<home>/cache/workflows`` (default home:
    ``$STIGMER_HOME``)."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else stigmer_home()
        self.folder = self.home.joinpath(*_FOLDER)

    def get(self, key: str) -> dict[str, Any] | None:
        """The validated document kept for ``key``, or ``None``."""
        path = self.folder / f"{key}.json"
        try:
            with open(path, "rb") as file:
                kept = json.loads(file.read())
        except (OSError, ValueError):
            return None
        if (
            not isinstance(kept, dict)
            or kept.get("key") != key
            or not isinstance(kept.get("definition"), dict)
        ):
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: kept longest
        definition: dict[str, Any] = kept["definition"]
        return definition

    def put(self, key: str, definition: dict[str, Any]) -> None:
        """Keep a validated document (quietly nothing where the home is missing or read-only)."""
        if not self.home.is_dir():
            return  # never create a home as a side effect of validating
        path = self.folder / f"{key}.json"
        if path.exists():
            return
        text = json.dumps({"key": key, "definition": definition}, separators=(",", ":"), ensure_ascii=False)
        tmp = self.folder / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            private_dir(self.folder.parent)  # each level 0700 (mkdir -p would leave the parents 0755)
            private_dir(self.folder)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
            with os.fdopen(fd, "wb") as file:
                file.write(text.encode())
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self._prune()

    def _prune(self) -> None:
        with contextlib.suppress(OSError):
            entries = [e for e in os.scandir(self.folder) if e.name.endswith(".json")]
            if len(entries) <= KEEP:
                return
            entries.sort(key=lambda e: e.stat().st_mtime_ns)
            for entry in entries[: len(entries) - KEEP]:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def keep_validated(spec: Any, home: Path | str | None = None) -> bool:
    """Validate a stored Workflow ``spec`` (a ``google.protobuf.Struct``, as the store returns it)
    and keep its validated form in ``home`` (default ``$STIGMER_HOME``) for the runs of this host.
    ``False`` when it has errors (nothing kept; ``apply`` refuses such a document anyway)."""
    from stigmer.core import from_value

    from ._parse import validate_workflow

    validation = validate_workflow(from_value(spec))
    if validation.workflow is None:
        return False
    ValidatedForms(home).put(
        spec_key(spec.SerializeToString(deterministic=True)), validation.workflow.definition
    )
    return True
