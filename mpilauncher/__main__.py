"""``python -m mpilauncher commandlines``."""

import sys

from mpilauncher.cli import main

if __name__ == "__main__":
    sys.exit(main())
