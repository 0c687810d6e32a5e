"""The bare pydantic-ai side of agent_peers: ``python pydantic_ai_agent.py BASE_URL PROMPT SERVER_CMD...``.

What a user writes: an Agent on ``OpenAIChatModel`` with the MCP server as a toolset (pydantic-ai's
``MCPToolset``, as Stigmer uses), one run, the answer printed.
"""

import asyncio
import sys

from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider


async def main() -> None:
    base_url, prompt, command, *args = sys.argv[1:]
    model = OpenAIChatModel("stand-in", provider=OpenAIProvider(base_url=base_url, api_key="not-needed"))
    tools = MCPToolset(StdioTransport(command, args, keep_alive=False))
    agent = Agent(model, instructions="Be brief.", toolsets=[tools])
    async with agent:
        result = await agent.run(prompt)
    print(result.output)


asyncio.run(main())
