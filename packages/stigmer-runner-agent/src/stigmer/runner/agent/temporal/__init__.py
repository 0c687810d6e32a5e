"""The Temporal host of the agent loop: each agent execution is a workflow, each effect an activity.

- ``_workflow``: the ``stigmer.agent`` workflow; it runs the agent loop (``.._loop``) with a host
  whose effects are activities and whose approval decisions arrive as the ``stigmer.approval`` signal;
- ``_remote``: the pydantic-ai model and toolset that stand in for the real ones in the workflow
  (each request and each tool call an activity);
- ``_activities`` / ``_steps``: the activities, one step of an execution each, run on the worker;
- ``_worker``: the worker process (``stigmer-agent-runner``).

Importing this package imports nothing: Temporal's sandbox re-imports workflow modules, and a
runner without the ``temporal`` extra must still import ``stigmer.runner.agent``.
"""
