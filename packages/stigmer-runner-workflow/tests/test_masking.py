"""Secrets leaking through errors and encodings (Lite mode: WorkflowRunner on a real SQLite store,
HTTP to the local stub): each test reproduces one way a value used to reach the record, and checks
that neither the value, an encoded form of it nor a prefix of it is in the database any more."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jq
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from stigmer.core import Backend, Redactor, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow import WorkflowRunner
from stigmer.runner.workflow._expr import jq_error_text

TOKEN = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----"
)
P = execution_pb2


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    from stigmer.backend.local import LocalBackend

    store = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"m" * 32)
    await store.set_secret(svc.SetSecretRequest(name="TOKEN", value=TOKEN))
    await store.set_secret(svc.SetSecretRequest(name="PEM", value=PEM))
    try:
        yield store
    finally:
        await store.close()


async def run(backend: Backend, stub: Any, tasks: str) -> P.Execution:
    text = (
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: leaky}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: demo, name: leaky, version: 1.0.0}\n"
        "  use: {secrets: [TOKEN, PEM]}\n  do:\n" + tasks
    )
    for loaded in parse_manifest(text, "leaky.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    spec = P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="leaky"))
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    runner = WorkflowRunner(rewrite_url=stub.rewrite, redactor=Redactor())
    return await runner.execute(backend, created.metadata.id)


def _needles(value: str) -> dict[str, bytes]:
    """What must not be recorded: forms of ``value`` and any 12-character piece of it."""
    forms = {
        "raw": value,
        "json": json.dumps(value)[1:-1],
        "repr": repr(value.encode())[2:-1],
        "quote": urllib.parse.quote(value, safe=""),
        "quote_plus": urllib.parse.quote_plus(value),
        "base64": base64.b64encode(value.encode()).decode().rstrip("="),
    }
    lines = [line for line in value.splitlines() if len(line) >= 12]
    pieces = {f"piece{i}.{j}": line[j : j + 12] for i, line in enumerate(lines) for j in (0, len(line) // 2)}
    pieces = {k: v for k, v in pieces.items() if "-----" not in v}  # PEM armour is no secret
    return {k: v.encode() for k, v in {**forms, **pieces}.items()}


async def recorded(backend: Backend, tmp_path: Path, finished: P.Execution) -> list[bytes]:
    """The execution as read back, and every file of the store (database and WAL)."""
    again = await backend.get_execution(svc.GetExecutionRequest(id=finished.metadata.id))
    files = [p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name.startswith("stigmer.db")]
    assert files, "no database file to scan"
    return [str(again).encode(), again.SerializeToString(), *files]


def assert_no_leak(blobs: list[bytes]) -> None:
    for value in (TOKEN, PEM):
        found = [name for name, needle in _needles(value).items() for blob in blobs if needle in blob]
        assert found == [], f"leaked {value[:4]}… as {found}"


# ------------------------------------------------------------------------------------------ jq


async def test_a_jq_error_on_a_secret_names_types_not_the_value(
    backend: Backend, stub: Any, tmp_path: Path
) -> None:
    # jq wrote: string ("sk-proj-AbCdEfGhIjKlMnOp...) and number (1) cannot be added
    finished = await run(backend, stub, "    - bad: {set: {x: '${ $secrets.TOKEN + 1 }'}}\n")
    assert finished.status.phase == P.PHASE_FAILED
    assert "string and number cannot be added" in finished.status.error.detail
    assert_no_leak(await recorded(backend, tmp_path, finished))


async def test_a_jq_error_on_an_object_holding_a_secret(backend: Backend, stub: Any, tmp_path: Path) -> None:
    tasks = "    - bad: {set: {x: '${ [{k: $secrets.PEM}] | @csv }'}}\n"
    finished = await run(backend, stub, tasks)
    assert finished.status.phase == P.PHASE_FAILED
    assert "object is not valid in a csv row" in finished.status.error.detail
    assert_no_leak(await recorded(backend, tmp_path, finished))


async def test_fromjson_of_a_secret_does_not_quote_it(backend: Backend, stub: Any, tmp_path: Path) -> None:
    finished = await run(backend, stub, "    - bad: {set: {x: '${ $secrets.TOKEN[3:] | fromjson }'}}\n")
    assert finished.status.phase == P.PHASE_FAILED
    assert "while parsing" not in finished.status.error.detail
    assert_no_leak(await recorded(backend, tmp_path, finished))


PROGRAMS = [
    ". + 1",
    ". - 1",
    "tonumber",
    "keys",
    ".[0]",
    "{} | .[$v][0] | .x",
    "1 | .[$v]",
    "[.] + {}",
    "{k: .} + 1",
    "[[.]] | @sh",
    "[{k: .}] | @csv",
    "@csv",
    "@base64d",
    "fromjson",
    "path($v)",
    'strptime("%Y")',
    '"2020" | strptime($v)',
    'test("a"; $v)',
    "[.] | implode",
    "{} | has($v)",
    ".[] ",
    'ltrimstr("x") | . as $x | {} | .[$x:1]',
]


@given(
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        min_size=16,
        max_size=64,
    ),
    st.sampled_from(PROGRAMS),
)
@example(value="0 number 0000000", program=". + 1")  # a value holding a word of the message itself
def test_jq_messages_never_carry_a_piece_of_the_value(value: str, program: str) -> None:
    try:
        jq.compile(program, args={"v": value}).input_value(value).all()
    except ValueError as exc:
        message, text = str(exc), jq_error_text(exc)
    else:
        return  # the program happened to succeed on this value: nothing to render
    # The words the message says of any string (e.g. "string and number cannot be added"): a piece
    # of the value that is one of them is the template speaking, not the value leaking.
    neutral = "x" * len(value)
    try:
        jq.compile(program, args={"v": neutral}).input_value(neutral).all()
        template = ""
    except ValueError as neutral_exc:
        template = jq_error_text(neutral_exc)
    dumped = json.dumps(value, ensure_ascii=False)[1:-1]
    for source in (value, dumped):
        for start in range(0, len(source) - 7):
            piece = source[start : start + 8]
            assert piece not in text or piece in template, (program, message, text)


# ---------------------------------------------------------------------------------------- HTTP


async def test_a_multiline_secret_in_a_header_is_refused_by_name(
    backend: Backend, stub: Any, tmp_path: Path
) -> None:
    # httpx used to refuse it with: Illegal header value b'-----BEGIN ...\\nMIIE...'
    tasks = """\
    - send:
        call: http
        with:
          method: get
          endpoint: https://api.example.com/echo
          headers: {X-Key: '${ $secrets.PEM }'}
