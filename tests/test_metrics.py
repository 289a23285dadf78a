"""/metrics: Prometheus' conventions, read back with prometheus_client's own parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from usage_bot import __version__
from usage_bot._clock import FakeClock
from usage_bot._config import load_settings
from usage_bot._core import build_core
from usage_bot._events import (
    AlertDropped,
    AlertFailed,
    AlertPosted,
    CommandAnswered,
    Observers,
)
from usage_bot._metrics import Metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def kinds(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


async def test_metrics_follow_prometheus_conventions_and_count_what_happened(
    claude_dir: Path, clock: FakeClock
) -> None:
    answers = [
        httpx.Response(429),
        httpx.Response(
            200,
            json={
                "five_hour": {"utilization": 42.5, "resets_at": "2026-07-19T05:00:00Z"},
                "limits": [
                    {
                        "kind": "weekly_scoped",
                        "percent": 81,
                        "scope": {"model": {"display_name": 'Fa"ble'}},
                    }
                ],
            },
        ),
    ]

    async def handler(_: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    metrics = Metrics()
    settings = load_settings({"CLAUDE_CONFIG_DIR": str(claude_dir)}, dotenv_path=None)
    core = build_core(
        settings,
        clock=clock,
        transport=httpx.MockTransport(handler),
        observer=Observers([metrics]),
    )
    metrics.destination("slack:C0123456789")
    metrics.destination("console")
    await core.service.get("default")
    clock.advance(300)  # a 429 without retry-after backs off for 5 min
    read_at = clock.now()
    await core.service.get("default")
    for event in (
        AlertPosted("slack:C0123456789", "k1"),
        AlertPosted("slack:C0123456789", "k2"),
        AlertFailed("slack:C0123456789", "k3", retryable=True),
        AlertDropped("slack:C0123456789", "k3"),
        CommandAnswered("slack", "ok", 0.012),
        CommandAnswered("slack", "ok", 0.3),
        CommandAnswered("discord", "refused", 0.002),
    ):
        metrics.observe(event)

    exposition = metrics.render(core.service.peek_all())
    text = exposition.body.decode()
    got = samples(text)
    await core.aclose()

    assert exposition.content_type.startswith("text/plain; version=")
    acct = ("account", "default")
    reads = "usage_bot_usage_reads_total"
    assert got[(reads, frozenset({acct, ("outcome", "rate_limited")}))] == 1
    assert got[(reads, frozenset({acct, ("outcome", "ok")}))] == 1
    # Use as a 0-1 ratio, and when it was last read as a timestamp, not an age.
    used = "usage_bot_limit_used_ratio"
    assert got[(used, frozenset({acct, ("limit", "five_hour")}))] == 0.425
    assert got[(used, frozenset({acct, ("limit", "seven_day_fa_ble")}))] == 0.81
    last = got[("usage_bot_last_success_timestamp_seconds", frozenset({acct}))]
    assert last == read_at.timestamp()
    dest = ("destination", "slack:C0123456789")
    assert got[("usage_bot_alerts_posted_total", frozenset({dest}))] == 2
    assert got[("usage_bot_alert_post_failures_total", frozenset({dest}))] == 1
    assert got[("usage_bot_alerts_dropped_total", frozenset({dest}))] == 1
    # A destination with nothing yet shows 0, not nothing.
    assert got[("usage_bot_alerts_posted_total", frozenset({("destination", "console")}))] == 0
    slack = ("platform", "slack")
    assert got[("usage_bot_commands_total", frozenset({slack, ("outcome", "ok")}))] == 2
    refused = frozenset({("platform", "discord"), ("outcome", "refused")})
    assert got[("usage_bot_commands_total", refused)] == 1
    duration = "usage_bot_command_duration_seconds"
    assert got[(duration + "_count", frozenset({slack}))] == 2
    assert got[(duration + "_bucket", frozenset({slack, ("le", "0.025")}))] == 1
    assert got[(duration + "_bucket", frozenset({slack, ("le", "+Inf")}))] == 2
    assert got[(duration + "_sum", frozenset({slack}))] == 0.312
    assert got[("usage_bot_build_info", frozenset({("version", __version__)}))] == 1
    assert ("process_resident_memory_bytes", frozenset()) in got
    assert kinds(text)["usage_bot_command_duration_seconds"] == "histogram"
    assert kinds(text)["usage_bot_usage_reads"] == "counter"
    assert kinds(text)["usage_bot_limit_used_ratio"] == "gauge"


def test_an_account_never_read_has_no_gauges_rather_than_nan(claude_dir: Path) -> None:
    settings = load_settings({"CLAUDE_CONFIG_DIR": str(claude_dir)}, dotenv_path=None)
    core = build_core(settings)
    text = Metrics().render(core.service.peek_all()).body.decode()
    assert "NaN" not in text
    assert "usage_bot_last_success_timestamp_seconds{" not in text


def test_prometheus_client_is_not_loaded_until_the_first_scrape() -> None:
    code = (
        "import sys\n"
        "from usage_bot._app import Bot\n"
        "from usage_bot._config import load_settings\n"
        "Bot(load_settings({'USAGE_BOT_HTTP_PORT': '0'}, dotenv_path=None))\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert shown.stdout.strip() == "False"
