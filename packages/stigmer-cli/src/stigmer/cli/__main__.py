"""``python -m stigmer.cli``."""

from stigmer.cli._app import main

if __name__ == "__main__":
    main()