"""
    finished = await run(backend, stub, tasks)
    assert finished.status.phase == P.PHASE_FAILED
    assert "header X-Key has a line break" in finished.status.error.detail
    assert_no_leak(await recorded(backend, tmp_path, finished))


async def test_a_secret_echoed_url_encoded_in_a_body_is_masked(
    backend: Backend, stub: Any, tmp_path: Path
) -> None:
    tasks = """\
    - echo:
        call: http
        with:
          method: get
          endpoint: https://api.example.com/echo-raw
          query: {key: '${ $secrets.PEM }', token: '${ $secrets.TOKEN }'}
"""
    finished = await run(backend, stub, tasks)
    assert finished.status.phase == P.PHASE_SUCCEEDED, finished.status.error
    sent = stub.requests[-1]["query"]
    assert sent == {"key": [PEM], "token": [TOKEN]}  # the real values went out
    assert "***" in finished.status.output.string_value
    assert_no_leak(await recorded(backend, tmp_path, finished))


async def test_an_api_error_quoting_a_secret_is_masked_before_it_is_cut(
    backend: Backend, stub: Any, tmp_path: Path
) -> None:
    # The error keeps 500 characters of the body: the secret straddles that limit.
    tasks = """\
    - echo:
        call: http
        with:
          method: get
          endpoint: '${ "https://api.example.com/fail-raw/" + ("x" * 463) }'
          query: {b: '${ $secrets.TOKEN }'}
"""
    finished = await run(backend, stub, tasks)
    assert finished.status.phase == P.PHASE_FAILED
    assert "answered HTTP 400" in finished.status.error.detail
    assert_no_leak(await recorded(backend, tmp_path, finished))


@pytest.mark.parametrize("route", ["/echo", "/echo-raw"])
async def test_raw_output_of_an_echoed_secret_is_masked(
    backend: Backend, stub: Any, tmp_path: Path, route: str
) -> None:
    # output: raw returns the body as base64: the secret sits in it at any of 3 alignments.
    tasks = f"""\
    - echo:
        call: http
        with:
          method: get
          endpoint: https://api.example.com{route}
          headers: {{X-Token: '${{ $secrets.TOKEN }}'}}
          query: {{key: '${{ $secrets.PEM }}', n: '${{ "ab" }}'}}
          output: raw
"""
    finished = await run(backend, stub, tasks)
    assert finished.status.phase == P.PHASE_SUCCEEDED, finished.status.error
    assert "***" in finished.status.output.string_value
    assert_no_leak(await recorded(backend, tmp_path, finished))


async def test_base64_and_uri_encodings_of_secrets_are_masked(
    backend: Backend, stub: Any, tmp_path: Path
) -> None:
    tasks = """\
    - encode:
        set:
          b64: '${ $secrets.PEM | @base64 }'
          uri: '${ $secrets.PEM | @uri }'
          json: '${ $secrets.PEM | tojson }'
          inner: '${ "key=" + $secrets.TOKEN + "&x=1" | @base64 }'
          lines: '${ $secrets.PEM | split("\\n") }'
"""
    finished = await run(backend, stub, tasks)
    assert finished.status.phase == P.PHASE_SUCCEEDED, finished.status.error
    assert_no_leak(await recorded(backend, tmp_path, finished))


async def test_a_failed_process_cuts_its_stderr_after_masking(
    backend: Backend, stub: Any, tmp_path: Path
) -> None:
    tasks = """\
    - fail:
        run:
          shell:
            command: 'printf "%0486d%s" 0 "$T" >&2; exit 3'
            environment: {T: '${ $secrets.TOKEN }'}
"""
    finished = await run(backend, stub, tasks)
    assert finished.status.phase == P.PHASE_FAILED
    assert "exited with code 3" in finished.status.error.detail
    assert_no_leak(await recorded(backend, tmp_path, finished))
