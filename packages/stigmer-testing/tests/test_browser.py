"""The browser of the web-page tests: found on PATH or named by $STIGMER_TEST_CHROMIUM; missing, a
clear error (never a skip)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stigmer.testing import chromium_path


def test_a_missing_browser_is_an_error_that_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("STIGMER_TEST_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    with pytest.raises(RuntimeError, match=r"apt-get install -y chromium"):
        chromium_path()
    monkeypatch.setenv("STIGMER_TEST_CHROMIUM", str(tmp_path / "nope"))
    with pytest.raises(RuntimeError, match="is not an executable browser"):
        chromium_path()


def test_the_browser_is_found_on_path_or_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.delenv("STIGMER_TEST_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert chromium_path() == str(fake)
    monkeypatch.setenv("STIGMER_TEST_CHROMIUM", str(fake))
    assert chromium_path() == str(fake)
