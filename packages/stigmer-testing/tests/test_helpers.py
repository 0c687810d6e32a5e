"""The small helpers: a self-signed certificate, patch markers of a history, the PostgreSQL URL."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from stigmer.testing import (
    POSTGRES_URL_ENV,
    assert_patch_branches,
    history_patches,
    history_start_args,
    postgres_test_url,
    self_signed_cert,
)


def test_a_self_signed_cert_loads_and_names_its_hosts(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path, ["example.test", "::1"], name="mine")
    assert (cert.name, key.name) == ("mine.pem", "mine.key")
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    san = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.test"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["::1"]


def _history(path: Path, *patches: str) -> Path:
    def marker(patch: str) -> dict[str, object]:
        data = base64.b64encode(json.dumps({"id": patch}).encode()).decode()
        details = {"patch-data": {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": data}]}}
        return {"markerRecordedEventAttributes": {"markerName": "core_patch", "details": details}}

    path.write_text(json.dumps({"events": [{"eventId": "1"}, *map(marker, patches)]}), encoding="utf-8")
    return path


def test_history_patches_and_both_branches(tmp_path: Path) -> None:
    new, old = _history(tmp_path / "new.json", "p1", "p2"), _history(tmp_path / "old.json")
    assert history_patches(new) == {"p1", "p2"} and history_patches(old) == set()
    assert_patch_branches([new, old], "p1")
    with pytest.raises(AssertionError, match="legacy branch"):
        assert_patch_branches([new, new], "p1")
    with pytest.raises(AssertionError, match="none takes p3"):
        assert_patch_branches([new, old], "p3")


def test_history_start_args_decodes_the_start_payload(tmp_path: Path) -> None:
    args = {"executionId": "wex_1", "limits": {"events": 5}}
    payload = {
        "metadata": {"encoding": "anNvbi9wbGFpbg=="},
        "data": base64.b64encode(json.dumps(args).encode()).decode(),
    }
    started = {"workflowExecutionStartedEventAttributes": {"input": {"payloads": [payload]}}}
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"events": [started]}), encoding="utf-8")
    assert history_start_args(path) == args
    path.write_text(
        json.dumps({"events": [{"workflowExecutionStartedEventAttributes": {}}]}), encoding="utf-8"
    )
    assert history_start_args(path) is None


def test_postgres_test_url_fails_loudly_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POSTGRES_URL_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match=POSTGRES_URL_ENV):
        postgres_test_url()
    monkeypatch.setenv(POSTGRES_URL_ENV, "postgresql+psycopg://u:p@h/d")
    assert postgres_test_url() == "postgresql+psycopg://u:p@h/d"
