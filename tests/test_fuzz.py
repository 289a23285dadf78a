"""Fuzzing (issue 7): the parsers take anything and answer with a result or their error.

- the response parser, :func:`parse_usage`, on any JSON value and on the real shapes with
  any part replaced, dropped or added: a :class:`UsageSnapshot` or
  :class:`UnexpectedResponse`; and what it returns goes through the alert engine, the
  report and every renderer without another exception;
- the client, :meth:`UsageClient.fetch`, on any status, headers and body: a JSON object
  or a :class:`UsageBotError`;
- the configuration parser, :func:`load_settings`, on any values of the real variable
  names (``NAME_FILE`` ones pointing at real files of every kind): a :class:`Settings` or
  :class:`ConfigError`, whose message never echoes a secret;
- the credentials parser, :func:`parse_credentials`: :class:`Credentials` or a
  :class:`CredentialsError`.

Hypothesis is kept modest (``max_examples`` in the low hundreds, no deadline) so that the
file runs in seconds; its database keeps what it found for the next run.
"""

from __future__ import annotations

# First: the fake imports discord.py with its audioop DeprecationWarning silenced.
import tests.fakes.discord  # noqa: F401  # isort: skip

import asyncio
import contextlib
import json
import math
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from usage_bot._alerts import AccountLedger, assess
from usage_bot._client import MAX_RETRY_AFTER, UsageClient, parse_retry_after
from usage_bot._config import ConfigError, Settings, load_settings
from usage_bot._credentials import Credentials, parse_credentials
from usage_bot._exceptions import (
    CredentialsError,
    CredentialsExpired,
    ScopeMissing,
    UnexpectedResponse,
    UsageBotError,
)
from usage_bot._model import AccountUsage, UsageSnapshot, parse_usage
from usage_bot._report import build_report, to_json
from usage_bot._simulator import simulated_usage
from usage_bot._terminal import render_reports as terminal_reports
from usage_bot.frontends.discord.render import render_reports as discord_reports
from usage_bot.frontends.slack.render import render_reports as slack_reports

NOW = datetime(2026, 7, 19, 1, 2, 3, tzinfo=UTC)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- values --------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=12,
)
# Realistic enough to reach the alert engine: times it can reason about.
plausible_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
any_times = st.datetimes(timezones=st.sampled_from([UTC, None]))
timestamps = (
    plausible_times.map(datetime.isoformat)
    | plausible_times.map(lambda t: t.isoformat().replace("+00:00", "Z"))
    | st.sampled_from(["2026-07-19T03:39:59.570750+00:00", "2026-07-19T03:39:59Z", "soon", ""])
)
numbers = st.integers(-5, 250) | st.floats(-5, 250, allow_nan=False)


def window(resets: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | st.fixed_dictionaries(
        {"utilization": numbers, "resets_at": st.none() | resets},
        optional={"extra": json_values},
    )


def listed(resets: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    model = st.fixed_dictionaries(
        {"id": st.text(max_size=10)}, optional={"display_name": st.text(max_size=12)}
    )
    return st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["session", "weekly_all", "weekly_scoped", "iguana_necktie"]),
            "percent": st.integers(0, 120),
            "resets_at": st.none() | resets,
        },
        optional={
            "group": st.text(max_size=8),
            "severity": st.sampled_from(["normal", "warning", "critical", "unheard_of"]),
            "scope": st.none() | st.fixed_dictionaries({"model": model}),
            "is_active": st.booleans(),
        },
    )


