"""The ``usage-bot`` command: ``run``, ``check``, ``doctor``, ``demo``.

Errors are one sentence with the fix and an exit code (0 fine, 2 configuration,
3 credentials, 4 upstream, 1 anything else), never a traceback, never a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TextIO

import httpx

from usage_bot import __version__
from usage_bot._config import Settings, Strictness, load_settings
from usage_bot._core import build_core
from usage_bot._exceptions import ConfigError, RateLimited, UsageBotError
from usage_bot._logging import Redactor, configure_logging
from usage_bot._model import AccountUsage
from usage_bot._report import build_report, to_json
from usage_bot._terminal import render_report
from usage_bot._timing import DEMO_MAX_HOURS as MAX_HOURS
from usage_bot._timing import DEMO_MAX_SPEED as MAX_SPEED

log = logging.getLogger("usage_bot")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "start"
    if command == "demo":
        from usage_bot._demo import run_demo

        return _guard(lambda: run_demo(speed=args.speed, hours=args.hours), Redactor())
    # A chat setting never stops `check` (nor the login and upstream lines of `doctor`,
    # which shows every problem itself); `run` needs them all right.
    reach: dict[str, Strictness] = {"check": "core", "doctor": "none", "health": "core"}
    strict = reach.get(command, "all")
    try:
        settings = load_settings(strict=strict)
    except ConfigError as exc:
        print(f"usage-bot: {exc.message}", file=sys.stderr)
        return exc.exit_code
    redact = configure_logging(
        level=settings.log.level, fmt=settings.log.format, secrets=settings.secrets()
    )
    if command != "doctor":  # doctor lists them among its own lines
        for warning in (*settings.warnings, *settings.problems):
            log.warning(warning)
    if command == "check":
        return _guard(lambda: _check(settings, as_json=args.json), redact)
    if command == "health":
        return _health(settings)
    if command == "doctor":
        from usage_bot._doctor import run_doctor

        return _guard(lambda: run_doctor(settings, sys.stdout), redact)
    from usage_bot._runner import run_bot, start

    if command == "run":
        return _guard(lambda: run_bot(settings), redact)
    return _guard(lambda: start(settings), redact)


EXIT_CODES = (
    "exit codes: 0 fine; 2 a setting is wrong; 3 the Claude login is missing, expired, "
    "rejected or lacks its scope; 4 the usage endpoint failed (rate limit, HTTP error, "
    "network, unexpected answer); 1 anything else."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usage-bot",
        description="Your team's Claude subscription quota in Slack and Discord. With no "
        "command: run the bot if anything is configured, else explain and show the demo.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"usage-bot {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=description, epilog=EXIT_CODES)

    command(
        "run",
        "run the bot with every configured front end",
        "Run the bot: /claude-usage in Slack and Discord (whichever is configured; the "
        "console when neither is), the alert scheduler, and /healthz and /metrics. Stops "
        "cleanly on SIGTERM or Ctrl-C.",
    )
    check = command(
        "check",
        "fetch the usage once, print it, exit",
        "Read each account's usage once and print the report (or one JSON document). "
        "Chat settings are not needed and never stop it.",
    )
    check.add_argument("--json", action="store_true", help="print one JSON document")
    command(
        "doctor",
        "check every piece of configuration",
        "Check every setting, each login, the usage endpoint, the state file and each chat "
        "platform, one line each with the fix. It posts nothing anywhere. It exits with the "
        "code of the first check that failed.",
    )
    command(
        "health",
        "ask the running bot whether it is healthy (exit 0/1)",
        "Ask the running bot's /healthz (for container health checks without curl): exit 0 "
        "when it is healthy, 1 when it is not or does not answer.",
    )
    demo = command(
        "demo",
        "the whole bot offline, in accelerated time",
        "The whole bot offline, against a simulated account, in accelerated time: the "
        "report, threshold alerts and a reset. Nothing needs configuring.",
    )
    demo.add_argument(
        "--speed",
        type=_between(0, MAX_SPEED),
        default=600.0,
        help="simulated seconds per real second (600)",
    )
    demo.add_argument(
        "--hours", type=_between(0, MAX_HOURS), default=3.0, help="simulated hours to run (3)"
    )
    return parser


def _between(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
        if not low < value <= high:
            raise argparse.ArgumentTypeError(f"{raw} is not over {low:g} and at most {high:g}")
        return value

    return parse


def _guard(run: object, redact: Redactor) -> int:
    """Run a command's coroutine; turn every failure into one sentence and an exit code."""
    assert callable(run)
    try:
        result = asyncio.run(run())
        sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`usage-bot demo | head`): nothing to report to anyone, and
        # nothing more to write, not even the interpreter's last flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except UsageBotError as exc:
        print(f"usage-bot: {redact(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        log.debug("unexpected failure", exc_info=True)
        print(
            f"usage-bot: unexpected {type(exc).__name__}: {redact(str(exc))} (run with "
            "USAGE_BOT_LOG_LEVEL=DEBUG for details, and please report it).",
            file=sys.stderr,
        )
        return 1
    return int(result)


def _once(usages: Sequence[AccountUsage], account: str) -> str:
    """An account's error as a command that asks once says it: no "the bot retries"."""
    error = next(u.error for u in usages if u.account == account)
    assert error is not None
    if isinstance(error, RateLimited):
        return RateLimited(error.retry_after).message  # the service's own wait is not ours
    return error.once


def _health(settings: Settings) -> int:
    """For container health checks without curl: GET /healthz of the running bot."""
    if settings.http.port == 0:
        print("usage-bot: the HTTP server is off (USAGE_BOT_HTTP_PORT=0).", file=sys.stderr)
        return 1
    host = settings.http.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - the wildcard is where we listen, not where we ask
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{settings.http.port}/healthz"
    try:
        response = httpx.get(url, timeout=4.0, trust_env=False)
    except httpx.HTTPError as exc:
        print(f"usage-bot: no answer from {url} ({type(exc).__name__}).", file=sys.stderr)
        return 1
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "parts" not in answer:
        print(
            f"usage-bot: {url} answered HTTP {response.status_code}, but not as usage-bot's "
            "/healthz does: another program may hold the port; check USAGE_BOT_HTTP_PORT.",
            file=sys.stderr,
        )
        return 1
    print(response.text)
    return 0 if response.status_code == 200 else 1


async def _check(settings: Settings, *, as_json: bool, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    # A one-shot check prints each error once, as its own sentence, not also as a log line.
    logging.getLogger("usage_bot._service").setLevel(logging.ERROR)
    core = build_core(settings)
    try:
        usages = await core.service.get_all()
    finally:
        await core.aclose()
    now = core.clock.now()
    if as_json:
        print(json.dumps(to_json(usages, now), indent=2), file=out)
    else:
        width = shutil.get_terminal_size((80, 24)).columns
        unicode = (getattr(out, "encoding", None) or "").lower().replace("-", "") == "utf8"
        shown = [
            build_report(usage, now)
            for usage in usages
            # With several accounts each gets its section, a failed one with its sentence.
            if usage.snapshot is not None or len(usages) > 1
        ]
        for report in shown:
            if report.error is not None and report.fetched_at is None:
                report = replace(report, error=_once(usages, report.account))
            print(render_report(report, now=now, width=width, unicode=unicode), file=out)
    for usage in usages:
        if usage.error is not None:
            prefix = f"{usage.account}: " if len(usages) > 1 else ""
            print(f"usage-bot: {prefix}{_once(usages, usage.account)}", file=sys.stderr)
    failed = [u.error for u in usages if u.error is not None]
    return failed[0].exit_code if failed else 0
