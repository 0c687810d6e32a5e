"""The ``stigmer`` commands: one module per command group, each a Typer app the root group
(``stigmer.cli._app``) imports only when its command runs.

``_apply`` (apply, delete) · ``_get`` (get, describe) · ``_run`` (run, agent execute, workflow run)
· ``_executions`` · ``_secrets`` · ``_contexts`` (context, login, logout) · ``_server`` (server,
token) · ``_local`` (the full local stack) · ``_init`` · ``_export`` · ``_version``; ``_params``
parses what users type (input documents, K=V pairs, secret files, kind names).
"""
