"""Shared fixtures: a fake clock, Claude logins on disk, settings, the simulated upstream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes.slack import FakeSlack
from usage_bot._clock import FakeClock
from usage_bot._config import Settings, load_settings
from usage_bot._simulator import SimulatedUpstream

TOKEN = "sk-ant-oat01-test-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def write_login(
    path: Path,
    *,
    token: str = TOKEN,
    expires_at: datetime | None = None,
    scopes: list[str] | None = None,
    now: datetime | None = None,
) -> Path:
    """Write a ``.credentials.json`` as Claude Code does; ``path`` is the config dir."""
    path.mkdir(parents=True, exist_ok=True)
    # Valid for the fake clock's "now" and for the real one alike, unless told otherwise.
    expiry = expires_at or (max(now or FakeClock().now(), datetime.now(UTC)) + timedelta(hours=8))
    data = {
        "claudeAiOauth": {
            "accessToken": token,
            "refreshToken": "sk-ant-ort01-refresh-token-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
            "expiresAt": int(expiry.timestamp() * 1000),
            "scopes": scopes if scopes is not None else ["user:inference", "user:profile"],
            "subscriptionType": "max",
            "rateLimitTier": "default_claude_max_20x",
        }
    }
    file = path / ".credentials.json"
    file.write_text(json.dumps(data), encoding="utf-8")
    return file


@pytest.fixture
def claude_dir(tmp_path: Path, clock: FakeClock) -> Path:
    """A Claude config dir with a valid login for :data:`TOKEN`."""
    folder = tmp_path / "claude"
    write_login(folder, now=clock.now())
    return folder


@pytest.fixture
def make_settings(claude_dir: Path, tmp_path: Path) -> Callable[..., Settings]:
    """Settings as the environment would give them, against ``claude_dir``."""

    def make(**env: str) -> Settings:
        base = {
            "CLAUDE_CONFIG_DIR": str(claude_dir),
            "USAGE_BOT_STATE": str(tmp_path / "state.sqlite3"),
            "USAGE_BOT_HTTP_PORT": "0",
        }
        base.update(env)
        return load_settings(base, dotenv_path=None)

    return make


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """The local fake of Slack: Web API, webhooks, response_url and Socket Mode."""
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def upstream(clock: FakeClock) -> AsyncIterator[SimulatedUpstream]:
    """The simulated usage endpoint on loopback, accepting :data:`TOKEN`."""
    async with SimulatedUpstream(clock=clock, token=TOKEN) as server:
        yield server
