"""Find a benchmark's own processes by a tag in their environment, and wait for them to be gone.

Why: the launcher's tasks run in their own sessions and its watchdog in another, so killing the
launcher's process group does not end them at once (the watchdog does, within its grace).  A
benchmark that removes its scratch folder meanwhile races with tasks still writing into it.  A tag
that the launcher and everything it starts inherit finds exactly this run's processes -- never a
command pattern over the whole machine's process table, which finds other people's work too.
"""

from __future__ import annotations

import os
import time
import uuid

#: The variable a benchmark puts in the launcher's environment; tasks and helpers inherit it.
TAG_VARIABLE = "MPILAUNCHER_BENCH"


def new_tag() -> str:
    return f"bench-{uuid.uuid4().hex[:12]}"


def tagged(tag: str) -> dict[int, list[bytes]]:
    """Live processes whose environment holds ``MPILAUNCHER_BENCH=<tag>``: pid -> environment entries."""
    entry = f"{TAG_VARIABLE}={tag}".encode()
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as stream:
                environment = stream.read().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if entry in environment:
            found[int(name)] = environment
    return found


def wait_until_gone(tag: str, timeout: float = 15.0) -> bool:
    """Wait for every process carrying ``tag`` to end (zombies carry no environment); False at the timeout."""
    deadline = time.monotonic() + timeout
    while tagged(tag):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
