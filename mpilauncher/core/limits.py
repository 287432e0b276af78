"""The sane bounds of every number and name the launcher reads, and the checks that hold them.

Why bounds: a value that passes a type check can still break the launcher far from
where it was read -- a timeout beyond what ``epoll`` takes, a core count that
allocates gigabytes, a slot range of a trillion ids, a NUL in a path -- and then
as a traceback, or after the run has written its state.  Options, commandlines,
the queuestate and its journal are all held to these bounds *before* anything is
written, so bad input is one line and exit status 2.

The bounds are generous: no HPC user should meet one except by mistake.  Long
durations (days, written to mean "no limit") are accepted: the runtime caps each
single wait to what the kernel takes (see ``execution/processes.py``).

The checks raise :class:`ValueError` whose text is the problem in words
(``must be ..., not ...``); the caller says whose value it was (an option, a
file and line).  Pure: no I/O.
"""

from __future__ import annotations

import math
import operator
import re

DAY = 86_400.0

#: Cores of one node (also what --cores-per-node may say): 2**16, far above any node built.
MAX_CORES_PER_NODE = 65_536
#: Nodes of one run (--emulate-nodes): the emulation benchmarks use 64.
MAX_NODES = 65_536
#: Cores of one task (an MPI task may span nodes): more than the largest machines have.
MAX_TASK_CORES = 10_000_000
#: GPUs of one node, GPUs of one task, tasks sharing one GPU.
MAX_GPUS_PER_NODE = 256
MAX_TASKS_PER_GPU = 256
#: --retries: more attempts than this is a loop, not a retry.
MAX_RETRIES = 1_000
#: A task's attempt number, counted over every run of its sweep (a queuestate's ``attempt=``).
MAX_ATTEMPT = 1_000_000_000
#: Jobs in a chain of Slurm jobs (--resubmit, `chain -n`): more is a loop, not a sweep that needs more time.
MAX_CHAIN = 100
#: --delay (trace and journal sync interval) and --grace (SIGTERM to SIGKILL).
MAX_DELAY = DAY
MAX_GRACE = DAY
#: --task-timeout, --max-runtime, --time-limit-margin, --agent-timeout: a year means "no limit".
MAX_DURATION = 365 * DAY
#: Task ids and line numbers: a commandlines file of a billion lines does not fit in memory.
MAX_TASK_ID = 999_999_999
MAX_LINE = 999_999_999
#: Exit codes as the launcher records them: 0..255, or -N for signal N.
MIN_EXIT, MAX_EXIT = -128, 255
#: Epoch seconds (10**10 is the year 2286) and run times in the state files.
MAX_TIME = 1e10
#: A host name, and one path component, in bytes; a whole path (Linux's PATH_MAX).
MAX_NAME = 255
MAX_PATH = 4096

_WHOLE = re.compile(r"\s*-?[0-9]{1,20}\s*")
_HEX = re.compile(r"[0-9a-f]*")


def whole_number(value: object, low: int, high: int) -> int:
    """``value`` (an int, an integral float or decimal digits) as an int in ``low..high``."""
    number: int | None = None
    if isinstance(value, str):
        if (value.isdigit() and value.isascii() and len(value) <= 20) or _WHOLE.fullmatch(value):
            number = int(value)
    elif isinstance(value, float):
        if value.is_integer():
            number = int(value)
    elif not isinstance(value, bool):
        try:
            number = operator.index(value)  # an int, or an int of another library (numpy)
        except TypeError:
            pass
    if number is None or not low <= number <= high:
        raise ValueError(f"must be a whole number from {low:,} to {high:,}, not {value!r}")
    return number


def seconds(value: object, high: float, *, zero: bool = False) -> float:
    """``value`` (a number, or its text) as finite seconds above 0 (from 0 with ``zero``) and at most ``high``."""
    number = math.nan
    if not isinstance(value, bool) and isinstance(value, (int, float, str)):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            pass
    if not (math.isfinite(number) and (number >= 0 if zero else number > 0) and number <= high):
        span = f"from 0 to {in_words(high)}" if zero else f"greater than 0 and at most {in_words(high)}"
        raise ValueError(f"must be a number of seconds {span}, not {value!r}")
    return number


