"""What a run reports back to the API and the CLI, on every rank (light: agent ranks import it too)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mpilauncher.errors import EXIT_OK
from mpilauncher.records import field, record

if TYPE_CHECKING:
    from mpilauncher.core.stats import Statistics


@record
class RunResult:
    """What a finished (or stopped) run reports back to the API and the CLI."""

    statistics: Statistics | None  # None on ranks other than 0
    workdir: Path | None
    queuestate: Path | None
    interrupted: str | None
    exit_status: int
    dispatch_latencies: list[float] = field(default_factory=list)
    #: How to run what is left (set by the caller that knows its own words: CLI flag or API call).
    resume_command: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_status == EXIT_OK

    @property
    def completed(self) -> int:
        """Tasks of the sweep that exited 0 (earlier runs included); 0 on ranks other than 0."""
        return self.statistics.completed if self.statistics else 0

    @property
    def left(self) -> int:
        """Tasks of the sweep not run to an end yet (queued, or interrupted): what a resume runs."""
        return self.statistics.not_run if self.statistics else 0
