"""The queuestate snapshot: a readable file that says where the sweep stands.

It keeps PyLauncher's shape -- sections ``queued``, ``running``,
``completed`` (and our ``failed``), each followed by ``<id>: <command>``
lines -- so a user reads it at a glance and PyLauncher's own queuestate files
load here too.  Our lines may carry ``key=value`` facts between the id and the
colon (core count, exit code, times, host), which resume and the statistics
need::

    # mpilauncher queuestate ...
    #meta {"format": 1, "run": "...", "commandlines": "...", ...}
    queued
    7 line=8: ./prog 7
    completed
    0 line=1 exit=0 start=1764072000.125 runtime=0.512 host=c101 slots=0: ./prog 0

The snapshot is always replaced atomically; what happened after it was
written is in the journal beside it (see :mod:`.journal`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, STATES, Ledger, TaskRecord
from mpilauncher.core.ranges import compress, expand
from mpilauncher.core.tasks import CoresSpec, Task, split_core_prefix
from mpilauncher.errors import InputError
from mpilauncher.persistence.files import read_text

FORMAT = 1
META_PREFIX = "#meta "
#: Last line of our snapshots: a file we wrote that lacks it was cut short (copied
#: while incomplete, or by a full disk outside our atomic write).
END_MARK = "# end of queuestate:"


@dataclass(slots=True)
class StateMeta:
    """Sweep-wide facts stored in the snapshot's ``#meta`` line."""

    run: str = ""
    commandlines: str = ""
    sha256: str = ""
    cores: str = "1"
    workdir: str = ""
    journal: str = ""
    elapsed: float = 0.0
    written: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        data = {"format": FORMAT}
        data.update({k: getattr(self, k) for k in self.__slots__ if k != "extra"})
        data.update(self.extra)
        return json.dumps(data, sort_keys=False)


def _attributes(rec: TaskRecord, default_cores: CoresSpec) -> str:
    task = rec.task
    parts = [str(task.id)]
    if task.line:
        parts.append(f"line={task.line}")
    if task.whole_node and default_cores.kind != "node":
        parts.append("cores=node")
    elif not task.whole_node and not (default_cores.kind == "fixed" and task.cores == default_cores.count):
        parts.append(f"cores={task.cores}")
    if rec.state in (COMPLETED, FAILED):
        parts.append(f"exit={rec.exit_code}")
    if rec.state != QUEUED and rec.start is not None:
        parts.append(f"start={rec.start:.3f}")
    if rec.runtime is not None and rec.state in (COMPLETED, FAILED):
        parts.append(f"runtime={rec.runtime:.3f}")
    if rec.state != QUEUED and rec.node:
        parts.append(f"host={rec.node}")
        if rec.cores_used:
            parts.append(f"slots={compress(rec.cores_used, ',')}")
    return " ".join(parts)


def render(ledger: Ledger, meta: StateMeta, default_cores: CoresSpec) -> str:
    """The snapshot text for ``ledger``."""
    by_state: dict[str, list[TaskRecord]] = {s: [] for s in STATES}
    for rec in ledger:
        by_state[rec.state].append(rec)
    counts = ", ".join(f"{len(v)} {k}" for k, v in by_state.items())
    lines = [
        f"# mpilauncher queuestate (format {FORMAT}) written {meta.written}: {counts}.",
        "# Resume with: python -m mpilauncher --resume <this file>  (or ResumeClassicLauncher).",
        f"# Events after this snapshot are in {meta.journal or 'the journal'};"
        " 'python -m mpilauncher --status <this file>' shows both merged.",
        META_PREFIX + meta.to_json(),
    ]
    for state in STATES:
        lines.append(state)
        for rec in sorted(by_state[state], key=lambda r: r.id):
            lines.append(f"{_attributes(rec, default_cores)}: {rec.task.command}")
    lines.append(f"{END_MARK} {len(ledger)} tasks")
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class LoadedState:
    """A queuestate read back: the ledger, its meta, and whether PyLauncher wrote it."""

    ledger: Ledger
    meta: StateMeta
    from_pylauncher: bool
    default_cores: CoresSpec


