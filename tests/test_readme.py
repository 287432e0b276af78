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
