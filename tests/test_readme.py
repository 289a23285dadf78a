"""The README opens with the two commands, and CI runs exactly the second."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def sh_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_the_readme_opens_with_the_run_and_the_test_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first, second = sh_blocks(readme)[:2]
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install")
    assert first.endswith(".venv/bin/usage-bot")
    assert second.startswith("python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]'")
    assert second.endswith(".venv/bin/pytest")
    # Nothing but the introduction comes before them.
    assert readme.index(first) < readme.index("## ")


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    second = sh_blocks(readme)[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in ci.splitlines() if line.startswith("python3 -m venv")]
    assert commands == [second]


def test_every_doc_the_readme_points_to_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(((?:docs|deploy)/[^)#]+)", readme):
        assert (ROOT / target).exists(), target
