"""Ledgers the unit tests share."""

from __future__ import annotations

from pathlib import Path

from mpilauncher.core.ledger import Ledger
from mpilauncher.core.tasks import CoresSpec, Task
from mpilauncher.persistence.files import sha256_hex
from mpilauncher.persistence.queuestate import StateMeta
from mpilauncher.persistence.store import StateStore


def make_ledger(n: int, elapsed_before: float = 0.0) -> Ledger:
    return Ledger((Task(i, f"./prog {i}", line=i + 1) for i in range(n)), elapsed_before=elapsed_before)


def finished_ledger() -> Ledger:
    """6 tasks on 2 nodes x 2 cores: 4 completed, 1 failed, 1 queued."""
    ledger = make_ledger(6, elapsed_before=10.0)
    runs = [  # id, host, core ids, exit, runtime
        (0, "c1", (0,), 0, 4.0),
        (1, "c1", (1,), 0, 2.0),
        (2, "c2", (0, 1), 0, 6.0),
        (3, "c1", (0,), 1, 3.0),
        (4, "c1", (0,), 0, 5.0),
    ]
    for tid, host, core_ids, code, runtime in runs:
        ledger.started(tid, host, core_ids, 1000.0 + tid)
        ledger.finished(tid, code, 1000.0 + tid, runtime)
    return ledger


def opened_store(folder: Path, n: int) -> StateStore:
    """A sweep of ``n`` tasks (``./prog 0`` ...) from ``folder/commands``, its state store opened on
    ``folder/qs`` as a run opens it, nothing run yet."""
    commands = folder / "commands"
    commands.write_text("".join(f"./prog {i}\n" for i in range(n)))
    one = CoresSpec("fixed", 1)
    meta = StateMeta(commandlines=str(commands), sha256=sha256_hex(commands.read_bytes()), cores=str(one),
                     workdir=str(folder))  # fmt: skip
    store = StateStore(folder / "qs", make_ledger(n), meta, one, fsync_interval=0.5)
    store.open(now=0.0)
    return store
