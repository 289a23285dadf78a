"""``usage-bot doctor``: every piece of configuration checked, one line each, with the fix."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import TextIO

import httpx

from usage_bot._checks import CheckResult
from usage_bot._clock import Clock
from usage_bot._config import Settings
from usage_bot._core import Core, build_core
from usage_bot._credentials import REQUIRED_SCOPE, CredentialLoader
from usage_bot._exceptions import CredentialsError, UsageBotError
from usage_bot._model import parse_usage
from usage_bot._report import format_duration, format_percent
from usage_bot._texts import DISCORD_DOCS_URL, SLACK_DOCS_URL

_TAGS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
CHAT_FIX = (
    f"set SLACK_BOT_TOKEN or DISCORD_BOT_TOKEN; step by step: {SLACK_DOCS_URL} or "
    f"{DISCORD_DOCS_URL}"
)
SOON = timedelta(hours=1)


async def run_doctor(
    settings: Settings,
    out: TextIO,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    platform: str = sys.platform,
) -> int:
    """Print every check; exit with the code of the first that failed (0 when none did)."""
    core = build_core(settings, clock=clock, transport=transport, platform=platform)
    results: list[CheckResult] = []
    try:
        results.extend(_configuration(settings))
        for loader in core.loaders:
            results.extend(await _account(core, loader))
        results.append(_state(settings))
        results.extend(await _chat(settings))
    finally:
        await core.aclose()
    write_results(results, out)
    failed = [r for r in results if r.verdict == "fail"]
    warned = sum(r.verdict == "warn" for r in results)
    if failed:
        summary = f"{len(failed)} check{'s' if len(failed) != 1 else ''} failed."
    elif warned:
        summary = f"No check failed; {warned} warning{'s' if warned != 1 else ''} above."
    else:
        summary = "All good."
    print(f"\n{summary}", file=out)
    return failed[0].exit_code if failed else 0


def write_results(results: Iterable[CheckResult], out: TextIO) -> None:
    for result in results:
        print(f"{_TAGS[result.verdict]}  {result.name}: {result.detail}", file=out)
        if result.fix and result.verdict in ("fail", "warn"):
            print(f"      fix: {result.fix}", file=out)


def _configuration(settings: Settings) -> list[CheckResult]:
    count = len(settings.upstream.accounts)
    levels = ", ".join(format_percent(t) for t in settings.alerts.thresholds)
    front = [
        name
        for name, on in (
            ("Slack", settings.slack.enabled),
            ("Slack webhook", settings.slack.webhook_url is not None),
            ("Discord", settings.discord.enabled),
            ("Discord webhook", settings.discord.webhook_url is not None),
        )
        if on
    ]
    results = [
        CheckResult(
            "configuration",
            "ok",
            f"{count} account{'s' if count != 1 else ''} "
            f"({', '.join(a.name for a in settings.upstream.accounts)}); polls every "
            f"{settings.upstream.poll_seconds} s; alerts at {levels}; "
            + (f"chat: {', '.join(front)}" if front else "no chat platform (console only)"),
            None if front else CHAT_FIX,
        )
    ]
    results.extend(CheckResult("configuration", "fail", p, exit_code=2) for p in settings.problems)
    results.extend(CheckResult("configuration", "warn", w) for w in settings.warnings)
    return results


async def _account(core: Core, loader: CredentialLoader) -> list[CheckResult]:
    name = loader.account.name
    now = core.clock.now()
    try:
        credentials = loader.read()
    except CredentialsError as exc:
        return [CheckResult(f"{name}: login", "fail", exc.message, exit_code=exc.exit_code)]
    results = [
        CheckResult(
            f"{name}: login",
            "ok",
            f"found in {credentials.source} (token {credentials.token.masked()}"
            + (f", plan {credentials.subscription_type}" if credentials.subscription_type else "")
            + ")",
        )
    ]
    usable = True
    if credentials.expires_at is None:
        results.append(CheckResult(f"{name}: expiry", "skip", "not known for this token"))
    elif credentials.expires_at <= now:
        usable = False
        ago = format_duration(now - credentials.expires_at)
        results.append(
            CheckResult(
                f"{name}: expiry",
                "fail",
                f"expired {ago} ago",
                "run `claude` on the workstation (Claude Code renews the login while in use).",
                exit_code=3,
            )
        )
    else:
        left = credentials.expires_at - now
        results.append(
            CheckResult(
                f"{name}: expiry",
                "warn" if left < SOON else "ok",
                f"expires in {format_duration(left)}",
                "use Claude Code on the workstation soon, or the login lapses.",
            )
        )
    if credentials.scopes is None:
        results.append(
            CheckResult(
                f"{name}: scopes",
                "skip",
                "not known for a token from the environment; tokens from `claude "
                "setup-token` cannot read usage",
            )
        )
    elif REQUIRED_SCOPE not in credentials.scopes:
        usable = False
        results.append(
            CheckResult(
                f"{name}: scopes",
                "fail",
                f"{', '.join(credentials.scopes) or 'none'} (no {REQUIRED_SCOPE})",
                "use the login from `claude`, not a `claude setup-token` token.",
                exit_code=3,
            )
        )
    else:
        results.append(CheckResult(f"{name}: scopes", "ok", ", ".join(credentials.scopes)))
    if not usable:
        results.append(CheckResult(f"{name}: usage endpoint", "skip", "no usable login"))
        return results
    try:
        payload = await core.client.fetch(credentials.token.reveal(), now=now)
        snapshot = parse_usage(payload, fetched_at=now, thresholds=core.settings.alerts.thresholds)
    except UsageBotError as exc:
        results.append(
            CheckResult(f"{name}: usage endpoint", "fail", exc.message, exit_code=exc.exit_code)
        )
        return results
    seen = ", ".join(f"{lim.label} {format_percent(lim.percent)}" for lim in snapshot.limits)
    results.append(
        CheckResult(f"{name}: usage endpoint", "ok", f"answered and understood: {seen or '-'}")
    )
    return results


def _state(settings: Settings) -> CheckResult:
    path = Path(settings.state).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    target = path if path.exists() else folder
    if os.access(target, os.W_OK):
        return CheckResult("state", "ok", f"{path} is writable")
    return CheckResult(
        "state",
        "fail",
        f"{target} is not writable",
        "point USAGE_BOT_STATE at a writable file (in a container: the /data volume).",
    )


async def _chat(settings: Settings) -> list[CheckResult]:
    """Slack's and Discord's own checks, importing each SDK only when it is configured."""
    results: list[CheckResult] = []
    if settings.slack.enabled or settings.slack.webhook_url is not None:
        from usage_bot.frontends.slack.doctor import doctor_checks as slack_checks

        results.extend(await slack_checks(settings.slack, settings.http))
    if settings.discord.enabled or settings.discord.webhook_url is not None:
        from usage_bot.frontends.discord.doctor import doctor_checks as discord_checks

        results.extend(await discord_checks(settings.discord))
    return results
