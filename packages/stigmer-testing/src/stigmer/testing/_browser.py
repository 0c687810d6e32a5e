"""A real headless Chromium for tests of web pages: Debian's ``chromium`` driven by Playwright.

No browser is ever downloaded (``playwright install`` is not used): Playwright launches the
system's binary through ``executable_path``. A missing browser is an error that says how to
install it, never a skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["chromium", "chromium_path"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str:
    """The Chromium binary: ``$STIGMER_TEST_CHROMIUM`` or the first on PATH; RuntimeError if none."""
    given = os.environ.get("STIGMER_TEST_CHROMIUM", "")
    if given:
        if not os.access(given, os.X_OK):
            raise RuntimeError(f"$STIGMER_TEST_CHROMIUM={given!r} is not an executable browser")
        return given
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "Chromium is not installed, and the web console's browser tests need a real browser: "
        "`apt-get install -y chromium` (Debian; .ci/run does it), or point $STIGMER_TEST_CHROMIUM at one"
    )


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``, sync API), closed afterwards."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True)
        try:
            yield browser
        finally:
            browser.close()
