"""Reading the allocation from Slurm's variables (mpilauncher.cluster)."""

from __future__ import annotations

import os

import pytest

from mpilauncher import cluster
from mpilauncher.cluster import Allocation, detect, expand_counts, expand_hostlist


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("c1-[001-003,7],gpu5", ["c1-001", "c1-002", "c1-003", "c1-7", "gpu5"]),
        ("node1", ["node1"]),
        ("a,b,c", ["a", "b", "c"]),
        (" a , b ", ["a", "b"]),
        ("c[1-3]", ["c1", "c2", "c3"]),
        ("c[09-11]", ["c09", "c10", "c11"]),
        ("c[098-101]", ["c098", "c099", "c100", "c101"]),
        ("c[5]", ["c5"]),
        ("r[1-2]n[01-02]", ["r1n01", "r1n02", "r2n01", "r2n02"]),
        ("r[1,3]-n[7-8]-ib", ["r1-n7-ib", "r1-n8-ib", "r3-n7-ib", "r3-n8-ib"]),
        ("a[1-2],b[3,5],c", ["a1", "a2", "b3", "b5", "c"]),
        ("", []),
    ],
)
def test_expand_hostlist(spec, names):
    assert expand_hostlist(spec) == names


def test_expand_hostlist_rejects_bad_ranges():
    with pytest.raises(ValueError):
        expand_hostlist("c[1-x]")


@pytest.mark.parametrize(
    ("spec", "counts"),
    [
        ("48(x2),24", [48, 48, 24]),
        ("16", [16]),
        ("8,8,4", [8, 8, 4]),
        ("128(x3)", [128, 128, 128]),
        ("2(x1), 4(x2)", [2, 4, 4]),
    ],
)
def test_expand_counts(spec, counts):
    assert expand_counts(spec) == counts


@pytest.mark.parametrize("spec", ["", "x", "48(2)", "48(x)", "48,", "-4"])
def test_expand_counts_rejects_garbage(spec):
    with pytest.raises(ValueError, match="Slurm count list"):
        expand_counts(spec)


@pytest.fixture
def fake_host(monkeypatch):
    monkeypatch.setattr(
        cluster.os, "uname", lambda: os.uname_result(("Linux", "login3.cluster.example.org", "", "", ""))
    )
    monkeypatch.setattr(cluster, "local_cpu_count", lambda: 6)


def test_detect_outside_slurm(fake_host):
    alloc = detect({})
    assert alloc == Allocation(None, ("login3",), (6,), "login3")
    assert not alloc.in_slurm
    assert alloc.cores_of("login3") == 6
    assert alloc.cores_of("other") is None
    assert detect({"PATH": "/bin"}, cores_override=2).cores_per_node == (2,)


def test_detect_in_slurm(fake_host):
    env = {
        "SLURM_JOB_ID": "12345",
        "SLURM_JOB_NODELIST": "c1-[001-002],c2-010",
        "SLURM_JOB_CPUS_PER_NODE": "48(x2),24",
        "SLURMD_NODENAME": "c1-001",
        "SLURM_CPUS_ON_NODE": "1",  # the step's share: must not be used for sizing
    }
    alloc = detect(env)
    assert alloc.in_slurm
    assert alloc.job_id == "12345"
    assert alloc.nodes == ("c1-001", "c1-002", "c2-010")
    assert alloc.cores_per_node == (48, 48, 24)
    assert alloc.this_node == "c1-001"
    assert alloc.cores_of("c2-010") == 24
    assert detect(env, cores_override=4).cores_per_node == (4, 4, 4)


def test_detect_in_slurm_with_old_variable_names(fake_host):
    env = {"SLURM_JOBID": "7", "SLURM_NODELIST": "n[1-2]", "SLURM_JOB_CPUS_PER_NODE": "8(x2)"}
    alloc = detect(env)
    assert (alloc.job_id, alloc.nodes, alloc.cores_per_node) == ("7", ("n1", "n2"), (8, 8))
    assert alloc.this_node == "login3"  # no SLURMD_NODENAME: the host name, without domain


@pytest.mark.parametrize(
    "extra",
    [
        {"SLURM_JOB_NODELIST": "n[1-2]", "SLURM_JOB_CPUS_PER_NODE": "8"},  # counts do not match nodes
        {"SLURM_JOB_NODELIST": "n[1-x]", "SLURM_JOB_CPUS_PER_NODE": "8(x2)"},  # unreadable node list
        {"SLURM_JOB_NODELIST": "n[1-2]", "SLURM_JOB_CPUS_PER_NODE": "lots"},  # unreadable counts
        {},  # no node list at all
    ],
)
def test_detect_in_slurm_falls_back_to_this_node(fake_host, extra):
    env = {"SLURM_JOB_ID": "99", "SLURMD_NODENAME": "n1", **extra}
    alloc = detect(env)
    assert alloc == Allocation("99", ("n1",), (6,), "n1")
    assert detect(env, cores_override=3).cores_per_node == (3,)


def test_local_cpu_count_is_positive():
    assert cluster.local_cpu_count() >= 1
