"""The leak scanner finds each encoded form it claims to, so a clean scan means something."""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path

import pytest

from .conftest import encoded_forms, find_leaks

PEM = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END KEY-----"


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: v,
        lambda v: json.dumps({"k": v}),
        lambda v: repr(v),
        lambda v: urllib.parse.quote(v, safe=""),
        lambda v: urllib.parse.quote_plus(v),
        lambda v: base64.b64encode(v.encode()).decode(),
        lambda v: base64.urlsafe_b64encode(v.encode()).decode(),
    ],
)
def test_each_encoding_is_found(encode, tmp_path: Path) -> None:
    (tmp_path / "db").write_text("prefix " + encode(PEM) + " suffix")
    assert find_leaks(PEM, paths=[tmp_path])


def test_a_line_of_a_multiline_secret_is_found() -> None:
    assert find_leaks(PEM, texts=["header: " + PEM.splitlines()[1]])


def test_clean_text_is_clean(tmp_path: Path) -> None:
    (tmp_path / "log").write_text("nothing to see: ***")
    assert find_leaks(PEM, paths=[tmp_path]) == []
    assert set(encoded_forms("sk-proj-AbCdEfGhIjKlMnOp")) >= {"raw", "json", "quote", "base64"}


def test_scanning_nothing_fails(tmp_path: Path) -> None:
    with pytest.raises(AssertionError):
        find_leaks(PEM, paths=[tmp_path / "missing"])
