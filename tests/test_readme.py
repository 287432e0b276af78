"""The README's two commands are the ones that work: CI runs the second verbatim."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)[:2]


def test_readme_starts_with_install_and_test_commands() -> None:
    install_and_run, tests = readme_commands()
    assert "pip install" in install_and_run and "python -m mpilauncher examples/commandlines" in install_and_run
    assert (ROOT / "examples" / "commandlines").is_file()
    assert "pip install" in tests and "python -m pytest" in tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"\n{tests}\n" in ci


def test_every_test_the_guarantee_table_cites_exists() -> None:
    """The README's table of faults names the tests that keep each row: none may vanish or be renamed."""
    text = (ROOT / "README.md").read_text()
    table = text.split("### What is guaranteed, under which faults", 1)[1].split("\n### ", 1)[0]
    cited = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", table)
    assert len(cited) >= 16
    for path, name in cited:
        source = (ROOT / path).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"{path}::{name} is cited in README.md but does not exist"


def test_every_mpilauncher_variable_the_code_names_is_documented() -> None:
    """Each ``MPILAUNCHER_*`` variable the launcher reads or sets has a row in the README's table
    of environment variables: none is a hidden switch (``MPILAUNCHER_EXECUTOR`` once was)."""
    text = (ROOT / "README.md").read_text()
    assert "\n## Environment variables\n" in text
    section = text.split("\n## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| ([^|]*)\|", section, re.M)
    documented = {name for cell in first_cells for name in re.findall(r"`(MPILAUNCHER_\w+)`", cell)}
    named = set()
    for path in (ROOT / "mpilauncher").rglob("*.py"):
        named |= set(re.findall(r"\bMPILAUNCHER_[A-Z][A-Z_]*[A-Z]\b", path.read_text()))
    assert {"MPILAUNCHER_EXECUTOR", "MPILAUNCHER_STARTER", "MPILAUNCHER_TASK_ID"} <= named
    assert named <= documented, f"not in the README's table: {sorted(named - documented)}"
