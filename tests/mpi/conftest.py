"""pytest-mpi skips every test whose keywords contain "mpi" -- including, by
accident, every test in this folder, whose name is a keyword.  Only tests that
carry the ``mpi`` marker need ``--with-mpi``; give the others back."""

from __future__ import annotations

import pytest

PYTEST_MPI_SKIP = "need --with-mpi option to run"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.get_closest_marker("mpi") is None:
            item.own_markers[:] = [
                m for m in item.own_markers if not (m.name == "skip" and m.kwargs.get("reason") == PYTEST_MPI_SKIP)
            ]
