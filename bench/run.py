"""Runs the benchmarks in turn, prints the table and writes ``docs/benchmarks.md``.

``python -m bench`` (full, writes ``docs/benchmarks.md``), ``python -m bench --short``
(CI: proves the suite runs; writes only with ``--output``), ``--only latency,alerts`` to
run some of them while working on one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench import alerts, economy, footprint, latency, scale
from bench._report import Section, machine, report, write_block

Benchmark = Callable[..., Awaitable[list[Section] | Section]]
BENCHMARKS: dict[str, Benchmark] = {
    "latency": latency.run,
    "economy": economy.run,
    "alerts": alerts.run,
    "footprint": footprint.run,
    "scale": scale.run,
}
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the quick form CI runs")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write the report (default: {DOC.name} for a full run, none for --short)",
    )
    parser.add_argument(
        "--only", help=f"comma-separated benchmarks to run, of: {', '.join(BENCHMARKS)}"
    )
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)}; there are {', '.join(BENCHMARKS)}")
    output = args.output if args.output is not None else (None if args.short else DOC)
    if args.only and output == DOC and args.output is None:
        output = None  # a partial run does not replace the full table
    # The fakes' request logs would drown the table.
    logging.basicConfig(level=logging.ERROR)
    about = machine()
    started = time.monotonic()
    sections = asyncio.run(_run(chosen, short=args.short))
    block = report(sections, about=about, short=args.short, seconds=time.monotonic() - started)
    print(block)
    if output is not None:
        write_block(output, block)
        print(f"\nwritten to {output}", file=sys.stderr)
    return 0


async def _run(chosen: Sequence[str], *, short: bool) -> list[Section]:
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="usage-bot-bench-") as tmp:
        for name in chosen:
            print(f"{name}...", end=" ", file=sys.stderr, flush=True)
            started = time.monotonic()
            workdir = Path(tmp) / name
            workdir.mkdir()
            result = await BENCHMARKS[name](workdir, short=short)
            print(f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
            sections.extend(result if isinstance(result, list) else [result])
    return sections
