"""``usage-bot`` as a user runs it: a subprocess with its own home, working directory and
environment, against the simulated upstream through ``USAGE_BOT_API_BASE_URL``.

The subprocesses are started with ``asyncio.create_subprocess_exec`` so that the
in-process simulated upstream keeps serving while they run; tables of cases run
concurrently, each case with its own upstream, home and working directory.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import usage_bot
from tests.conftest import write_login
from tests.fakes.discord import BOT_TOKEN as DISCORD_BOT_TOKEN
from tests.fakes.discord import CHANNEL_ID as DISCORD_CHANNEL_ID
from tests.fakes.discord import GUILD_ID as DISCORD_GUILD_ID
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from usage_bot._clock import FakeClock
from usage_bot._config import DEFAULT_USER_AGENT
from usage_bot._demo import run_demo
from usage_bot._simulator import Fault, SimulatedUpstream

# Not shaped like an Anthropic token, so no redactor can hide it: if it shows, it leaked.
TOKEN = "zz-usage-bot-cli-token-7f3a9c2e5b1d4a6f"
REFRESH_TOKEN = "sk-ant-ort01-refresh-token-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"  # write_login's
SLACK_BOT_TOKEN = "xoxb-1111111111-2222222222-slackbotsecretQQQQ"
SLACK_APP_TOKEN = "xapp-1-A0123456789-3333333333-slackappsecretWWWW"
SECRETS = (TOKEN, REFRESH_TOKEN, SLACK_BOT_TOKEN, SLACK_APP_TOKEN)
RUN_TIMEOUT = 30.0

ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}:\d{2}")
DOCTOR_LINE = re.compile(r"(ok  |WARN|FAIL|skip)  [^:]+(: [^:]+)?: \S.*|      fix: \S.*")

SCOPE_ERROR = {
    "type": "error",
    "error": {
        "type": "permission_error",
        "message": "OAuth token does not meet scope requirement user:profile",
    },
}
AUTHENTICATION_ERROR = {
    "type": "error",
    "error": {"type": "authentication_error", "message": "Invalid bearer token"},
}
CHALLENGE_HTML = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    b"<body>Checking your browser</body></html>"
)


def later(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# Running usage-bot


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


async def run_usage_bot(
    *args: str, env: Mapping[str, str], cwd: Path, deadline: float = RUN_TIMEOUT
) -> Result:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "usage_bot",
        *args,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), deadline)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode(), time.monotonic() - started)


@dataclass
class Machine:
    """A user's machine: a home, a working directory without a ``.env``, an environment."""

    root: Path
    env: dict[str, str]

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def cwd(self) -> Path:
        return self.root / "work"

    def login(self, *, token: str = TOKEN, **options: Any) -> Path:
        options.setdefault("expires_at", later(hours=8))
        return write_login(self.home / ".claude", token=token, **options)

    async def run(self, *args: str, deadline: float = RUN_TIMEOUT) -> Result:
        return await run_usage_bot(*args, env=self.env, cwd=self.cwd, deadline=deadline)


def new_machine(root: Path, upstream_url: str | None = None, **env: str) -> Machine:
    (root / "home").mkdir(parents=True)
    (root / "work").mkdir()
    base = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(root / "home")}
    if upstream_url is not None:
        base["USAGE_BOT_API_BASE_URL"] = upstream_url
    return Machine(root, {**base, **env})


