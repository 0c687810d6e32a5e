"""What loading the MCP client costs a cold run: py-key-value (under fastmcp, under
``pydantic_ai.mcp``) wraps its functions in beartype checks at import unless told not to."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
from stigmer.runner.agent._mcp import mcp_toolset_class
mcp_toolset_class()
import key_value.aio as kv
print(kv.strategy.name)
"""


def _strategy(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "PY_KEY_VALUE_DISABLE_BEARTYPE"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env={**environ, **env}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_loading_the_mcp_client_turns_off_key_value_run_time_checks() -> None:
    # O0: no checking code generated for every function of a store package the runner never uses.
    assert _strategy() == "O0"


def test_a_users_own_setting_is_kept() -> None:
    assert _strategy(PY_KEY_VALUE_DISABLE_BEARTYPE="false") == "O1"
