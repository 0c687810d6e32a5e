"""``python -m stigmer.runner.workflow``: the ``stigmer-workflow-runner`` command (how ``stigmer server`` starts
the child process that runs one execution, with the server's own interpreter)."""

import sys

from stigmer.runner.workflow._main import main

if __name__ == "__main__":
    sys.exit(main())
