"""``python -m stigmer.cli.local STIGMER_HOME``: the supervisor of the full local stack."""

import os
import sys

from stigmer.cli.local._supervisor import main

if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