def clock_seconds(value: object) -> float:
    """Seconds written as a number or as Slurm's ``[[D-]HH:]MM:SS`` (``90``, ``1:30``, ``2:00:00``,
    ``1-00:00:00``); the bounds are the caller's (:func:`duration`).

    A leading minus makes the whole value negative (``-0:30`` is -30 s), for the caller's bounds to
    refuse it: read as days, its empty day count dropped the sign, and ``--task-timeout -0:30`` ran
    with a 30-s timeout.
    """
    text = str(value).strip()
    try:
        if isinstance(value, bool):
            raise ValueError
        if text.startswith("-") and text[1:2].isdigit():
            return -clock_seconds(text[1:])
        days, _, clock = text.rpartition("-") if ":" in text and "-" in text else ("", "", text)
        parts = [float(p) for p in clock.split(":")]
        if len(parts) > 3 or any(p < 0 for p in parts):
            raise ValueError
        total = 0.0
        for part in parts:
            total = total * 60 + part
        return total + float(days or 0) * DAY
    except (ValueError, OverflowError):
        raise ValueError(f"must be seconds or [[D-]HH:]MM:SS, not {value!r}") from None


def duration(value: object, high: float = MAX_DURATION) -> float:
    """:func:`clock_seconds`, finite, greater than 0 and at most ``high``."""
    total = clock_seconds(value)
    if not (math.isfinite(total) and 0 < total <= high):
        raise ValueError(f"must be greater than 0 and at most {in_words(high)}, not {value!r}")
    return total


def in_words(limit: float) -> str:
    """A bound in seconds as people think of it: ``86,400 s (1 day)``."""
    days = limit / DAY
    if days >= 1 and days.is_integer():
        return f"{limit:,.0f} s ({days:.0f} day{'' if days == 1 else 's'})"
    return f"{limit:,.0f} s"


def text(value: object, what: str = "text") -> str:
    """A string without NUL (which no file name, command or C string can hold)."""
    if not isinstance(value, str):
        raise ValueError(f"must be {what}, not {value!r}")
    if "\0" in value:
        raise ValueError(f"must not contain a NUL character, not {value!r}")
    return value


def path(value: object) -> str:
    """A path the OS can take: no NUL, at most MAX_PATH bytes, no component over MAX_NAME."""
    value = text(value, "a path (text)")
    encoded = value.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_PATH or any(len(part) > MAX_NAME for part in encoded.split(b"/")):
        raise ValueError(
            f"must be a path of at most {MAX_PATH:,} bytes with names of at most {MAX_NAME}, not {value[:40]!r}..."
        )
    return value


def file_name(value: object) -> str:
    """A plain file name in the same directory: no ``/``, not ``.`` or ``..``."""
    value = path(value)
    if "/" in value or value in (".", ".."):
        raise ValueError(f"must be a plain file name (no '/', not '.' or '..'), not {value!r}")
    return value


def host_name(value: object) -> str:
    """A node name: printable, no whitespace, no bytes that are not UTF-8, at most MAX_NAME characters."""
    # (isprintable() is False for every whitespace character but the space, and for lone surrogates)
    if not (isinstance(value, str) and 0 < len(value) <= MAX_NAME and value.isprintable() and " " not in value):
        raise ValueError(f"must be a host name (printable, no spaces, 1 to {MAX_NAME} characters), not {value!r}")
    return value


def hex_digits(value: object, length: int | None = None, most: int = 64) -> str:
    """Lower-case hexadecimal text: exactly ``length`` digits (or 0), else at most ``most``."""
    ok = isinstance(value, str) and _HEX.fullmatch(value) is not None
    if ok and length is not None:
        ok = len(value) in (0, length)
    elif ok:
        ok = len(value) <= most
    if not ok:
        size = f"{length}" if length is not None else f"at most {most}"
        raise ValueError(f"must be {size} lower-case hexadecimal digits, not {value!r}")
    return value
