"""The benchmark suite still runs: ``python -m bench --short`` ends well and prints its
table. Its figures are not checked here: timing targets live in the benchmark, whose
full run is recorded in docs/benchmarks.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench._report import BEGIN, END

ROOT = Path(__file__).resolve().parent.parent
TITLES = (
    "1. command latency",
    "2. upstream economy",
    "3. alert latency",
    "4. footprint",
    "5. scale",
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_short_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--short", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "| benchmark | measure | result | target | |" in result.stdout
    for title in TITLES:
        assert f"| {title} |" in result.stdout
    written = output.read_text(encoding="utf-8")
    assert written.startswith("# Benchmarks")
    assert BEGIN in written
    assert END in written
    assert "| 5. scale |" in written