def parse(text: str, source: str, cores_for_pylauncher: CoresSpec) -> LoadedState:
    """Read a snapshot (ours or PyLauncher's) into a ledger."""
    meta: StateMeta | None = None
    section: str | None = None
    records: list[TaskRecord] = []
    seen: set[int] = set()
    last_line = text.rstrip("\n").rsplit("\n", 1)[-1]
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if line.startswith(META_PREFIX):
            meta = _parse_meta(line[len(META_PREFIX) :], source, number)
            continue
        if not line or line.startswith("#"):
            continue
        if line in STATES:
            section = line
            continue
        if section is None:
            raise InputError(
                f"task line before any of the sections {', '.join(STATES)}: not a queuestate file",
                source,
                number,
            )
        default = CoresSpec.parse(meta.cores) if meta else cores_for_pylauncher
        rec = _parse_task_line(line, section, default, from_pylauncher=meta is None, source=source, number=number)
        if rec.id in seen:
            raise InputError(f"task {rec.id} listed twice", source, number)
        seen.add(rec.id)
        records.append(rec)
    if not records and meta is None:
        raise InputError("empty or not a queuestate file (no sections, no tasks)", source)
    if meta is not None and last_line != f"{END_MARK} {len(records)} tasks":
        raise InputError("truncated queuestate: its last line is missing (a copy cut short?)", source)
    default_cores = CoresSpec.parse(meta.cores) if meta else cores_for_pylauncher
    ledger = Ledger((r.task for r in records), elapsed_before=meta.elapsed if meta else 0.0)
    for rec in records:
        ledger.records[rec.id] = rec
    return LoadedState(ledger, meta or StateMeta(cores=str(cores_for_pylauncher)), meta is None, default_cores)


def load(path: Path, cores_for_pylauncher: CoresSpec) -> LoadedState:
    return parse(read_text(path, "queuestate file"), str(path), cores_for_pylauncher)


def _parse_meta(text: str, source: str, number: int) -> StateMeta:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"corrupt #meta line ({err.msg})", source, number) from None
    if not isinstance(data, dict):
        raise InputError("corrupt #meta line (not a JSON object)", source, number)
    if data.get("format") != FORMAT:
        raise InputError(f"unsupported queuestate format {data.get('format')!r} (this is {FORMAT})", source, number)
    meta = StateMeta()
    for key, value in data.items():
        if key == "format":
            continue
        if key in StateMeta.__slots__ and key != "extra":
            setattr(meta, key, value)
        else:
            meta.extra[key] = value
    try:
        meta.elapsed = float(meta.elapsed)
    except (TypeError, ValueError):
        raise InputError(f"corrupt #meta line: elapsed={meta.elapsed!r}", source, number) from None
    try:
        CoresSpec.parse(meta.cores)
    except InputError as err:
        raise InputError(f"corrupt #meta line: {err.problem}", source, number) from None
    return meta


def _parse_task_line(
    line: str, section: str, default: CoresSpec, *, from_pylauncher: bool, source: str, number: int
) -> TaskRecord:
    head, sep, command = line.partition(":")
    if not sep:
        raise InputError("expected '<id>: <command>'", source, number)
    command = command.strip()
    fields = head.split()
    try:
        task_id = int(fields[0]) if fields else -1
    except ValueError:
        task_id = -1
    if task_id < 0:
        raise InputError(f"bad task id {head.strip()!r}", source, number)
    attrs: dict[str, str] = {}
    for item in fields[1:]:
        key, eq, value = item.partition("=")
        if not eq:
            raise InputError(f"bad field {item!r} (expected key=value)", source, number)
        attrs[key] = value
    if from_pylauncher and default.kind == "file":
        cores, command = split_core_prefix(command, source, number)
        whole = False
    else:
        spec = attrs.get("cores")
        whole = (spec == "node") if spec else default.kind == "node"
        try:
            cores = int(spec) if spec and spec != "node" else default.count
        except ValueError:
            raise InputError(f"bad cores={spec!r}", source, number) from None
    if not command:
        raise InputError(f"task {task_id} has no command", source, number)
    try:
        rec = TaskRecord(Task(task_id, command, cores, whole, int(attrs.get("line", 0))), section)
        if "exit" in attrs:
            rec.exit_code = int(attrs["exit"])
        if "start" in attrs:
            rec.start = float(attrs["start"])
        if "runtime" in attrs:
            rec.runtime = float(attrs["runtime"])
        if "slots" in attrs:
            rec.cores_used = tuple(expand(attrs["slots"]))
    except ValueError as err:
        raise InputError(f"bad value in task {task_id}: {err}", source, number) from None
    rec.node = attrs.get("host")
    if section == FAILED and rec.exit_code is None:
        rec.exit_code = 1
    return rec
