#!/usr/bin/env python3
"""A stand-in Slurm for tests without a cluster: sbatch, squeue, scontrol and scancel in one program.

Linked under those names into a directory put first on PATH (or run as ``fake_slurm.py sbatch ARGS``), it
keeps its jobs in ``$FAKE_SLURM_DIR`` (one file per job: pid, state, comment) and runs each job's script at
once, in the background, on this machine, with ``SLURM_JOB_ID`` set.  ``$FAKE_SLURM_DIR/refuse`` holds how many
submissions to refuse with a QOS submit limit (counted down); every sbatch call is appended to
``$FAKE_SLURM_DIR/sbatch.log``.  Enough of each command's behaviour for mpilauncher's submit mode, no more.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

HOME = Path(os.environ["FAKE_SLURM_DIR"])
ENDED = ("COMPLETED", "FAILED", "CANCELLED")


def jobs() -> dict[str, dict[str, str]]:
    found = {}
    for path in (HOME / "jobs").glob("*"):
        found[path.name] = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return found


def state_of(job: dict[str, str]) -> str:
    if job.get("state") in ENDED:
        return job["state"]
    try:
        os.kill(int(job["pid"]), 0)
    except (OSError, ValueError):
        return "COMPLETED"
    return "RUNNING"


def sbatch(args: list[str]) -> int:
    with open(HOME / "sbatch.log", "a") as log:
        log.write(" ".join(args) + "\n")
    if "--test-only" in args:
        return 0
    refuse = HOME / "refuse"
    left = int(refuse.read_text()) if refuse.exists() else 0
    if left > 0:
        refuse.write_text(str(left - 1))
        print("sbatch: error: QOSMaxSubmitJobPerUserLimit", file=sys.stderr)
        print("sbatch: error: Batch job submission failed: Job violates accounting/QOS policy", file=sys.stderr)
        return 1
    options = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
    (HOME / "jobs").mkdir(exist_ok=True)
    job = str(100 + len(list((HOME / "jobs").glob("*"))))
    output = options.get("output", f"slurm-{job}.out").replace("%%", "%")
    env = dict(os.environ, SLURM_JOB_ID=job, SLURMD_NODENAME="fake1")
    with open(output, "w") as out:
        process = subprocess.Popen(["bash", args[-1]], stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True, stdin=subprocess.DEVNULL)  # fmt: skip
    (HOME / "jobs" / job).write_text(f"pid={process.pid}\ncomment={options.get('comment', '')}\n")
    print(job)
    return 0


def squeue(args: list[str]) -> int:
    known = jobs()
    if "-j" in args:
        wanted = args[args.index("-j") + 1].split(",")
        rows = [(job, known[job]) for job in wanted if job in known]
    else:
        rows = sorted(known.items())
    for job, fields in rows:
        print(f"{job}|{fields.get('comment', '')}" if args[-1] == "%i|%k" else f"{job}|{state_of(fields)}|None")
    return 0


def scontrol(args: list[str]) -> int:
    known = jobs().get(args[-1])
    if known is None:
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        return 1
    print(f"JobId={args[-1]} JobState={state_of(known)} Reason=None ExitCode=0:15 NodeList=fake1")
    return 0


def scancel(args: list[str]) -> int:
    for job in (a for a in args if a.isdigit()):
        path = HOME / "jobs" / job
        fields = jobs().get(job)
        if fields is None:
            continue
        try:
            os.killpg(int(fields["pid"]), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        path.write_text(path.read_text() + "state=CANCELLED\n")
    return 0


COMMANDS = {"sbatch": sbatch, "squeue": squeue, "scontrol": scontrol, "scancel": scancel}

if __name__ == "__main__":
    name, args = Path(sys.argv[0]).name, sys.argv[1:]
    if name not in COMMANDS:  # python fake_slurm.py sbatch ARGS...
        name, args = args[0], args[1:]
    sys.exit(COMMANDS[name](args))
