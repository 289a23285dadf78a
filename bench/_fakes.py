"""The outside world, served from the benchmark's process: the test suite's fakes with a
clock on what they receive, Claude logins on disk, and signed Slack slash commands."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.slack import FakeSlack, JsonObject
from usage_bot._clock import SystemClock
from usage_bot._simulator import SimulatedUpstream

# What the benchmark calls a realistic upstream: the usage endpoint answers in ~300 ms.
UPSTREAM_LATENCY = 0.3
SIGNING_SECRET = "bench-signing-secret-0123456789ab"  # noqa: S105 - a fake, for the fake
BOT_TOKEN = "xoxb-bench-not-a-real-token-benchbenchbench"  # noqa: S105
APP_TOKEN = "xapp-1-A0APP-3333333333-bench0123456789bench0123456789"  # noqa: S105
ALERT_CHANNEL = "C0ALERTS"


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request the upstream received: when (``time.monotonic()``) and with which token."""

    at: float
    token: str


class TimedUpstream(SimulatedUpstream):
    """The simulated usage endpoint, accepting any token, noting when each request came."""

    def __init__(self, *, latency: float = UPSTREAM_LATENCY) -> None:
        super().__init__(clock=SystemClock(), token=None, latency=latency)
        self.arrivals: list[Arrival] = []

    async def _usage(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.arrivals.append(Arrival(time.monotonic(), token))
        return await super()._usage(request)

    def since(self, moment: float) -> list[Arrival]:
        return [a for a in self.arrivals if a.at >= moment]

    def last(self) -> float:
        return self.arrivals[-1].at if self.arrivals else float("-inf")


class TimedSlack(FakeSlack):
    """FakeSlack, noting when each ``chat.postMessage`` arrived (``time.monotonic()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.posted_at: list[float] = []

    def _post_message(self, args: JsonObject) -> JsonObject:
        answer = super()._post_message(args)
        if answer["ok"]:
            self.posted_at.append(time.monotonic())
        return answer


def token_for(account: str) -> str:
    return f"sk-ant-oat01-bench-{account}-" + "A" * 32


def write_logins(root: Path, names: list[str]) -> dict[str, Path]:
    """A Claude config dir per account, each with its own token, valid for a day."""
    expires = datetime.now(UTC) + timedelta(days=1)
    dirs = {}
    for name in names:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        login = {
            "claudeAiOauth": {
                "accessToken": token_for(name),
                "refreshToken": "sk-ant-ort01-bench-refresh-" + "B" * 32,
                "expiresAt": int(expires.timestamp() * 1000),
                "scopes": ["user:inference", "user:profile"],
                "subscriptionType": "max",
                "rateLimitTier": "default_claude_max_20x",
            }
        }
        (folder / ".credentials.json").write_text(json.dumps(login), encoding="utf-8")
        dirs[name] = folder
    return dirs


def accounts_variable(dirs: dict[str, Path]) -> str:
    """``USAGE_BOT_ACCOUNTS`` for these config dirs."""
    return ",".join(f"{name}={path}" for name, path in dirs.items())


def slash_command(
    slack: FakeSlack, *, text: str = "", user: int = 0, tag: str = "bench"
) -> tuple[bytes, dict[str, str]]:
    """A ``/claude-usage`` request as Slack sends it in HTTP mode: body and signed headers."""
    body = urlencode(
        {
            "token": "fake-verification-token",
            "team_id": "T123",
            "team_domain": "fake-team",
            "channel_id": "C123",
            "channel_name": "general",
            "user_id": f"U{user:06d}",
            "user_name": f"user{user}",
            "command": "/claude-usage",
            "text": text,
            "api_app_id": slack.app_id,
            "is_enterprise_install": "false",
            "response_url": slack.response_url(tag),
            "trigger_id": f"{user}.T123.bench",
        }
    ).encode()
    timestamp = str(int(time.time()))
    base = b"v0:" + timestamp.encode() + b":" + body
    signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }
    return body, headers


async def until(condition: Callable[[], bool], *, timeout: float) -> bool:  # noqa: ASYNC109
    """Poll ``condition`` every millisecond; False if it is still false after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.001)
    return True
