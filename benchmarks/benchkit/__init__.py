"""Helpers the benchmark scripts share: the machine's description, timed runs, the peers and their workloads.

The scripts in ``benchmarks/`` put their own folder first on ``sys.path`` (Python does so for a script), so
``from benchkit import ...`` works without installing anything.  Nothing here imports ``mpilauncher``: the
checkout being benchmarked is always run as its own process.
"""