def with_chat_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """Slack secrets in the environment: they must not show either."""
    return {**env, "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN, "SLACK_APP_TOKEN": SLACK_APP_TOKEN}


def assert_clean(result: Result, *, secrets: tuple[str, ...] = SECRETS) -> None:
    """No traceback and no secret, on either stream."""
    assert "Traceback" not in result.err, result
    for secret in secrets:
        assert secret not in result.out, f"a secret on stdout:\n{result}"
        assert secret not in result.err, f"a secret on stderr:\n{result}"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def upstream() -> AsyncIterator[SimulatedUpstream]:
    """The simulated usage endpoint, accepting this module's :data:`TOKEN`."""
    async with SimulatedUpstream(clock=FakeClock(), token=TOKEN) as server:
        yield server


@pytest.fixture
def machine(tmp_path: Path, upstream: SimulatedUpstream) -> Machine:
    """A machine logged in with :data:`TOKEN`, pointed at :func:`upstream`."""
    machine = new_machine(tmp_path / "machine", upstream.url)
    machine.login()
    return machine


# The JSON document


def assert_timestamp(value: object) -> datetime:
    assert isinstance(value, str)
    assert ISO.fullmatch(value), f"not an ISO 8601 timestamp with offset: {value!r}"
    return datetime.fromisoformat(value)


def assert_document(doc: object) -> dict[str, Any]:
    """The schema of PRODUCT.md, exactly; returns the one account."""
    assert isinstance(doc, dict)
    assert set(doc) == {"accounts"}
    assert isinstance(doc["accounts"], list)
    assert len(doc["accounts"]) == 1
    account: dict[str, Any] = doc["accounts"][0]
    # PRODUCT.md's fields exactly, and "spend", added for the 2026 shapes.
    assert set(account) == {
        "name",
        "fetched_at",
        "stale",
        "limits",
        "extra_usage",
        "spend",
        "error",
    }
    assert account["name"] == "default"
    if account["fetched_at"] is not None:
        fetched = assert_timestamp(account["fetched_at"])
        assert abs(fetched - datetime.now(UTC)) < timedelta(minutes=2)
    assert isinstance(account["stale"], bool)
    assert isinstance(account["limits"], list)
    for limit in account["limits"]:
        assert set(limit) == {
            *("id", "label", "percent", "resets_at", "severity"),
            *("started", "locked_reason", "dollars", "breakdown"),  # added for 2026
        }, limit
        assert isinstance(limit["started"], bool)
        assert limit["locked_reason"] is None or isinstance(limit["locked_reason"], str)
        assert limit["dollars"] is None or set(limit["dollars"]) == {"limit", "used", "remaining"}
        if limit["breakdown"] is not None:
            assert limit["id"] == "seven_day"
            for row in limit["breakdown"]["rows"]:
                assert set(row) == {"key", "label", "percent"}
                assert 0 <= row["percent"] <= 100
        assert isinstance(limit["id"], str)
        assert limit["id"]
        assert isinstance(limit["label"], str)
        assert limit["label"]
        assert isinstance(limit["percent"], float), limit
        assert 0 <= limit["percent"] <= 100
        if limit["resets_at"] is not None:
            assert_timestamp(limit["resets_at"])
        assert isinstance(limit["severity"], str)
        assert limit["severity"]
    extra = account["extra_usage"]
    if extra is not None:
        assert set(extra) == {"enabled", "used", "limit", "currency"}
        assert isinstance(extra["enabled"], bool)
        for amount in (extra["used"], extra["limit"]):
            assert amount is None or (isinstance(amount, int | float) and amount >= 0)
        assert isinstance(extra["currency"], str)
    spend = account["spend"]
    if spend is not None:
        assert set(spend) == {"used", "limit", "cap", "percent", "severity"}
        assert spend["percent"] is None or 0 <= spend["percent"] <= 100
    error = account["error"]
    if error is not None:
        assert set(error) == {"code", "message"}
        assert isinstance(error["code"], str)
        assert isinstance(error["message"], str)
    return account


async def check_json(machine: Machine, upstream: SimulatedUpstream) -> dict[str, Any]:
    result = await machine.run("check", "--json")
    assert result.code == 0, result
    assert_clean(result)
    account = assert_document(json.loads(result.out))
    assert account["error"] is None
    assert account["stale"] is False
    assert len(upstream.requests) == 1
    return account


def by_id(account: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {limit["id"]: limit for limit in account["limits"]}


def assert_ordered(ids: list[str]) -> None:
    """5-hour, weekly all models, weekly per model, then the rest."""

    def group(limit_id: str) -> int:
        if limit_id == "five_hour":
            return 0
        if limit_id == "seven_day":
            return 1
        return 2 if limit_id.startswith("seven_day_") else 3

    groups = [group(i) for i in ids]
    assert groups == sorted(groups), ids


# check --json against each response shape


async def test_check_json_flat_windows(machine: Machine, upstream: SimulatedUpstream) -> None:
    machine.env = with_chat_secrets(machine.env)
    upstream.payload = {
        "five_hour": {"utilization": 15, "resets_at": "2026-07-19T03:39:59.570750Z"},
        "seven_day": {
            "utilization": 42.5,
            "resets_at": "2026-07-24T00:00:00+00:00",
            "surface": "all",
            "is_active": True,
        },
        "seven_day_opus": None,
        "seven_day_sonnet": {"utilization": 88.25, "resets_at": "2026-07-24T00:00:00.57Z"},
        "seven_day_oauth_apps": {"utilization": 0, "resets_at": None},
        "seven_day_cowork": {"utilization": 96, "resets_at": "2026-07-24T02:00:00+02:00"},
        "iguana_necktie": {"utilization": 7.0, "resets_at": "2026-07-20T00:00:00Z", "x": [1]},
        "currency": "EUR",
        "organization_uuid": "f00",
    }
    account = await check_json(machine, upstream)
    ids = [limit["id"] for limit in account["limits"]]
    assert sorted(ids) == sorted(
        [
            "five_hour",
            "seven_day",
            "seven_day_sonnet",
            "seven_day_oauth_apps",
            "seven_day_cowork",
            "iguana_necktie",
        ]
    )
    assert ids[:2] == ["five_hour", "seven_day"]
    assert ids[-1] == "iguana_necktie"
    assert_ordered(ids)
    limits = by_id(account)
    expected = {
        "five_hour": ("5-hour", 15.0, datetime(2026, 7, 19, 3, 39, 59, 570750, UTC), "normal"),
        "seven_day": ("Weekly (all models)", 42.5, datetime(2026, 7, 24, tzinfo=UTC), "normal"),
        "seven_day_sonnet": (
            "Weekly (Sonnet)",
            88.25,
            datetime(2026, 7, 24, 0, 0, 0, 570000, UTC),
            "warning",
        ),
        "seven_day_oauth_apps": ("Weekly (OAuth apps)", 0.0, None, "normal"),
        "seven_day_cowork": (
            "Weekly (Cowork)",
            96.0,
            datetime(2026, 7, 24, tzinfo=UTC),
            "critical",
        ),
        "iguana_necktie": ("Iguana necktie", 7.0, datetime(2026, 7, 20, tzinfo=UTC), "normal"),
    }
    for limit_id, (label, percent, resets_at, severity) in expected.items():
        limit = limits[limit_id]
        assert limit["label"] == label
        assert limit["percent"] == percent
        shown = limit["resets_at"] and datetime.fromisoformat(limit["resets_at"])
        assert shown == resets_at, limit
        assert limit["severity"] == severity
    assert account["extra_usage"] is None


async def test_check_json_limits_list_merged_with_flat_windows(
    machine: Machine, upstream: SimulatedUpstream
) -> None:
    session_reset, week_reset = "2026-07-19T03:39:59.570750+00:00", "2026-07-24T00:00:00Z"

    def listed(kind: str, percent: int, **fields: Any) -> dict[str, Any]:
        return {
            "kind": kind,
            "group": "default",
            "percent": percent,
            "severity": "normal",
            "resets_at": week_reset,
            "scope": None,
            "is_active": True,
        } | fields

    upstream.payload = {
        "five_hour": {"utilization": 15.0, "resets_at": session_reset},
        "seven_day": {"utilization": 40, "resets_at": week_reset},
        "seven_day_opus": {"utilization": 55, "resets_at": week_reset},
        "limits": [
            listed("monthly_org_cap", 12, group="org", resets_at=None, is_active=False),
            listed("session", 15, resets_at=session_reset),
            listed(
                "weekly_scoped",
                81,
                severity="warning",
                scope={"model": {"id": "claude-fable", "display_name": "Fable"}, "surface": None},
            ),
            listed("weekly_all", 40),
            listed(
                "weekly_scoped",
                55,
                scope={"model": {"id": "claude-opus", "display_name": "Opus"}, "surface": None},
            ),
        ],
    }
    account = await check_json(machine, upstream)
    ids = [limit["id"] for limit in account["limits"]]
    assert len(ids) == len(set(ids)), f"a limit shown twice: {ids}"
    assert sorted(ids) == sorted(
        ["five_hour", "seven_day", "seven_day_fable", "seven_day_opus", "monthly_org_cap"]
    )
    assert ids[:2] == ["five_hour", "seven_day"]
    assert set(ids[2:4]) == {"seven_day_fable", "seven_day_opus"}
    assert ids[4] == "monthly_org_cap"
    limits = by_id(account)
    assert limits["five_hour"]["percent"] == 15.0
    assert limits["five_hour"]["label"] == "5-hour"
    assert limits["seven_day"]["label"] == "Weekly (all models)"
    fable = limits["seven_day_fable"]
    assert "Fable" in fable["label"]
    assert fable["label"].startswith("Weekly")
    assert fable["percent"] == 81.0
    assert fable["severity"] == "warning"
    assert datetime.fromisoformat(fable["resets_at"]) == datetime(2026, 7, 24, tzinfo=UTC)
    assert limits["seven_day_opus"]["label"] == "Weekly (Opus)"
    assert limits["seven_day_opus"]["percent"] == 55.0
    unknown = limits["monthly_org_cap"]
    assert unknown["label"].lower() == "monthly org cap"
    assert unknown["label"][0].isupper()
    assert unknown["percent"] == 12.0
    assert unknown["resets_at"] is None


async def test_check_json_extra_usage_in_major_units(
    machine: Machine, upstream: SimulatedUpstream
) -> None:
    upstream.payload = {
        "five_hour": {"utilization": 1, "resets_at": None},
        "extra_usage": {
            "is_enabled": True,
            "monthly_limit": 5000,
            "used_credits": 2050,
            "utilization": 41.0,
            "currency": "USD",
            "auto_reload": False,
        },
    }
    account = await check_json(machine, upstream)
    assert account["extra_usage"] == {
        "enabled": True,
        "used": 20.5,
        "limit": 50.0,
        "currency": "USD",
    }


async def test_check_asks_as_claude_code_does(
    machine: Machine, upstream: SimulatedUpstream
) -> None:
    account = await check_json(machine, upstream)
    assert {limit["id"] for limit in account["limits"]} >= {"five_hour", "seven_day"}
    (headers,) = upstream.requests
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["anthropic-beta"] == "oauth-2025-04-20"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == DEFAULT_USER_AGENT
    assert headers["User-Agent"].startswith("claude-code/")


# Plain check


async def test_check_prints_a_readable_report(tmp_path: Path) -> None:
    payload = {
        "five_hour": {"utilization": 15.3, "resets_at": iso(later(hours=3))},
        "seven_day": {"utilization": 42, "resets_at": iso(later(days=3))},
        "limits": [
            {
                "kind": "weekly_scoped",
                "percent": 81,
                "severity": "warning",
                "resets_at": iso(later(days=3)),
                "scope": {"model": {"id": "claude-fable", "display_name": "Fable"}},
            }
        ],
        "extra_usage": {"is_enabled": True, "monthly_limit": 5000, "used_credits": 2050},
    }
    async with AsyncExitStack() as stack:
        machines = []
        for columns in (80, 40):
            upstream = await stack.enter_async_context(
                SimulatedUpstream(clock=FakeClock(), token=TOKEN)
            )
            upstream.payload = payload
            machine = new_machine(tmp_path / str(columns), upstream.url, COLUMNS=str(columns))
            machine.login()
            machines.append(machine)
        results = await asyncio.gather(*(m.run("check") for m in machines))
    for columns, result in zip((80, 40), results, strict=True):
        assert result.code == 0, result
        assert_clean(result)
        lines = result.out.splitlines()
        assert lines[0].startswith("Claude usage: default")
        for label, percent in (
            ("5-hour", "15%"),
            ("Weekly (all models)", "42%"),
            ("Weekly (Fable)", "81%"),
        ):
            assert label in result.out, result
            assert percent in result.out, result
        assert "20.50 USD" in result.out
        assert "resets" in result.out
        assert all(len(line) <= columns for line in lines), result


# Errors and their exit codes


@dataclass
class Case:
    """One way ``check`` fails: what is set up, and what it must say."""

    name: str
    code: int
    says: tuple[str, ...]
    fault: Fault | None = None
    payload: dict[str, Any] | None = None
    prepare: Callable[[Machine], None] = lambda machine: None
    env: dict[str, str] = field(default_factory=dict)
    asks_upstream: bool = True
    args: tuple[str, ...] = ("check",)


async def run_cases(tmp_path: Path, cases: list[Case]) -> list[str]:
    """Run every case at once; return every way any of them went wrong."""
    async with AsyncExitStack() as stack:
        machines, upstreams = [], []
        for case in cases:
            upstream = await stack.enter_async_context(
                SimulatedUpstream(clock=FakeClock(), token=TOKEN)
            )
            if case.fault is not None:
                upstream.fail(case.fault)
            upstream.payload = case.payload
            machine = new_machine(tmp_path / case.name, upstream.url)
            machine.env = with_chat_secrets(machine.env) | case.env
            case.prepare(machine)
            machines.append(machine)
            upstreams.append(upstream)
        results = await asyncio.gather(
            *(m.run(*c.args) for m, c in zip(machines, cases, strict=True))
        )
    problems: list[str] = []
    for case, upstream, result in zip(cases, upstreams, results, strict=True):
        problems.extend(f"{case.name}: {p}\n{result}" for p in judge(case, upstream, result))
    return problems


def judge(case: Case, upstream: SimulatedUpstream, result: Result) -> list[str]:
    problems = []
    if result.code != case.code:
        problems.append(f"exit {result.code}, expected {case.code}")
    if "Traceback" in result.err:
        problems.append("a traceback")
    problems.extend(
        f"a secret ({secret[:6]}...) in the output"
        for secret in SECRETS
        if secret in result.out or secret in result.err
    )
    message = result.err if "--json" not in case.args else result.out
    problems.extend(f"does not say {s!r}" for s in case.says if s not in message)
    if len(result.err.splitlines()) > 4 or len(result.err) > 800:
        problems.append("stderr is not short")
    if "--json" not in case.args and result.out.strip():
        problems.append("something on stdout")
    if not result.err.rstrip().endswith("."):
        problems.append("stderr does not end with a sentence")
    asked = len(upstream.requests)
    if case.asks_upstream and asked != 1:
        problems.append(f"asked the upstream {asked} times, expected once")
    if not case.asks_upstream and asked:
        problems.append("asked the upstream, but nothing should have been sent")
    return problems


def json_body(data: object) -> bytes:
    return json.dumps(data).encode()


def login(machine: Machine) -> None:
    machine.login()


def upstream_error(
    name: str,
    says: tuple[str, ...],
    fault: Fault | None = None,
    *,
    payload: dict[str, Any] | None = None,
    args: tuple[str, ...] = ("check",),
) -> Case:
    return Case(name, 4, says, fault, payload, prepare=login, args=args)


UPSTREAM_ERRORS = [
    upstream_error(
        "429",
        ("rate-limiting", "try again in 2 min"),
        Fault(status=429, headers={"retry-after": "120"}, body=b'{"type":"error"}'),
    ),
    upstream_error(
        "429-no-retry-after", ("rate-limiting", "try again in a few minutes"), Fault(status=429)
    ),
    upstream_error("500", ("HTTP 500",), Fault(status=500)),
    upstream_error("503", ("HTTP 503",), Fault(status=503)),
    upstream_error(
        "challenge-403",
        ("web page", "HTTP 403"),
        Fault(status=403, body=CHALLENGE_HTML, content_type="text/html"),
    ),
    upstream_error(
        "challenge-200",
        ("web page", "HTTP 200"),
        Fault(status=200, body=CHALLENGE_HTML, content_type="text/html"),
    ),
    upstream_error(
        "not-json",
        ("not JSON", "update usage-bot"),
        Fault(status=200, body=b"upstream connect error or disconnect/reset"),
    ),
    upstream_error(
        "json-list", ("not a JSON object",), Fault(status=200, body=b'[{"five_hour": 1}]')
    ),
    upstream_error(
        "wrong-type",
        ("five_hour.utilization", "update usage-bot"),
        payload={"five_hour": {"utilization": "high", "resets_at": None}},
    ),
    upstream_error("limits-not-a-list", ("limits",), payload={"limits": {"kind": "session"}}),
    upstream_error(
        "no-known-member",
        ("none of the members the bot knows", "update usage-bot"),
        payload={"organization_uuid": "f00", "currency": "EUR"},
    ),
    upstream_error(
        "percent-out-of-range",
        ("five_hour.utilization is 1e+308, not a percent from 0 to 100",),
        payload={"five_hour": {"utilization": 1e308, "resets_at": None}},
    ),
    upstream_error(
        "bad-timestamp",
        ("five_hour.resets_at",),
        payload={"five_hour": {"utilization": 1, "resets_at": "soon"}},
    ),
    upstream_error("404", ("HTTP 404", "USAGE_BOT_API_BASE_URL"), Fault(status=404)),
    upstream_error("cut-mid-body", ("127.0.0.1",), Fault(cut_mid_body=True)),
    upstream_error(
        "json-500",
        ('"code": "upstream_server_error"', "HTTP 500"),
        Fault(status=500),
        args=("check", "--json"),
    ),
]


async def test_upstream_errors_exit_4(tmp_path: Path) -> None:
    problems = await run_cases(tmp_path, UPSTREAM_ERRORS)
    assert not problems, "\n\n".join(problems)


async def test_an_unreachable_upstream_exits_4(tmp_path: Path) -> None:
    machine = new_machine(tmp_path / "m", f"http://127.0.0.1:{closed_port()}")
    machine.login()
    result = await machine.run("check")
    assert result.code == 4, result
    assert_clean(result)
    assert "Cannot reach 127.0.0.1" in result.err


async def test_check_json_with_an_error_still_prints_the_document(
    machine: Machine, upstream: SimulatedUpstream
) -> None:
    upstream.fail(status=503)
    result = await machine.run("check", "--json")
    assert result.code == 4, result
    assert_clean(result)
    account = assert_document(json.loads(result.out))
    assert account["limits"] == []
    assert account["fetched_at"] is None
    assert account["error"]["code"] == "upstream_server_error"
    assert "HTTP 503" in account["error"]["message"]


async def test_a_body_that_cannot_be_decoded_exits_4_without_a_traceback(
    machine: Machine, upstream: SimulatedUpstream
) -> None:
    upstream.fail(status=200, headers={"Content-Encoding": "gzip"}, body=b"not gzip at all")
    result = await machine.run("check")
    assert result.code == 4, result
    assert_clean(result)


def expired(machine: Machine) -> None:
    machine.login(expires_at=later(hours=-2))


def inference_only(machine: Machine) -> None:
    machine.login(scopes=["user:inference"])


def half_written(machine: Machine) -> None:
    """A credentials file cut short while Claude Code writes it (the token is in it)."""
    file = machine.login()
    text = file.read_text(encoding="utf-8")
    file.write_text(text[: len(text) - 40], encoding="utf-8")


def empty_token(machine: Machine) -> None:
    machine.login(token="")


def elsewhere(machine: Machine) -> None:
    folder = machine.root / "claude-config"
    write_login(folder, token=TOKEN, expires_at=later(hours=8))
    machine.env["CLAUDE_CONFIG_DIR"] = str(folder)


def empty_token_file(machine: Machine) -> None:
    file = machine.root / "token"
    file.write_text("\n", encoding="utf-8")
    machine.env["CLAUDE_CODE_OAUTH_TOKEN_FILE"] = str(file)


CREDENTIAL_ERRORS = [
    Case(
        "no-login",
        3,
        ("No Claude login found", "CLAUDE_CODE_OAUTH_TOKEN", "`claude`"),
        asks_upstream=False,
    ),
    Case("expired", 3, ("expired", "`claude`"), prepare=expired, asks_upstream=False),
    Case(
        "no-profile-scope",
        3,
        ("user:profile", "claude setup-token"),
        prepare=inference_only,
        asks_upstream=False,
    ),
    Case(
        "401",
        3,
        ("rejected", "log in again"),
        Fault(status=401, body=json_body(AUTHENTICATION_ERROR)),
        prepare=elsewhere,
    ),
    Case("401-other-token", 3, ("rejected",), env={"CLAUDE_CODE_OAUTH_TOKEN": "zz-revoked-0"}),
    Case(
        "403-scope",
        3,
        ("user:profile", "claude setup-token"),
        Fault(status=403, body=json_body(SCOPE_ERROR)),
        env={"CLAUDE_CODE_OAUTH_TOKEN": TOKEN},
    ),
    Case(
        "malformed",
        3,
        ("not valid JSON", ".credentials.json"),
        prepare=half_written,
        asks_upstream=False,
    ),
    Case("empty-token", 3, ("empty",), prepare=empty_token, asks_upstream=False),
    Case("empty-token-file", 3, ("empty",), prepare=empty_token_file, asks_upstream=False),
    Case(
        "missing-token-file",
        3,
        ("No Claude login found",),
        env={"CLAUDE_CODE_OAUTH_TOKEN_FILE": "/nonexistent/usage-bot/token"},
        asks_upstream=False,
    ),
]


async def test_credential_problems_exit_3(tmp_path: Path) -> None:
    problems = await run_cases(tmp_path, CREDENTIAL_ERRORS)
    assert not problems, "\n\n".join(problems)


async def test_every_configuration_problem_is_named_at_once(tmp_path: Path) -> None:
    """``check``, ``check --json`` and ``doctor`` alike: exit 2, each variable named."""
    bad_slack_token = "xoxp-personal-user-token-SECRET-9f8e7d"
    bad = {
        "USAGE_BOT_POLL_SECONDS": "0",
        "USAGE_BOT_THRESHOLDS": "80,150",
        "USAGE_BOT_RESET_ANNOUNCE": "sometimes",
        "USAGE_BOT_API_BASE_URL": "api.anthropic.com",
        "SLACK_BOT_TOKEN": bad_slack_token,
        "SLACK_APP_TOKEN": SLACK_APP_TOKEN,
        "SLACK_ALERT_CHANNEL": "#general",
    }
    async with SimulatedUpstream(clock=FakeClock(), token=TOKEN) as upstream:
        machine = new_machine(tmp_path / "m", None, **bad)
        machine.login()
        # One more, from the .env file in the working directory.
        (machine.cwd / ".env").write_text("USAGE_BOT_LOG_FORMAT=yaml\n", encoding="utf-8")
        check, check_json, doctor = await asyncio.gather(
            machine.run("check"), machine.run("check", "--json"), machine.run("doctor")
        )
        assert not upstream.requests
    names = [*(n for n in bad if n != "SLACK_APP_TOKEN"), "USAGE_BOT_LOG_FORMAT"]
    for result in (check, check_json):
        assert result.code == 2, result
        assert_clean(result, secrets=(*SECRETS, bad_slack_token))
        assert result.out == ""
        for name in names:
            assert name in result.err, f"{name} not named:\n{result}"
        assert f"{len(names)} settings are wrong" in result.err
        assert len(result.err.splitlines()) <= len(names) + 2
    # doctor lists each as a line of its own, among its other checks, and exits 2.
    assert doctor.code == 2, doctor
    assert_clean(doctor, secrets=(*SECRETS, bad_slack_token))
    failing = [line for line in doctor.out.splitlines() if line.startswith("FAIL  configuration")]
    assert len(failing) == len(names), doctor
    for name in names:
        assert any(name in line for line in failing), f"{name} not named:\n{doctor}"


# doctor


async def test_doctor_with_a_good_setup(machine: Machine, upstream: SimulatedUpstream) -> None:
    result = await machine.run("doctor")
    assert result.code == 0, result
    assert_clean(result)
    assert result.err == ""
    lines = result.out.rstrip().splitlines()
    checks = lines[: lines.index("")]
    for line in checks:
        assert DOCTOR_LINE.fullmatch(line), f"not a check line: {line!r}"
    names = [line[6:].split(": ")[0] for line in checks if not line.startswith(" ")]
    assert "configuration" in names
    assert "state" in names
    for check in ("login", "expiry", "scopes", "usage endpoint"):
        line = next(x for x in checks if x[6:].startswith(f"default: {check}:"))
        assert line.startswith("ok  "), line
    assert f"token {TOKEN[:5]}…" in result.out
    assert TOKEN[:10] not in result.out
    assert "expires in 7 h" in result.out
    assert "user:profile" in result.out
    assert "5-hour" in result.out
    assert lines[-1] == "All good."
    assert len(upstream.requests) == 1


async def test_doctor_with_an_expired_login(machine: Machine, upstream: SimulatedUpstream) -> None:
    machine.login(expires_at=later(hours=-3))
    result = await machine.run("doctor")
    assert result.code != 0, result
    assert_clean(result)
    expiry = next(line for line in result.out.splitlines() if "default: expiry" in line)
    assert expiry.startswith("FAIL"), expiry
    assert "expired 3 h" in expiry
    assert "`claude`" in result.out
    assert "1 check failed." in result.out
    assert not upstream.requests


async def test_doctor_with_no_login(tmp_path: Path, upstream: SimulatedUpstream) -> None:
    machine = new_machine(tmp_path / "m", upstream.url)
    result = await machine.run("doctor")
    assert result.code != 0, result
    assert_clean(result)
    login = next(line for line in result.out.splitlines() if "default: login" in line)
    assert login.startswith("FAIL")
    assert "No Claude login found" in login
    assert not upstream.requests


# What `usage-bot doctor` prints the set of top-level packages loaded, once it is done.
SDKS_LOADED_AT_EXIT = """
import sys
from usage_bot._cli import main
code = main(["doctor"])
sdks = {"slack_bolt", "slack_sdk", "discord"}
print("loaded:", sorted({name.split(".")[0] for name in sys.modules} & sdks))
sys.exit(code)
"""


async def test_doctor_checks_slack_and_discord_without_loading_their_sdks(
    machine: Machine,
) -> None:
    async with FakeSlack() as slack, FakeDiscord() as discord:
        slack.scopes = ["commands", "chat:write", "channels:read", "groups:read"]
        machine.env.update(
            SLACK_BOT_TOKEN=SLACK_BOT_TOKEN,
            SLACK_APP_TOKEN=SLACK_APP_TOKEN,
            SLACK_ALERT_CHANNEL="C0ALERTS1",
            SLACK_WEBHOOK_URL=slack.webhook_url,
            SLACK_API_BASE_URL=slack.api_url,
            DISCORD_BOT_TOKEN=DISCORD_BOT_TOKEN,
            DISCORD_GUILD_ID=str(DISCORD_GUILD_ID),
            DISCORD_ALERT_CHANNEL_ID=str(DISCORD_CHANNEL_ID),
            DISCORD_WEBHOOK_URL=discord.webhook_url,
            DISCORD_API_BASE_URL=discord.api_url,
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SDKS_LOADED_AT_EXIT,
            env=machine.env,
            cwd=machine.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    result = Result(process.returncode or 0, out.decode(), err.decode(), 0.0)

    assert result.code == 0, result
    assert_clean(result, secrets=(*SECRETS, DISCORD_BOT_TOKEN))
    # Every check asked the fakes and was answered: the SDKs were not needed for any.
    for check in ("bot token", "scopes", "Socket Mode", "alert channel"):
        assert f"ok    slack: {check}: " in result.out, result
    for check in ("bot token", "application", "invite URL", "alert channel", "webhook"):
        assert f"ok    discord: {check}: " in result.out, result
    assert "WARN  discord: command: /claude-usage is not registered in server" in result.out
    assert result.out.rstrip().splitlines()[-1] == "loaded: []", result
    assert {call.method for call in slack.calls} == {
        "auth.test",
        "apps.connections.open",
        "conversations.info",
    }
    assert slack.posts == slack.webhook_posts == []
    assert discord.channel_messages == discord.webhook_messages == []


# demo, bare usage-bot, --version


def next_steps_shown(out: str) -> bool:
    return all(step in out for step in ("usage-bot check", "usage-bot doctor", "usage-bot run"))


async def test_demo_runs_offline_with_nothing_configured(tmp_path: Path) -> None:
    machine = new_machine(tmp_path / "m")
    result = await machine.run("demo", "--speed", "3000", "--hours", "2")
    assert result.code == 0, result
    assert result.err == "", result
    assert result.seconds < 30
    assert "Claude usage: default" in result.out
    for label in ("5-hour", "Weekly (all models)", "Weekly (Fable)"):
        assert label in result.out
    assert re.search(r"\b\d+(\.\d)?%", result.out)
    assert "Extra usage:" in result.out
    assert next_steps_shown(result.out)
    assert len([line for line in result.out.splitlines() if line.lstrip().startswith("[")]) >= 1
    # The simulated 5-hour window climbs past both thresholds within two hours.
    alerts = [line for line in result.out.splitlines() if "default: 5-hour limit at" in line]
    assert [line[:2] for line in alerts] == ["! ", "!!"], result.out


async def test_demo_runs_offline_even_with_a_proxy_in_the_environment(tmp_path: Path) -> None:
    proxy = f"http://127.0.0.1:{closed_port()}"
    machine = new_machine(
        tmp_path / "m", HTTP_PROXY=proxy, HTTPS_PROXY=proxy, ALL_PROXY=proxy, http_proxy=proxy
    )
    result = await machine.run("demo", "--speed", "3000", "--hours", "2")
    assert result.code == 0, result
    assert "Cannot reach" not in result.out
    assert "5-hour" in result.out


async def test_bare_usage_bot_with_nothing_configured_explains_and_shows_the_demo(
    tmp_path: Path,
) -> None:
    """At its default speed the demo takes ~18 s; read up to the first report, then Ctrl-C."""
    machine = new_machine(tmp_path / "m", PYTHONUNBUFFERED="1")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "usage_bot",
        env=machine.env,
        cwd=machine.cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(20):
            while not any(line.startswith("  Weekly (Fable)") for line in lines):
                line = (await process.stdout.readline()).decode()
                assert line, "usage-bot ended early:\n" + "".join(lines)
                lines.append(line)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 10)
    text = "".join(lines)
    assert text.startswith("usage-bot: nothing is configured yet")
    for setting in ("CLAUDE_CODE_OAUTH_TOKEN", "SLACK_BOT_TOKEN", "DISCORD_BOT_TOKEN"):
        assert setting in text
    assert "`claude`" in text
    assert "usage-bot doctor" in text
    assert "demo" in text.splitlines()[0]
    assert "5-hour" in text
    assert "%" in text
    # Ctrl-C stops the demo cleanly.
    assert process.returncode == 130, out.decode() + err.decode()
    assert "Traceback" not in err.decode()


@pytest.mark.parametrize(
    "args",
    [
        ("--speed", "0"),
        ("--speed", "-5"),
        ("--speed", "fast"),
        ("--hours", "-1"),
        ("--hours", "0"),
        ("--hours", "100000"),
    ],
)
async def test_the_demo_refuses_arguments_that_make_no_sense(
    tmp_path: Path, args: tuple[str, str]
) -> None:
    machine = new_machine(tmp_path / "m")
    result = await machine.run("demo", *args, deadline=20)
    assert result.code == 2, result
    assert f"argument {args[0]}:" in result.err
    assert "Traceback" not in result.err
    assert result.out == ""


def test_the_demo_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    machine = new_machine(tmp_path / "m")
    command = (
        f"{shlex.quote(sys.executable)} -m usage_bot demo --speed 100000 --hours 12 | head -2; "
        'echo "exit ${PIPESTATUS[0]}" >&2'
    )
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run(
        [bash, "-c", command],
        env=machine.env,
        cwd=machine.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert len(done.stdout.splitlines()) == 2
    assert done.stderr.strip().splitlines()[-1] == "exit 0", done.stderr
    assert "Error" not in done.stderr, done.stderr
    assert "cannot reach console" not in done.stderr


@pytest.mark.parametrize("width", [40, 100])
async def test_the_demo_fits_its_terminal_and_wraps_between_words(width: int) -> None:
    out = io.StringIO()
    await run_demo(speed=20000, hours=6, out=out, width=width)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    words = set(out.getvalue().split())
    # Wrapped between words: the sentences' words come out whole.
    for word in ("simulated", "threshold", "accelerated", "configured"):
        assert not any(w.startswith(word[:5]) and w != word and word.startswith(w) for w in words)
    # The alerts, each wrapped under its marker ("! " or "!!", as the machine's load lets
    # the simulated hours pass between polls).
    assert any(re.match(r"!(!| ) default: 5-hour limit at", line) for line in lines)


async def test_the_demo_keeps_log_lines_off_its_screen(tmp_path: Path) -> None:
    machine = new_machine(tmp_path / "m", USAGE_BOT_LOG_LEVEL="INFO")
    result = await machine.run("demo", "--speed", "100000", "--hours", "6")
    assert result.code == 0, result
    assert result.err == "", result


async def test_version(tmp_path: Path) -> None:
    machine = new_machine(tmp_path / "m")
    runs = [machine.run("--version")]
    script = shutil.which("usage-bot", path=str(Path(sys.executable).parent))
    if script is not None:
        runs.append(
            usage_bot_script(script, "--version", env=machine.env, cwd=machine.cwd),
        )
    for result in await asyncio.gather(*runs):
        assert result.code == 0, result
        assert result.out.strip() == f"usage-bot {usage_bot.__version__}"
        assert result.err == ""


async def usage_bot_script(script: str, *args: str, env: Mapping[str, str], cwd: Path) -> Result:
    """The installed ``usage-bot`` console script rather than ``python -m``."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        script,
        *args,
        env=dict(env),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode(), time.monotonic() - started)


# A newcomer's typos and half-done setups


async def test_a_misspelled_variable_is_named_with_the_nearest_setting(
    machine: Machine,
) -> None:
    machine.env["SLACK_BOT_TOKN"] = SLACK_BOT_TOKEN
    (machine.cwd / ".env").write_text("USAGE_BOT_THRESHOLD=70\n", encoding="utf-8")
    doctor = await machine.run("doctor")
    check = await machine.run("check")
    for result in (doctor, check):
        assert "SLACK_BOT_TOKN: no such setting; did you mean SLACK_BOT_TOKEN?" in (
            result.out + result.err
        ), result
        assert "USAGE_BOT_THRESHOLD: no such setting; did you mean USAGE_BOT_THRESHOLDS?" in (
            result.out + result.err
        ), result
        assert_clean(result)
    assert "All good." not in doctor.out
    assert check.code == 0, check
    # Said once: as a doctor line, not also as a log line before it.
    assert (doctor.out + doctor.err).count("SLACK_BOT_TOKN") == 1


async def test_a_half_done_chat_setup_never_stops_check_and_doctor_shows_it_all(
    machine: Machine,
) -> None:
    machine.env["SLACK_BOT_TOKEN"] = SLACK_BOT_TOKEN  # no app token, no signing secret
    check = await machine.run("check")
    assert check.code == 0, check
    assert "Claude usage: default" in check.out
    assert "SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN" in check.err
    doctor = await machine.run("doctor")
    assert doctor.code == 2, doctor  # the first check that failed is a setting
    assert "FAIL  configuration: SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN" in doctor.out
    # The login and the usage endpoint are checked all the same.
    assert "ok    default: login" in doctor.out
    assert "ok    default: usage endpoint" in doctor.out
    assert_clean(check)
    assert_clean(doctor)


async def test_run_still_refuses_a_half_done_chat_setup(machine: Machine) -> None:
    machine.env["SLACK_BOT_TOKEN"] = SLACK_BOT_TOKEN
    result = await machine.run("run")
    assert result.code == 2, result
    assert "SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN" in result.err


# Messages that point the right way


async def test_check_asks_once_so_it_never_promises_the_bot_will_retry(
    machine: Machine, upstream: SimulatedUpstream
) -> None:
    upstream.fail(Fault(status=503))
    result = await machine.run("check")
    assert result.code == 4, result
    assert "Anthropic's usage service failed (HTTP 503); try again soon." in result.err
    assert "the bot" not in result.err


async def test_with_several_accounts_a_failed_one_has_its_section_too(
    tmp_path: Path, upstream: SimulatedUpstream
) -> None:
    machine = new_machine(tmp_path / "m", upstream.url)
    write_login(machine.home / "alice", token=TOKEN, expires_at=later(hours=8))
    machine.env["USAGE_BOT_ACCOUNTS"] = f"alice={machine.home / 'alice'},bob={machine.home / 'bob'}"
    result = await machine.run("check")
    assert result.code == 3, result
    assert "Claude usage: alice" in result.out
    assert "Claude usage: bob" in result.out
    bob = result.out[result.out.index("Claude usage: bob") :]
    assert "No Claude login found for account bob" in " ".join(bob.split())
    # A named account cannot use CLAUDE_CODE_OAUTH_TOKEN: the fix names its own setting.
    assert "USAGE_BOT_ACCOUNTS" in result.err
    assert "CLAUDE_CODE_OAUTH_TOKEN" not in result.err


async def test_claude_config_dir_may_name_the_credentials_file_itself(
    machine: Machine,
) -> None:
    machine.env["CLAUDE_CONFIG_DIR"] = str(machine.home / ".claude" / ".credentials.json")
    result = await machine.run("check")
    assert result.code == 0, result
    assert ".credentials.json/.credentials.json" not in result.out + result.err


async def test_a_login_without_the_profile_scope_is_told_to_log_in_again_not_use_the_file(
    tmp_path: Path,
) -> None:
    machine = new_machine(tmp_path / "m")
    machine.login(scopes=["user:inference"])
    result = await machine.run("check")
    assert result.code == 3, result
    assert "lacks the user:profile scope, only user:inference" in result.err
    assert "log in again with `claude`" in result.err
    assert "((" not in result.err
    assert "from ~/.claude/.credentials.json" not in result.err


async def test_health_says_so_when_another_program_holds_the_port(tmp_path: Path) -> None:
    async def not_ours(_: web.Request) -> web.Response:
        return web.Response(status=404, text="Not Found")

    app = web.Application()
    app.router.add_get("/healthz", not_ours)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        machine = new_machine(tmp_path / "m", USAGE_BOT_HTTP_PORT=str(port))
        result = await machine.run("health")
    finally:
        await runner.cleanup()
    assert result.code == 1, result
    assert "another program may hold the port" in result.err
    assert "USAGE_BOT_HTTP_PORT" in result.err
