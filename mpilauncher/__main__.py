"""``python -m mpilauncher commandlines``."""

if __name__ == "__main__":
    from mpilauncher.runtime.stop import hold_stop_signals

    hold_stop_signals()  # before the imports of the rest: a Ctrl-C there is no traceback

    from mpilauncher.cli import console

    console()
