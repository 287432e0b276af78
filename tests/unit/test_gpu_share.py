"""A GPU task's share of its node's cores (rank0.give_gpus): below one core it takes no core slot (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpilauncher.config import make_config
from mpilauncher.core.ledger import Ledger
from mpilauncher.core.tasks import CoresSpec, parse_commandlines
from mpilauncher.execution.resources import Gpus
from mpilauncher.persistence.queuestate import StateMeta
from mpilauncher.protocol import Hello
from mpilauncher.rank0 import Plan, give_gpus


def plan_of(text: str, cores: CoresSpec, extra: dict | None = None) -> Plan:
    tasks = parse_commandlines(text, "cl", cores)
    return Plan(Ledger(tasks), tasks, StateMeta(cores=str(cores), extra=dict(extra or {})), cores, Path("q"), None)


def node(cores: int, gpus: int, tasks_per_gpu: int = 1) -> Hello:
    return Hello("n", cores, gpu_ids=Gpus(tuple(str(i) for i in range(gpus))).shared(tasks_per_gpu).ids)


@pytest.mark.parametrize(
    ("cores", "gpus", "per_task", "per_gpu", "share"),
    [
        (2, 4, 1, 1, 0),  # fewer cores than GPUs: no core slot of its own, every GPU busy
        (2, 8, 1, 1, 0),
        (2, 8, 2, 1, 0),
        (2, 2, 1, 2, 0),  # --tasks-per-gpu 2: four task slots on two cores
        (3, 4, 2, 1, 1),  # two of four GPUs: half of three cores
        (6, 4, 2, 1, 3),  # two of four GPUs: half of six cores, not 6 // 4 * 2
        (6, 3, 1, 1, 2),
        (64, 8, 1, 1, 8),
    ],
)
def test_a_gpu_tasks_share_of_the_cores(cores: int, gpus: int, per_task: int, per_gpu: int, share: int) -> None:
    plan = plan_of("a\nb\n", CoresSpec("fixed", 1))
    give_gpus(plan, make_config(commandlines="cl", gpus_per_task=per_task), [node(cores, gpus, per_gpu)])
    assert [(t.cores, t.gpus) for t in plan.to_run] == [(share, per_task)] * 2
    assert plan.ledger.records[0].task == plan.to_run[0], "the queuestate shows what runs"


def test_the_smallest_gpu_nodes_share_counts_and_cpu_only_nodes_do_not() -> None:
    plan = plan_of("a\n", CoresSpec("fixed", 1))
    give_gpus(plan, make_config(commandlines="cl", gpus_per_task=1), [node(8, 2), node(2, 4), node(128, 0)])
    assert plan.to_run[0].cores == 0


def test_cores_given_or_per_line_are_what_gpu_tasks_get() -> None:
    given = plan_of("a\n", CoresSpec("fixed", 1))
    give_gpus(given, make_config(commandlines="cl", gpus_per_task=1, cores=1), [node(2, 4)])
    assert given.to_run[0].cores == 1 and given.meta.extra["gpu_share"] is False
    per_line = plan_of("2,a\n1,b\n", CoresSpec("file"))
    give_gpus(per_line, make_config(commandlines="cl", gpus_per_task=1, cores="file"), [node(2, 4)])
    assert [t.cores for t in per_line.to_run] == [2, 1]


def test_a_resume_keeps_the_cores_the_sweep_asked_for_and_recomputes_a_share() -> None:
    """On --resume the user gives no --cores: what the sweep was started with decides."""
    resume = make_config(resume="q", gpus_per_task=1)
    per_line = plan_of("2,a\n1,b\n", CoresSpec("file"), {"gpus_per_task": 1})
    give_gpus(per_line, resume, [node(2, 4)])
    assert [t.cores for t in per_line.to_run] == [2, 1]
    given = plan_of("a\n", CoresSpec("fixed", 1), {"gpus_per_task": 1, "gpu_share": False})
    give_gpus(given, resume, [node(2, 4)])
    assert given.to_run[0].cores == 1
    share = plan_of("a\n", CoresSpec("fixed", 1), {"gpus_per_task": 1, "gpu_share": True})
    give_gpus(share, resume, [node(8, 4)])
    assert share.to_run[0].cores == 2, "the share of the nodes the resume runs on"
    older = plan_of("a\n", CoresSpec("fixed", 1), {"gpus_per_task": 1})  # a queuestate of an earlier release
    give_gpus(older, resume, [node(2, 4)])
    assert older.to_run[0].cores == 0
