"""What the CLI prints: output formats and tables (``_format``), the stable JSON shapes of
executions and events (``_view``), live rendering of events (``_render``), and a run on the
terminal — live events, approval prompts, the final report (``_live``)."""
