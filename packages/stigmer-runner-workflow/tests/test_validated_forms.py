"""A document is validated once (at ``apply``) and its validated form kept on disk: a run in another
process of the host loads that form instead of validating again (issue 18's cold-run finding:
checking a 1,000-task document cost far more than running it, on every invocation)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from stigmer.core import Backend, Redactor, from_value, parse_manifest, pinned_target
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow import WorkflowRunner, _validated, keep_validated, load_workflow

DOC = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: wf}
spec:
  document: {dsl: 1.0.0, namespace: t, name: wf, version: 1.0.0}
  do:
    - pick: {set: {value: '${ 40 + 2 }'}}
"""


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every document the runner validates (``load_workflow`` calls)."""
    seen: list[Any] = []
    real = load_workflow

    def counting(source: Any) -> Any:
        seen.append(source)
        return real(source)

    monkeypatch.setattr("stigmer.runner.workflow._runner.load_workflow", counting)
    return seen


async def stored_spec(backend: Backend, text: str = DOC) -> Any:
    for loaded in parse_manifest(text, "wf.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    run = await backend.create_execution(
        svc.CreateExecutionRequest(
            spec=execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="wf"))
        )
    )
    return (await pinned_target(backend, run)).workflow.spec, run.metadata.id


def entries(home: Path) -> list[Path]:
    folder = home / "cache" / "workflows"
    return sorted(folder.glob("*.json")) if folder.exists() else []


async def test_a_run_loads_the_form_kept_at_apply_and_validates_nothing(
    backend: Backend, _home: Path, loads: list[Any]
) -> None:
    _home.mkdir()
    spec, run_id = await stored_spec(backend)
    assert keep_validated(spec, _home) is True
    [entry] = entries(_home)
    # private, like everything in the home
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(entry.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.parent.parent.stat().st_mode) == 0o700
    assert json.loads(entry.read_text())["definition"]["do"] == [{"pick": {"set": {"value": "${ 40 + 2 }"}}}]

    done = await WorkflowRunner(redactor=Redactor()).execute(backend, run_id)  # a fresh runner: no memory
    assert from_value(done.status.output) == {"value": 42}
    assert loads == []


async def test_without_a_kept_form_the_first_run_validates_and_keeps_it(
    backend: Backend, _home: Path, loads: list[Any]
) -> None:
    _home.mkdir()
    _, run_id = await stored_spec(backend)
    done = await WorkflowRunner(redactor=Redactor()).execute(backend, run_id)
    assert from_value(done.status.output) == {"value": 42}
    assert len(loads) == 1
    assert len(entries(_home)) == 1
    # the next process's runner finds it
    _, again = await stored_spec(backend)
    await WorkflowRunner(redactor=Redactor()).execute(backend, again)
    assert len(loads) == 1


async def test_a_damaged_entry_is_a_miss_and_is_written_again(
    backend: Backend, _home: Path, loads: list[Any]
) -> None:
    _home.mkdir()
    spec, run_id = await stored_spec(backend)
    keep_validated(spec, _home)
    [entry] = entries(_home)
    entry.write_text('{"key": "another", "definition": {}}')
    done = await WorkflowRunner(redactor=Redactor()).execute(backend, run_id)
    assert from_value(done.status.output) == {"value": 42}
    assert len(loads) == 1
    assert json.loads(entry.read_text())["key"] == entry.stem  # replaced by the validated form
    entry.write_bytes(b"\x00not json")
    _, again = await stored_spec(backend)
    done = await WorkflowRunner(redactor=Redactor()).execute(backend, again)
    assert done.status.phase == execution_pb2.PHASE_SUCCEEDED
    assert len(loads) == 2


async def test_no_home_is_created_to_keep_a_form(backend: Backend, _home: Path) -> None:
    spec, run_id = await stored_spec(backend)
    assert keep_validated(spec) is True  # $STIGMER_HOME does not exist
    done = await WorkflowRunner(redactor=Redactor()).execute(backend, run_id)
    assert done.status.phase == execution_pb2.PHASE_SUCCEEDED
    assert not _home.exists()


async def test_an_invalid_document_is_not_kept(backend: Backend, _home: Path) -> None:
    from stigmer.core import to_value

    _home.mkdir()
    spec = to_value({"document": {"dsl": "1.0.0", "namespace": "t", "name": "x", "version": "1"}, "do": 3})
    assert keep_validated(spec.struct_value, _home) is False
    assert entries(_home) == []


def test_the_folder_keeps_the_most_recently_used_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_validated, "KEEP", 3)
    forms = _validated.ValidatedForms(tmp_path)
    for index in range(5):
        forms.put(f"k{index}", {"index": index})
        path = forms.folder / f"k{index}.json"
        os.utime(path, ns=(index * 10**9, index * 10**9))
        if index == 1:
            forms.get("k0")  # used again: now the newest of the first two
    # k0, read again, is newer than the back-dated others; k1 and k2 were the least recently used
    assert sorted(p.stem for p in forms.folder.glob("*.json")) == ["k0", "k3", "k4"]
    assert forms.get("k0") == {"index": 0}
    assert forms.get("k2") is None


def test_a_changed_runner_makes_a_new_key(tmp_path: Path) -> None:
    package = tmp_path / "workflow"
    (package / "schema").mkdir(parents=True)
    module = package / "_parse.py"
    module.write_text("A = 1\n")
    (package / "schema" / "dsl.json").write_text("{}")
    first = _validated.fingerprint(package)
    assert _validated.fingerprint(package) == first
    module.write_text("A = 22\n")  # an edit (or an upgrade) of the validator
    second = _validated.fingerprint(package)
    assert second != first
    (package / "schema" / "dsl.json").write_text('{"a": 1}')
    assert _validated.fingerprint(package) not in (first, second)


def test_the_runner_imports_no_yaml_parser_until_it_reads_yaml_text() -> None:
    """A run loads a stored (or kept) document: the YAML parser is for text only."""
    import subprocess
    import sys

    code = (
        "import sys, stigmer.runner.workflow as w\n"
        "assert not [m for m in sys.modules if m.startswith('ruamel')], 'imported at start'\n"
        "w.load_workflow('document: {dsl: 1.0.0, namespace: t, name: y, version: 1.0.0}\\n"
        "do: [{a: {set: {x: 1}}}]\\n')\n"
        "assert 'ruamel.yaml' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
