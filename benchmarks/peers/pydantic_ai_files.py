"""The bare pydantic-ai side of agent_tools: ``python pydantic_ai_files.py BASE_URL PROMPT FOLDER``.

What a user writes without Stigmer: an Agent on ``OpenAIChatModel`` with two plain Python
functions as tools that read and write files in a folder (the same work as Stigmer's ``files``
tool set, without its workspace checks), one run, the answer printed.
"""

import asyncio
import sys
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.usage import UsageLimits


async def main() -> None:
    base_url, prompt, folder = sys.argv[1:]
    root = Path(folder)
    model = OpenAIChatModel("stand-in", provider=OpenAIProvider(base_url=base_url, api_key="not-needed"))
    agent = Agent(model, instructions="Be brief.")

    @agent.tool_plain
    def write_file(path: str, content: str) -> str:
        """Write a file."""
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return f"wrote {len(content)} bytes to {path}"

    @agent.tool_plain
    def read_file(path: str) -> str:
        """Read a file."""
        return (root / path).read_text()

    result = await agent.run(prompt, usage_limits=UsageLimits(request_limit=500))  # Stigmer's default
    print(result.output)


asyncio.run(main())
