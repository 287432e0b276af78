"""The fields of the queuestate and its journal, read strictly and within bounds.

Both files are meant to be read by people, and so are sometimes edited by them.
Every field is checked here, the same way for both files, against the bounds of
:mod:`mpilauncher.core.limits`: a value that would crash the run later (a NaN
start, a trillion slots, an exit code of a billion, a host with a control
character) is refused while the file is read, before anything is written.

Each reader takes the field's text and returns its value, or raises ValueError
whose text names the field and the problem; the caller adds the file and line.
"""

from __future__ import annotations

from mpilauncher.core.limits import (
    MAX_ATTEMPT,
    MAX_CORES_PER_NODE,
    MAX_DURATION,
    MAX_EXIT,
    MAX_LINE,
    MAX_TASK_CORES,
    MAX_TASK_ID,
    MAX_TIME,
    MIN_EXIT,
    host_name,
    seconds,
    whole_number,
)
from mpilauncher.core.ranges import expand


def task_id(text: str) -> int:
    try:
        return whole_number(text, 0, MAX_TASK_ID)
    except ValueError as err:
        raise ValueError(f"task id {err}") from None


def attempt(text: str) -> int:
    try:
        return whole_number(text, 1, MAX_ATTEMPT)
    except ValueError as err:
        raise ValueError(f"attempt {err}") from None


def line_number(text: str) -> int:
    try:
        return whole_number(text, 0, MAX_LINE)
    except ValueError as err:
        raise ValueError(f"line {err}") from None


def core_count(text: str, gpu_sweep: bool = False) -> int:
    """A task's core count; 0 only in a GPU sweep: a GPU task with no core slot of its own."""
    try:
        return whole_number(text, 0 if gpu_sweep else 1, MAX_TASK_CORES)
    except ValueError as err:
        only = " (0 only for the tasks of a GPU sweep)" if text.strip() == "0" else ""
        raise ValueError(f"cores {err}{only}") from None


def exit_code(text: str) -> int:
    try:
        return whole_number(text, MIN_EXIT, MAX_EXIT)
    except ValueError as err:
        raise ValueError(f"exit {err}") from None


def start_time(text: str) -> float:
    try:
        return seconds(text, MAX_TIME, zero=True)
    except ValueError as err:
        raise ValueError(f"start {err}") from None


def runtime(text: str) -> float:
    try:
        return seconds(text, MAX_TIME, zero=True)
    except ValueError as err:
        raise ValueError(f"runtime {err}") from None


def expected_time(text: str) -> float:
    """A task's expected run time in seconds (``--expected-time``)."""
    try:
        return seconds(text, MAX_DURATION)
    except ValueError as err:
        raise ValueError(f"expected {err}") from None


def host(text: str) -> str:
    try:
        return host_name(text)
    except ValueError as err:
        raise ValueError(f"host {err}") from None


def slots(text: str) -> tuple[int, ...]:
    """Core ids on one node, as :func:`~mpilauncher.core.ranges.compress` wrote them."""
    try:
        return tuple(expand(text, largest=MAX_CORES_PER_NODE - 1))
    except ValueError as err:
        raise ValueError(f"slots {err}") from None


class Known:
    """The host names and slot lists a reader has checked, by their text.

    A sweep has few of either, and a file repeats them on every line of a task that ran (half a
    million completed lines of a sweep half-way through, the S records of its journal): each text is
    checked once (:func:`host`, :func:`slots`, raising as they do) and its value then shared by
    every record that names it, one string a host and one tuple a slot list."""

    __slots__ = ("_hosts", "_slot_lists")

    def __init__(self) -> None:
        self._hosts: dict[str, str] = {}
        self._slot_lists: dict[str, tuple[int, ...]] = {}

    def host(self, text: str) -> str:
        value = self._hosts.get(text)
        if value is None:
            value = self._hosts[text] = host(text)
        return value

    def slots(self, text: str) -> tuple[int, ...]:
        value = self._slot_lists.get(text)
        if value is None:
            value = self._slot_lists[text] = slots(text)
        return value


def command(text: str) -> str:
    if not text:
        raise ValueError("has no command")
    if "\0" in text:
        raise ValueError("command contains a NUL character (no command can)")
    return text
