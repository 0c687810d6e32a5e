"""The store's tables: one module per concern, each with the queries of its tables.

- ``_schema``: every table (SQLAlchemy Core declarations, the source of the migrations' DDL), ``_migrations``: the ordered schema migrations;
- ``_resources`` (and label ``_selectors``), ``_executions``, ``_events`` (execution events and
  status), ``_secrets``, ``_grants`` (secret owners and grants, authors, runner leases),
  ``_artifacts``;
- how values are kept: ``_columns`` (time, JSON), ``_paging`` (page tokens), ``_input`` (names,
  quoting user text in errors).

``LocalBackend`` (``stigmer.backend.local._backend``) runs these inside the transactions of
``stigmer.backend.local._db``. Nothing is imported here, so ``import stigmer.backend.local`` stays cheap.
"""
