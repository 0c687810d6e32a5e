"""The full local stack (``stigmer local``): its files under ``$STIGMER_HOME/local/`` (``_files``)
and the supervisor process that runs Temporal, the server and the runner workers
(``_supervisor``; started as ``python -m stigmer.cli.local HOME``)."""