def shapes(resets: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The real shapes, fields of the right types, in any combination."""
    return st.fixed_dictionaries(
        {},
        optional={
            "five_hour": window(resets),
            "seven_day": window(resets),
            "seven_day_opus": window(resets),
            "seven_day_sonnet": window(resets),
            "seven_day_oauth_apps": window(resets),
            "seven_day_cowork": window(resets),
            "seven_day_iguana_necktie": window(resets),
            "limits": st.lists(listed(resets), max_size=4),
            "extra_usage": st.none()
            | st.fixed_dictionaries(
                {"is_enabled": st.booleans()},
                optional={
                    "monthly_limit": st.none() | st.integers(0, 10**7),
                    "used_credits": st.none() | numbers,
                    "utilization": st.none() | numbers,
                    "currency": st.sampled_from(["USD", "eur", ""]),
                },
            ),
            "currency": st.sampled_from(["EUR", "GBP"]),
        },
    )


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Any:
    """A real answer with parts replaced by anything, dropped, or added, at any depth."""
    value = draw(base)
    for _ in range(draw(st.integers(1, 4))):
        value = _mutate(draw, value)
    return value


def _mutate(draw: st.DrawFn, value: Any) -> Any:
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        action = draw(st.sampled_from(["replace", "drop", "recurse", "add"]))
        copy = dict(value)
        if action == "replace":
            copy[key] = draw(json_values)
        elif action == "drop":
            del copy[key]
        elif action == "add":
            copy[draw(st.text(max_size=12))] = draw(json_values)
        else:
            copy[key] = _mutate(draw, copy[key])
        return copy
    if isinstance(value, list) and value and draw(st.booleans()):
        index = draw(st.integers(0, len(value) - 1))
        copy = list(value)
        copy[index] = _mutate(draw, copy[index]) if draw(st.booleans()) else draw(json_values)
        return copy
    return draw(json_values) if draw(st.integers(0, 3)) == 0 else value


real_answers = st.builds(
    simulated_usage,
    now=plausible_times,
    origin=plausible_times,
)


# -- the response parser ---------------------------------------------------------------------


def parsed_or_refused(payload: Any) -> UsageSnapshot | None:
    try:
        snapshot = parse_usage(payload, fetched_at=NOW)
    except UnexpectedResponse as exc:
        refused = exc
    else:
        refused = None
    if refused is not None:
        assert refused.message
        return None
    assert isinstance(snapshot, UsageSnapshot)
    for limit in snapshot.limits:
        assert math.isfinite(limit.percent)
        assert limit.id
        assert isinstance(limit.label, str)
    assert len({limit.id for limit in snapshot.limits}) == len(snapshot.limits)
    return snapshot


def goes_everywhere(snapshot: UsageSnapshot) -> None:
    """A snapshot that parsed goes through the alert engine, the report and the renderers."""
    usage = AccountUsage("fuzz", snapshot, None, NOW)
    assessment = assess(
        AccountLedger("fuzz"), usage, now=NOW, thresholds=(80.0, 95.0), reset_announce="always"
    )
    for event in assessment.events:
        event.message()
    report = build_report(usage, NOW)
    json.dumps(to_json([usage], NOW))
    slack_reports([report])
    slack_reports([report, report])
    json.dumps(discord_reports([report]))
    terminal_reports([report], now=NOW, width=40, tz=UTC)


@FUZZ
@given(json_values)
@example([])
@example({"five_hour": {"utilization": float("nan")}})
@example({"limits": [{"kind": "weekly_scoped", "percent": 1, "scope": {"model": {}}}]})
def test_parse_usage_takes_any_json(payload: Any) -> None:
    parsed_or_refused(payload)


@FUZZ
@given(shapes(timestamps) | mutated(real_answers) | mutated(shapes(timestamps)))
def test_parse_usage_takes_the_real_shapes_changed_in_any_way(payload: Any) -> None:
    snapshot = parsed_or_refused(payload)
    # Reset times a calendar allows but no upstream will send (the year 9999) are the
    # parser's business only: see test_parse_usage_takes_any_reset_time_the_calendar_has.
    if snapshot is not None and all(
        limit.resets_at is None or EARLIEST <= limit.resets_at <= LATEST
        for limit in snapshot.limits
    ):
        goes_everywhere(snapshot)


@settings(FUZZ, max_examples=100)
@given(shapes(any_times.map(datetime.isoformat)))
def test_parse_usage_takes_any_reset_time_the_calendar_has(payload: Any) -> None:
    parsed_or_refused(payload)


@pytest.mark.parametrize("resets_at", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+05:00"])
def test_a_reset_time_at_the_edge_of_the_calendar_does_not_stop_the_alert_engine(
    resets_at: str,
) -> None:
    payload = {"five_hour": {"utilization": 90, "resets_at": resets_at}}
    try:
        snapshot = parse_usage(payload, fetched_at=NOW)
    except UnexpectedResponse:
        return  # a time that does not fit in UTC is refused as the documented error
    usage = AccountUsage("fuzz", snapshot, None, NOW)
    assessment = assess(
        AccountLedger("fuzz"), usage, now=NOW, thresholds=(80.0, 95.0), reset_announce="always"
    )
    for event in assessment.events:
        event.message()  # as the state store does, to record it: the key names the window


# -- the client --------------------------------------------------------------------------------

bodies = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | mutated(real_answers).map(lambda v: json.dumps(v).encode())
    | st.sampled_from(
        [
            b"[" * 50_000 + b"]" * 50_000,
            b'{"n": ' + b"9" * 5000 + b"}",
            b"<!DOCTYPE html><html><body>Just a moment...</body></html>",
            b'{"error": {"message": "scope"}}',
        ]
    )
)


def test_the_client_answers_an_object_or_a_usage_bot_error() -> None:
    answer: list[httpx.Response] = []
    loop = asyncio.new_event_loop()
    client = UsageClient(
        base_url="https://api.anthropic.test",
        user_agent="claude-code/2.1.0",
        transport=httpx.MockTransport(lambda _: answer[-1]),
    )

    async def fetch() -> object:
        try:
            return await client.fetch("sk-ant-oat01-fuzz", now=NOW)
        except UsageBotError as exc:
            return exc

    @FUZZ
    @given(
        status=st.sampled_from([200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 503]),
        body=bodies,
        content_type=st.sampled_from(["application/json", "text/html", "text/plain", ""]),
        retry_after=st.none() | st.text(max_size=40),
    )
    def check(status: int, body: bytes, content_type: str, retry_after: str | None) -> None:
        headers = {"content-type": content_type} if content_type else {}
        if retry_after is not None and retry_after.isprintable() and retry_after.isascii():
            headers["retry-after"] = retry_after
        answer.append(httpx.Response(status, content=body, headers=headers))
        result = loop.run_until_complete(fetch())
        assert isinstance(result, dict | UsageBotError), result

    try:
        check()
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


@FUZZ
@given(
    st.none()
    | st.text(max_size=60)
    | plausible_times.map(lambda t: t.strftime("%a, %d %b %Y %H:%M:%S GMT"))
)
def test_retry_after_is_a_bounded_wait_or_none(raw: str | None) -> None:
    wait = parse_retry_after(raw, NOW)
    assert wait is None or 0 <= wait <= MAX_RETRY_AFTER


# -- the configuration parser ------------------------------------------------------------------

VARIABLES = (
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CONFIG_DIR",
    "USAGE_BOT_ACCOUNTS",
    "USAGE_BOT_API_BASE_URL",
    "USAGE_BOT_USER_AGENT",
    "USAGE_BOT_POLL_SECONDS",
    "USAGE_BOT_THRESHOLDS",
    "USAGE_BOT_RESET_ANNOUNCE",
    "USAGE_BOT_STATE",
    "USAGE_BOT_HTTP_HOST",
    "USAGE_BOT_HTTP_PORT",
    "USAGE_BOT_LOG_LEVEL",
    "USAGE_BOT_LOG_FORMAT",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_ALERT_CHANNEL",
    "SLACK_WEBHOOK_URL",
    "SLACK_API_BASE_URL",
    "SLACK_ALLOWED_CHANNELS",
    "SLACK_ALLOWED_USERS",
    "DISCORD_BOT_TOKEN",
    "DISCORD_GUILD_ID",
    "DISCORD_ALERT_CHANNEL_ID",
    "DISCORD_WEBHOOK_URL",
    "DISCORD_ALLOWED_GUILDS",
    "DISCORD_ALLOWED_CHANNELS",
    "DISCORD_API_BASE_URL",
    "DISCORD_GATEWAY_URL",
)
CANARY = "Canary7q3z"
SECRETS = (
    "CLAUDE_CODE_OAUTH_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_WEBHOOK_URL",
    "DISCORD_BOT_TOKEN",
    "DISCORD_WEBHOOK_URL",
)
# Values of the right kind, so that examples also get past single checks to combinations.
GOOD = {
    "CLAUDE_CODE_OAUTH_TOKEN": ["sk-ant-oat01-abcdefghijklmnop"],
    "USAGE_BOT_ACCOUNTS": ["alice=/claude/alice,bob=/claude/bob", "a=~/x", "x=", "a=1,a=2"],
    "USAGE_BOT_API_BASE_URL": ["https://api.anthropic.com/", "http://[::1", "ftp://x"],
    "USAGE_BOT_POLL_SECONDS": ["180", "1", "0", "-5", "9" * 5000, "1e3"],
    "USAGE_BOT_THRESHOLDS": ["80,95", "50%, 75 ,", "nan", "inf", "0", "101", ","],
    "USAGE_BOT_RESET_ANNOUNCE": ["alerted", "ALWAYS", "never", "sometimes"],
    "USAGE_BOT_STATE": ["sqlite:///tmp/x.db", "postgres://db", "./x.sqlite3"],
    "USAGE_BOT_HTTP_PORT": ["0", "8080", "65536", "-1", "http"],
    "USAGE_BOT_LOG_LEVEL": ["debug", "WARNING", "loud"],
    "USAGE_BOT_LOG_FORMAT": ["json", "TEXT", "xml"],
    "SLACK_BOT_TOKEN": ["xoxb-1-2-abc", "xoxp-1-2-abc", "not-a-token-at-all"],
    "SLACK_APP_TOKEN": ["xapp-1-A-2-abc", "xoxb-1-2-abc"],
    "SLACK_SIGNING_SECRET": ["8f2b6e1c9d4a7f3b5e0c2d8a6b4f1e9c"],
    "SLACK_ALERT_CHANNEL": ["C0123456789", "#general"],
    "SLACK_WEBHOOK_URL": ["https://hooks.slack.com/services/T/B/X", "hooks.slack.com/x"],
    "SLACK_ALLOWED_CHANNELS": ["C0123456789,G0123456789", "C01, general"],
    "SLACK_ALLOWED_USERS": ["U0123456789", "alice"],
    "DISCORD_BOT_TOKEN": ["a-discord-token-of-sorts"],
    "DISCORD_GUILD_ID": ["123456789012345678", "12"],
    "DISCORD_ALERT_CHANNEL_ID": ["123456789012345678", "general"],
    "DISCORD_WEBHOOK_URL": ["https://discord.com/api/webhooks/1/abc", "discord.com"],
    "DISCORD_ALLOWED_GUILDS": ["123456789012345678,223456789012345678", "1,2"],
    "DISCORD_API_BASE_URL": ["https://discord.com/api/v10", "discord"],
    "DISCORD_GATEWAY_URL": ["wss://gateway.discord.gg/", "https://gateway.discord.gg/"],
}


@pytest.fixture(scope="module")
def secret_files() -> Any:
    """Files a ``NAME_FILE`` may point at: fine, empty, binary, a directory, missing."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "fine").write_text("xoxb-1-2-from-a-file\n", encoding="utf-8")
        (root / "empty").write_text("", encoding="utf-8")
        (root / "binary").write_bytes(b"\xff\xfe\x00\x81 not utf-8")
        (root / "folder").mkdir()
        yield [str(root / name) for name in ("fine", "empty", "binary", "folder", "missing")] + [
            str(root / "fine") + "\x00nul",
            "~/definitely/not/here",
            "",
        ]


def environments(files: list[str]) -> st.SearchStrategy[dict[str, str]]:
    names = st.sampled_from(VARIABLES) | st.sampled_from(SECRETS).map(lambda n: f"{n}_FILE")

    def value_for(name: str) -> st.SearchStrategy[str]:
        if name.endswith("_FILE"):
            return st.sampled_from(files)
        known = GOOD.get(name, [])
        text = st.text(max_size=40)
        return st.sampled_from(known) | text if known else text

    return st.lists(names, max_size=8, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({name: value_for(name) for name in chosen})
    )


def test_load_settings_takes_any_values_of_the_real_names(secret_files: list[str]) -> None:
    @FUZZ
    @given(environments(secret_files))
    def check(env: dict[str, str]) -> None:
        # Every secret ends in a canary: whatever the message says, the canary is not in it.
        env = {name: value + CANARY if name in SECRETS else value for name, value in env.items()}
        try:
            loaded = load_settings(env, dotenv_path=None)
        except ConfigError as exc:
            refused = exc
        else:
            refused = None
        if refused is not None:
            assert refused.problems
            assert CANARY not in refused.message
            assert "from-a-file" not in refused.message
            return
        assert isinstance(loaded, Settings)
        assert loaded.upstream.poll_seconds >= 1
        assert loaded.alerts.thresholds
        assert all(0 < t <= 100 for t in loaded.alerts.thresholds)
        list(loaded.secrets())

    check()


# -- the credentials parser --------------------------------------------------------------------

logins = st.fixed_dictionaries(
    {},
    optional={
        "accessToken": st.text(max_size=20) | json_values,
        "refreshToken": st.text(max_size=20),
        "expiresAt": st.integers(-(10**18), 10**18)
        | st.floats(allow_nan=True, allow_infinity=True)
        | json_values,
        "scopes": st.lists(st.sampled_from(["user:profile", "user:inference"])) | json_values,
        "subscriptionType": st.text(max_size=8) | json_values,
        "rateLimitTier": st.text(max_size=8),
    },
)
credential_texts = (
    st.text(max_size=200)
    | json_values.map(json.dumps)
    | st.fixed_dictionaries({"claudeAiOauth": logins}).map(json.dumps)
    | st.fixed_dictionaries({"claudeAiOauth": logins})
    .map(json.dumps)
    .flatmap(lambda text: st.integers(0, len(text)).map(lambda cut: text[:cut]))
)


@FUZZ
@given(credential_texts)
@example("[" * 100_000)
@example('{"claudeAiOauth": {"accessToken": "t", "expiresAt": ' + "9" * 5000 + "}}")
@example('{"claudeAiOauth": {"accessToken": "t", "expiresAt": 1e400}}')
@example('{"claudeAiOauth": {"accessToken": "t", "expiresAt": NaN}}')
def test_parse_credentials_gives_a_login_or_a_credentials_error(text: str) -> None:
    try:
        credentials = parse_credentials(text, "the fuzzed login")
    except CredentialsError as exc:
        refused: CredentialsError | None = exc
    else:
        refused = None
    if refused is not None:
        assert "the fuzzed login" in refused.message
        return
    assert isinstance(credentials, Credentials)
    assert credentials.token.reveal().strip()
    assert "token=Secret('…')" in repr(credentials)
    for now in (NOW, NOW + timedelta(days=36500)):
        with contextlib.suppress(CredentialsExpired, ScopeMissing):
            credentials.check(now)


def test_the_fuzzers_reach_both_outcomes() -> None:
    """A guard against fuzzers that only ever hit one branch."""
    outcomes: set[str] = set()

    @settings(max_examples=40, deadline=None, database=None)
    @given(mutated(real_answers))
    def probe(payload: Any) -> None:
        outcomes.add("parsed" if parsed_or_refused(payload) is not None else "refused")

    probe()
    assert outcomes == {"parsed", "refused"}
