"""``python -m stigmer.runner.agent``: the ``stigmer-agent-runner`` command (how ``stigmer server`` starts
the child process that runs one execution, with the server's own interpreter)."""

import sys

from stigmer.runner.agent._main import main

if __name__ == "__main__":
    sys.exit(main())
