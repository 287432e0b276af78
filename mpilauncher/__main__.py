"""``python -m mpilauncher commandlines``."""

from mpilauncher.cli import console

if __name__ == "__main__":
    console()
