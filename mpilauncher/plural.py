"""A count and its noun, for every message of every layer ("1 task", "2 tasks"): a leaf module, so that the
persistence layer's ``--status`` lines and the report layer's summaries say them alike."""

from __future__ import annotations


def them(count: int) -> str:
    """The pronoun for ``count`` tasks said just before: "it" for one."""
    return "it" if count == 1 else "them"


def counted(count: int, noun: str) -> str:
    """``1 core``, ``2 cores``, ``0 GPUs``: a count and its noun, which takes an s unless the count is one
    (the start-up lines said "1 tasks", "1 cores on 1 node", "1 GPU(s) per task": a user walk)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
