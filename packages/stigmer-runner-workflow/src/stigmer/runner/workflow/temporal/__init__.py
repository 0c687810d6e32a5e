"""The workflow runner's Temporal host: one execution is one Temporal workflow.

- ``_workflow``: ``StigmerWorkflow``, the Temporal workflow that runs the interpreter;
- ``_host``: ``TemporalHost``, the interpreter's host inside it (timers, signals, activities);
- ``_activities``: every effect and every Backend call, as activities;
- ``_secrets``: secret references in workflow code, their values only in activities;
- ``_worker``: the worker process (``stigmer-workflow-runner`` runs it).

This module imports nothing: the Temporal sandbox re-imports workflow modules for every run,
and temporalio is an optional dependency (``stigmer-runner-workflow[temporal]``).
"""
