"""The handlers of the task kinds, one module per family (``flow``, ``call``, ``events``, ``run``,
``trycatch``); the registry that maps each kind to its handler is :mod:`.._task_kinds`."""
