"""The LangGraph side of agent_peers: ``python langgraph_agent.py BASE_URL PROMPT SERVER_CMD...``.

LangGraph's prebuilt ReAct agent on ``ChatOpenAI``, the MCP server's tools loaded with
``langchain-mcp-adapters`` from one session held for the run (without it the adapters start the
server again for every call), one run, the answer printed.
"""

import asyncio
import sys

from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.tools import load_mcp_tools
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent


async def main() -> None:
    base_url, prompt, command, *args = sys.argv[1:]
    model = ChatOpenAI(model="stand-in", base_url=base_url, api_key="not-needed")
    client = MultiServerMCPClient({"tools": {"command": command, "args": args, "transport": "stdio"}})
    async with client.session("tools") as session:
        tools = await load_mcp_tools(session)
        agent = create_react_agent(model, tools, prompt="Be brief.")
        result = await agent.ainvoke({"messages": [("user", prompt)]})
    print(result["messages"][-1].content)


asyncio.run(main())
