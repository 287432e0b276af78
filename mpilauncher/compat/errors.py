"""What the PyLauncher-style API raises, so that a script may catch it and a batch job need not.

PyLauncher raises exceptions (``LauncherException``); the CLI prints one line
and exits 2 or 3.  The API does both at once: it prints the one line, then
raises an exception that is

- an :class:`~mpilauncher.errors.InputError` (bad input) or
  :class:`~mpilauncher.errors.LauncherFailure`, and a ``ValueError`` or
  ``RuntimeError``, and PyLauncher's :class:`LauncherException`: a script that
  wants to go on catches any of those;
- also a ``SystemExit`` carrying the CLI's exit status: left uncaught, it ends
  the script with status 2 (3) and no traceback, as the CLI does -- the batch
  log holds exactly the one line.
"""

from __future__ import annotations

import re

from mpilauncher import log
from mpilauncher.errors import RANK_VARIABLES as RANK_VARIABLES  # (re-exported: where the API reads a rank)
from mpilauncher.errors import InputError, LauncherError, LauncherFailure, first_rank


def say(problem: str) -> None:
    """The one error line on stderr, from rank 0 only."""
    if first_rank():
        log.error(problem)


class LauncherException(Exception):  # noqa: N818 (PyLauncher's name: scripts catch it by this name)
    """PyLauncher's exception class; everything the API raises is one.

    Scripts also raise it themselves (PyLauncher's examples do, from their own
    commandline generators): it is an ordinary exception then.
    """


class ScriptInputError(LauncherException, InputError, ValueError, SystemExit):
    """Bad input met through the API (exit status 2 when uncaught; see the module docstring)."""

    def __init__(self, problem: str, source: str | None = None, line: int | None = None) -> None:
        InputError.__init__(self, problem, source, line)
        self.code = self.exit_status


class ScriptLauncherFailure(LauncherException, LauncherFailure, RuntimeError, SystemExit):
    """The launcher itself failed under the API (exit status 3 when uncaught)."""

    def __init__(self, message: str) -> None:
        LauncherFailure.__init__(self, message)
        self.code = self.exit_status


_RESUME = re.compile(r"--resume ([^\s,;:()]+)")
_FLAG = re.compile(r"--([a-z][a-z-]*[a-z])\b")


def in_script_terms(text: str) -> str:
    """A message written for the command line, with our flags as a script names them.

    The launcher words its errors once, for the CLI (``choose another with
    --workdir``); a PyLauncher script sets ``workdir=``, and resumes with
    ``ResumeClassicLauncher('queuestate')``, not ``--resume queuestate``.  Flags
    with no keyword (``--status``, ``--emulate-nodes``) stay as they are.
    """
    from mpilauncher.cli import build_parser
    from mpilauncher.compat.keywords import SETTING_KEYWORD

    actions = {opt: action for action in build_parser()._actions for opt in action.option_strings}

    def word(match: re.Match) -> str:
        action = actions.get(match.group(0))
        keyword = SETTING_KEYWORD.get(action.dest) if action is not None else None
        if keyword is None:
            return match.group(0)
        if action.nargs == 0:  # a switch: --start-over is start_over=True, --no-bind is bind=False
            return f"{keyword}={action.const!r}"
        return f"{keyword}="

    return _FLAG.sub(word, _RESUME.sub(lambda m: f"ResumeClassicLauncher({m.group(1)!r})", text))


def report(err: LauncherError) -> LauncherException:
    """Print ``err`` as its one line and turn it into what the API raises (once: :func:`refuse` printed its own)."""
    if isinstance(err, LauncherException):
        return err
    if not err.reported:  # a launcher failure said at once while the run drained (cannot start tasks)
        say(in_script_terms(str(err)))
    if isinstance(err, InputError):
        raised = ScriptInputError(in_script_terms(err.problem), err.source, err.line)
    else:
        raised = ScriptLauncherFailure(in_script_terms(str(err)))
    return raised


def refuse(problem: str) -> ScriptInputError:
    """A one-line refusal of bad input found by the API itself (printed now, to be raised)."""
    error = ScriptInputError(problem)
    say(str(error))
    return error
