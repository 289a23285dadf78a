"""/metrics: the Prometheus text format, parsed by prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from usage_bot._app import build_core
from usage_bot._clock import FakeClock
from usage_bot._config import load_settings
from usage_bot._metrics import Metrics


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_show_upstream_outcomes_percent_age_alerts_and_commands(
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

    settings = load_settings({"CLAUDE_CONFIG_DIR": str(claude_dir)}, dotenv_path=None)
    core = build_core(settings, clock=clock, transport=httpx.MockTransport(handler))
    metrics = Metrics(core.service)
    metrics.alert_counts = lambda: {"slack:C0123456789": (2, 1)}
    await core.service.get("default")
    clock.advance(300)  # a 429 without retry-after backs off for 5 min
    await core.service.get("default")
    clock.advance(15)
    metrics.command_answered("slack", "ok", 0.012)
    metrics.command_answered("slack", "ok", 0.3)

    got = samples(metrics.render())
    acct = ("account", "default")
    assert (
        got[("usage_bot_upstream_requests_total", frozenset({acct, ("outcome", "rate_limited")}))]
        == 1
    )
    assert got[("usage_bot_upstream_requests_total", frozenset({acct, ("outcome", "ok")}))] == 1
    assert got[("usage_bot_last_good_fetch_age_seconds", frozenset({acct}))] == 15
    assert got[("usage_bot_percent_used", frozenset({acct, ("limit", "five_hour")}))] == 42.5
    assert got[("usage_bot_percent_used", frozenset({acct, ("limit", "seven_day_fa_ble")}))] == 81
    dest = ("destination", "slack:C0123456789")
    assert got[("usage_bot_alerts_posted_total", frozenset({dest}))] == 2
    assert got[("usage_bot_alerts_failed_total", frozenset({dest}))] == 1
    slack = ("platform", "slack")
    assert got[("usage_bot_commands_total", frozenset({slack, ("outcome", "ok")}))] == 2
    assert got[("usage_bot_command_seconds_count", frozenset({slack}))] == 2
    assert got[("usage_bot_command_seconds_bucket", frozenset({slack, ("le", "0.025")}))] == 1
    assert got[("usage_bot_command_seconds_bucket", frozenset({slack, ("le", "+Inf")}))] == 2
    await core.aclose()
