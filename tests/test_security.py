"""Security (issue 7): no secret anywhere, no one in where they do not belong.

- every secret the process is configured with, and the Claude login it reads, never
  appears in a log line (at every level, in text and JSON, through the error paths of
  the fault matrix), in what users are shown, or in what ``usage-bot doctor`` and
  ``usage-bot check`` print (doctor shows at most a masked prefix);
- Slack requests without a valid, fresh signature get 401 from the bot's HTTP server;
- the access lists hold for the command in Slack and in Discord;
- the state file is readable by its owner only;
- the container runs as a non-root user, with the Claude login mounted read-only.

Secrets that the log redactor would recognise by their shape are avoided where the
platform allows (the Claude and Discord tokens are not shaped like real ones): a leak of
one of those could not be hidden by the redactor, only by the code never logging it.
"""

from __future__ import annotations

# First: the fake imports discord.py with its audioop DeprecationWarning silenced.
from tests.fakes.discord import (  # isort: skip
    CHANNEL_ID as DISCORD_CHANNEL,
    GUILD_ID,
    WEBHOOK_TOKEN as DISCORD_WEBHOOK_TOKEN,
    FakeDiscord,
    point_discord_at,
)

import asyncio
import gc
import io
import json
import logging
import os
import re
import socket
import stat
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import write_login
from tests.fakes.slack import FakeSlack
from tests.test_faults import (
    ROWS,
    SLACK_APP_TOKEN,
    SLACK_BOT_TOKEN,
    SLACK_SIGNING_SECRET,
    World,
    command_body,
    open_world,
    signed,
    usage,
)
from usage_bot._app import Bot
from usage_bot._clock import FakeClock
from usage_bot._config import Secret, load_settings
from usage_bot._core import build_core
from usage_bot._events import NO_OBSERVER
from usage_bot._logging import configure_logging
from usage_bot._notify import Notifier
from usage_bot._simulator import Fault, SimulatedUpstream
from usage_bot._texts import refused
from usage_bot.frontends import CommandCore
from usage_bot.frontends.discord.app import DiscordFrontEnd
from usage_bot.frontends.discord.notify import DiscordChannelNotifier, DiscordWebhookNotifier
from usage_bot.frontends.slack.http_mode import EVENTS_PATH
from usage_bot.frontends.slack.webhook import SlackWebhookNotifier
from usage_bot.state import open_store
from usage_bot.state.sqlite import SQLiteStore

ROOT = Path(__file__).parent.parent
# Not shaped like real tokens: no redactor can hide them, so if they show, they leaked.
CLAUDE_TOKEN = "zz-claude-login-access-5f0c2a9b7e31d4c8a6"
ENV_TOKEN = "zz-env-oauth-token-8d6e4f2a1b3c9d0e7f"
DISCORD_TOKEN = "zz-discord-bot-token-1c2d3e4f5a6b7c8d9e0f"
REFRESH_TOKEN = "sk-ant-ort01-refresh-token-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"  # write_login's
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
NOISY = ("httpx", "httpcore", "slack_bolt", "slack_sdk", "discord", "apscheduler")
OTHER_GUILD = 1_300_000_000_000_000_001
OTHER_CHANNEL = 1_300_000_000_000_000_002


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """configure_logging replaces the root handlers (pytest's too) and the SDKs' levels."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in NOISY}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, noisy_level in levels.items():
        logging.getLogger(name).setLevel(noisy_level)
    gc.collect()  # an unclosed aiohttp session warns when collected; warnings are errors


class Keep(logging.Handler):
    """Every record, so that each level and format can be rendered from one run."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def raw_text(record: logging.LogRecord) -> str:
    """A record before any redaction: its message and its traceback."""
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        text += "".join(traceback.format_exception(record.exc_info[1]))
    return text


# -- the error paths of the matrix, with every secret configured ------------------------------


def chat_failures(world: World, discord: FakeDiscord) -> list[Any]:
    """Every way an alert post fails in the matrix, to inject one at a time."""
    slack = world.slack
    return [
        lambda: slack.fail("chat.postMessage", status=429, retry_after=1),
        lambda: slack.fail("chat.postMessage", status=500),
        lambda: slack.fail("chat.postMessage", error="invalid_auth"),
        lambda: slack.fail("chat.postMessage", error="channel_not_found"),
        lambda: slack.remove_bot_from(world.settings.slack.alert_channel or ""),
        lambda: slack.fail_webhook(status=404),
        lambda: slack.fail_webhook(status=429),
        lambda: slack.fail_webhook(status=500),
        lambda: discord.fail("POST /channels/{id}/messages", status=429, retry_after=1),
        lambda: discord.fail("POST /channels/{id}/messages", status=500),
        lambda: discord.fail("POST /channels/{id}/messages", status=403),
        lambda: discord.fail("POST /channels/{id}/messages", status=401),
        lambda: discord.fail("POST /webhooks/{id}/{token}", status=404),
        lambda: discord.fail("POST /webhooks/{id}/{token}", status=429, retry_after=1),
        lambda: discord.fail("POST /webhooks/{id}/{token}", status=500),
    ]


async def bad_slack_requests(world: World) -> None:
    assert world.events_url is not None
    body = command_body(world.slack)
    stale = signed(body) | {"X-Slack-Request-Timestamp": str(int(time.time()) - 600)}
    async with httpx.AsyncClient(trust_env=False) as client:
        for headers in ({}, signed(body, secret="not-the-secret"), stale):
            response = await client.post(world.events_url, content=body, headers=headers)
            assert response.status_code == 401


async def gauntlet(world: World, discord: FakeDiscord, shown: list[str]) -> None:
    """Each row of the matrix in turn, with a chat failure injected meanwhile."""
    front = DiscordFrontEnd(
        world.settings.discord,
        commands=CommandCore(service=world.service, clock=world.clock),
        clock=world.clock,
        store=world.store,
        observer=NO_OBSERVER,
        guild_ready_timeout=0.01,
    )
    await front.start()
    try:
        await discord.wait_until_ready()
        failures = chat_failures(world, discord)
        await world.poll(0)
        for i, row in enumerate(ROWS):
            failures[i % len(failures)]()
            world.clock.advance(60)
            row.begin(world)
            shown.append(await world.command())
            if i % 5 == 0:
                callback = await discord.dispatch_command("claude-usage")
                shown.append(json.dumps(callback.data))
            world.upstream.payload = usage(96 if i % 2 else 50)
            for _ in range(6):
                await world.poll()
            row.end(world)
            for _ in range(2):
                await world.poll(600)
            if i == len(ROWS) // 2:
                await discord.drop_gateway()
                await discord.wait_until_ready()
        await bad_slack_requests(world)
        await world.poll(3600)  # the hourly retries of what was not retryable
    finally:
        await front.stop()
    shown.extend(json.dumps(call.args) for call in world.slack.calls)
    shown.extend(json.dumps(post) for post in world.slack.webhook_posts)
    shown.extend(json.dumps(request.json) for request in discord.requests)


def discord_notifiers(discord: FakeDiscord) -> list[Notifier]:
    """The alert channel and the webhook, as the settings below configure them."""
    return [
        DiscordChannelNotifier(
            token=Secret(DISCORD_TOKEN), channel_id=DISCORD_CHANNEL, api_base_url=discord.api_url
        ),
        DiscordWebhookNotifier(url=Secret(discord.webhook_url), api_base_url=discord.api_url),
    ]


async def env_token_paths(world: World, shown: list[str]) -> None:
    """CLAUDE_CODE_OAUTH_TOKEN instead of a login file, through the upstream's failures."""
    await world.poll(0)
    for fault in (
        Fault(status=401, body=b'{"type":"error","error":{"type":"authentication_error"}}'),
        Fault(status=429, headers={"retry-after": "60"}),
        Fault(status=503),
        Fault(status=200, body=b"not json"),
    ):
        world.clock.advance(600)
        world.upstream.fail(fault)
        shown.append(await world.command())
        await world.poll(0)


async def socket_mode_paths(world: World, shown: list[str]) -> None:
    """SLACK_APP_TOKEN at work: connect, drop, reconnect, answer."""
    shown.append(await world.command())
    await world.slack.drop_socket()
    await world.slack.wait_for_socket()
    shown.append(await world.command())


async def test_no_secret_in_any_log_line_or_anything_shown(tmp_path: Path) -> None:
    keep = Keep()
    shown: list[str] = []
    configured: set[str] = set()
    redactor = configure_logging(level="DEBUG", fmt="text", stream=io.StringIO())
    logging.getLogger().addHandler(keep)
    async with FakeDiscord(bot_token=DISCORD_TOKEN) as discord:
        with point_discord_at(discord):
            env = {
                "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
                "DISCORD_ALERT_CHANNEL_ID": str(DISCORD_CHANNEL),
                "DISCORD_WEBHOOK_URL": discord.webhook_url,
                "DISCORD_API_BASE_URL": discord.api_url,
                "DISCORD_GATEWAY_URL": discord.gateway_url,
            }
            async with open_world(
                tmp_path / "files",
                token=CLAUDE_TOKEN,
                slack_alerts=True,
                client_timeout=httpx.Timeout(0.2, connect=1.0),
                notifiers=discord_notifiers(discord),
                env=env,
            ) as world:
                # The fake's webhook URL is known only now: as SLACK_WEBHOOK_URL would be.
                webhook = world.slack.webhook_url
                world.scheduler.courier.add(SlackWebhookNotifier(url=Secret(webhook)))
                configured.update([*world.settings.secrets(), webhook])
                redactor.add(configured)
                await gauntlet(world, discord, shown)
    async with open_world(
        tmp_path / "env", token=ENV_TOKEN, env={"CLAUDE_CODE_OAUTH_TOKEN": ENV_TOKEN}
    ) as world:
        configured.update(world.settings.secrets())
        redactor.add(configured)
        await env_token_paths(world, shown)
    async with open_world(tmp_path / "socket", socket_mode=True, slack_alerts=True) as world:
        configured.update(world.settings.secrets())
        redactor.add(configured)
        await socket_mode_paths(world, shown)

    secrets = configured | {CLAUDE_TOKEN, REFRESH_TOKEN, DISCORD_WEBHOOK_TOKEN}
    assert {ENV_TOKEN, DISCORD_TOKEN, SLACK_BOT_TOKEN, SLACK_APP_TOKEN} <= secrets
    assert SLACK_SIGNING_SECRET in secrets
    assert webhook in secrets
    records = keep.records
    assert len(records) > 500
    raw = "\n".join(raw_text(record) for record in records)
    # The login read from a file is not in the settings: nothing even tries to log it.
    for secret in (CLAUDE_TOKEN, REFRESH_TOKEN, DISCORD_TOKEN, ENV_TOKEN):
        assert secret not in raw
    for level in LEVELS:
        for fmt in FORMATS:
            out = io.StringIO()
            configure_logging(level=level, fmt=fmt, secrets=configured, stream=out)
            [handler] = logging.getLogger().handlers
            for record in records:
                if record.levelno >= logging.getLogger(record.name).getEffectiveLevel():
                    handler.handle(record)
            logged = out.getvalue()
            assert logged, f"nothing logged at {level} in {fmt}"
            for secret in secrets:
                assert secret not in logged, f"a secret in the {fmt} log at {level}"
    everything_shown = "\n".join(shown)
    assert "Last known values" in everything_shown
    for secret in secrets:
        assert secret not in everything_shown


# -- what the command line prints ---------------------------------------------------------------


async def run_cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "usage_bot",
        *args,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def test_doctor_shows_at_most_a_masked_prefix_and_check_no_secret(tmp_path: Path) -> None:
    clock = FakeClock()
    write_login(tmp_path / "claude", token=CLAUDE_TOKEN)
    async with (
        SimulatedUpstream(clock=clock, token=CLAUDE_TOKEN) as upstream,
        FakeSlack() as slack,
        FakeDiscord(bot_token=DISCORD_TOKEN) as discord,
    ):
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
            "USAGE_BOT_API_BASE_URL": upstream.url,
            "USAGE_BOT_STATE": str(tmp_path / "usage-bot.sqlite3"),
            "USAGE_BOT_LOG_LEVEL": "DEBUG",
            "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
            "SLACK_APP_TOKEN": SLACK_APP_TOKEN,
            "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
            "SLACK_ALERT_CHANNEL": "C0ALERTS01",
            "SLACK_WEBHOOK_URL": slack.webhook_url,
            "SLACK_API_BASE_URL": slack.api_url,
            "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
            "DISCORD_ALERT_CHANNEL_ID": str(DISCORD_CHANNEL),
            "DISCORD_WEBHOOK_URL": discord.webhook_url,
            "DISCORD_API_BASE_URL": discord.api_url,
            "DISCORD_GATEWAY_URL": discord.gateway_url,
        }
        code, doctor = await run_cli("doctor", env=env, cwd=tmp_path)
        upstream.fail(status=401, body=b'{"type":"error","error":{"type":"authentication_error"}}')
        rejected, check = await run_cli("check", env=env, cwd=tmp_path)
        with_env_token = {**env, "CLAUDE_CODE_OAUTH_TOKEN": ENV_TOKEN}
        refused, env_check = await run_cli("check", env=with_env_token, cwd=tmp_path)
    assert code == 0, doctor
    assert "slack: bot token" in doctor
    assert "discord" in doctor
    assert (rejected, refused) == (3, 3), check + env_check
    assert "Anthropic rejected the Claude login" in check
    printed = doctor + check + env_check
    for token in (CLAUDE_TOKEN, ENV_TOKEN, SLACK_BOT_TOKEN, SLACK_APP_TOKEN, DISCORD_TOKEN):
        assert token[:6] not in printed, "more than a 5-character prefix of a token"
    for secret in (SLACK_SIGNING_SECRET, REFRESH_TOKEN, DISCORD_WEBHOOK_TOKEN[:12]):
        assert secret not in printed
    assert "/services/T000/B000/XXXX" not in printed
    masked = re.findall(r"token (\S+…)", doctor) + re.findall(r"(\S*…) (?:is|opens)", doctor)
    assert masked, doctor
    assert all(len(prefix.rstrip("…")) <= 5 for prefix in masked)


# -- who may get in -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_slack_requests_without_a_fresh_valid_signature_get_401(tmp_path: Path) -> None:
    """Through the bot's own HTTP server, as ``usage-bot run`` serves it in HTTP mode."""
    clock = FakeClock()
    write_login(tmp_path / "claude", now=clock.now())
    async with SimulatedUpstream(clock=clock, token=None) as upstream, FakeSlack() as slack:
        port = free_port()
        settings = load_settings(
            {
                "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
                "USAGE_BOT_STATE": str(tmp_path / "usage-bot.sqlite3"),
                "USAGE_BOT_API_BASE_URL": upstream.url,
                "USAGE_BOT_HTTP_HOST": "127.0.0.1",
                "USAGE_BOT_HTTP_PORT": str(port),
                "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
                "SLACK_API_BASE_URL": slack.api_url,
            },
            dotenv_path=None,
        )
        bot = Bot(settings, clock=clock, out=io.StringIO())
        await bot.start()
        try:
            url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
            body = command_body(slack)
            valid = signed(body)
            attempts = {
                "missing": {"Content-Type": "application/x-www-form-urlencoded"},
                "wrong": signed(body, secret="not-the-signing-secret"),
                "stale": {**valid, "X-Slack-Request-Timestamp": str(int(time.time()) - 301)},
                "other body": signed(command_body(slack, "share")),
            }
            async with httpx.AsyncClient(trust_env=False) as client:
                for name, headers in attempts.items():
                    response = await client.post(url, content=body, headers=headers)
                    assert response.status_code == 401, name
                answer = await client.post(url, content=body, headers=valid)
            assert answer.status_code == 200
        finally:
            await bot.stop()


async def test_slack_access_lists(tmp_path: Path) -> None:
    env = {"SLACK_ALLOWED_USERS": "U0ALLOWED1", "SLACK_ALLOWED_CHANNELS": "C0ALLOWED1"}
    async with open_world(tmp_path, env=env) as world:
        stranger = await world.command(user="U0STRANGER", channel="C0ALLOWED1")
        elsewhere = await world.command(user="U0ALLOWED1", channel="C0ELSEWHERE")
        assert world.upstream.requests == []
        allowed = await world.command(user="U0ALLOWED1", channel="C0ALLOWED1")
    assert stranger == refused("user", "slack")
    assert elsewhere == refused("channel", "slack")
    assert "85%" in allowed


async def test_discord_access_lists(tmp_path: Path) -> None:
    clock = FakeClock()
    write_login(tmp_path / "claude", now=clock.now())
    async with (
        SimulatedUpstream(clock=clock) as upstream,
        FakeDiscord(bot_token=DISCORD_TOKEN) as discord,
    ):
        settings = load_settings(
            {
                "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
                "USAGE_BOT_API_BASE_URL": upstream.url,
                "USAGE_BOT_HTTP_PORT": "0",
                "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
                "DISCORD_API_BASE_URL": discord.api_url,
                "DISCORD_GATEWAY_URL": discord.gateway_url,
                "DISCORD_ALLOWED_GUILDS": str(GUILD_ID),
                "DISCORD_ALLOWED_CHANNELS": str(DISCORD_CHANNEL),
            },
            dotenv_path=None,
        )
        core = build_core(settings, clock=clock, trust_env=False)
        store = await SQLiteStore.open(tmp_path / "state.sqlite3")
        front = DiscordFrontEnd(
            settings.discord,
            commands=CommandCore(service=core.service, clock=clock),
            clock=clock,
            store=store,
            observer=NO_OBSERVER,
            guild_ready_timeout=0.01,
        )
        with point_discord_at(discord):
            try:
                await front.start()
                await discord.wait_until_ready()
                said = {
                    refused("server", "discord"): await discord.dispatch_command(
                        "claude-usage", guild_id=OTHER_GUILD
                    ),
                    refused("direct_message", "discord"): await discord.dispatch_command(
                        "claude-usage", guild_id=None
                    ),
                    refused("channel", "discord"): await discord.dispatch_command(
                        "claude-usage", channel_id=OTHER_CHANNEL
                    ),
                }
                assert upstream.requests == []
                allowed = await discord.dispatch_command("claude-usage")
                await discord.wait_until(lambda: bool(discord.followups) or allowed.type == 4)
            finally:
                await front.stop()
                await store.close()
                await core.aclose()
    for refusal, callback in said.items():
        assert (callback.type, callback.content, callback.embeds) == (4, refusal, [])
    assert len(upstream.requests) == 1


# -- files and containers ---------------------------------------------------------------------


async def test_the_state_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = load_settings(
        {"USAGE_BOT_STATE": str(tmp_path / "new" / "usage-bot.sqlite3")}, dotenv_path=None
    )
    before = os.umask(0)  # not the umask's doing
    try:
        store = await open_store(settings)
        await store.set_value("written", "so that the WAL exists")
    finally:
        os.umask(before)
    try:
        for name in ("usage-bot.sqlite3", "usage-bot.sqlite3-wal", "usage-bot.sqlite3-shm"):
            mode = stat.S_IMODE((tmp_path / "new" / name).stat().st_mode)
            assert mode == 0o600, f"{name} is {oct(mode)}"
    finally:
        await store.close()


def test_the_image_runs_as_a_non_root_user() -> None:
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    instructions = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    final_stage = max(i for i, parts in enumerate(instructions) if parts[0].upper() == "FROM")
    users = [parts[1].strip() for parts in instructions[final_stage:] if parts[0] == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_compose_and_kubernetes_mount_the_claude_login_read_only() -> None:
    [compose] = parse_yaml((ROOT / "deploy" / "docker-compose.yml").read_text(encoding="utf-8"))
    service = compose["services"]["usage-bot"]
    assert not str(service["user"]).split(":")[0].strip('"').startswith(("0", "root"))
    claude = [v for v in service["volumes"] if v.split(":")[1:2] == ["/claude"]]
    assert claude, service["volumes"]
    assert all(v.endswith(":ro") for v in claude)
    assert service["read_only"] == "true"

    documents = parse_yaml((ROOT / "deploy" / "kubernetes.yaml").read_text(encoding="utf-8"))
    [deployment] = [d for d in documents if d.get("kind") == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] == "true"
    assert pod["securityContext"]["runAsUser"] != "0"
    [container] = pod["containers"]
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == "/claude"]
    assert [m.get("readOnly") for m in mounts] == ["true"]
    assert container["securityContext"]["allowPrivilegeEscalation"] == "false"

    unit = (ROOT / "deploy" / "usage-bot@.service").read_text(encoding="utf-8")
    assert re.search(r"^User=%i$", unit, re.M)
    assert re.search(r"^ProtectHome=read-only$", unit, re.M), "~/.claude read-only"


def parse_yaml(text: str) -> list[Any]:
    """The block YAML of the deploy files (maps, lists, scalars, flow lists, ``|``
    scalars, comments, several documents): enough to read them without PyYAML."""
    documents = []
    for chunk in re.split(r"^---\s*$", text, flags=re.M):
        lines = _lines(chunk)
        if lines:
            documents.append(_block(lines, 0, lines[0][0])[0])
    return documents


def _lines(chunk: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    literal: int | None = None
    for raw in chunk.splitlines():
        indent = len(raw) - len(raw.lstrip(" "))
        text = raw.strip()
        if literal is not None and (not text or indent > literal):
            continue  # inside a | or > scalar: its content is not needed here
        literal = None
        if not text or text.startswith("#"):
            continue
        text = re.sub(r"\s+#\s.*$", "", text) if text.count('"') % 2 == 0 else text
        if re.search(r":\s*[|>][-+]?$", text):
            literal = indent
            text = re.sub(r"[|>][-+]?$", '""', text)
        lines.append((indent, text))
    return lines


def _block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("-"):
            rest = lines[i][1][1:].strip()
            if re.match(r"^[A-Za-z0-9_.\-]+:(\s|$)", rest):
                lines[i] = (indent + 2, rest)  # "- key: value" opens a mapping
                value, i = _block(lines, i, indent + 2)
            else:
                value, i = _scalar(rest), i + 1
            items.append(value)
        return items, i
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        key, _, rest = lines[i][1].partition(":")
        i += 1
        value: Any = None
        if rest.strip():
            value = _scalar(rest.strip())
        elif i < len(lines) and (
            lines[i][0] > indent or (lines[i][0] == indent and lines[i][1].startswith("- "))
        ):
            value, i = _block(lines, i, lines[i][0])
        mapping[key.strip().strip('"')] = value
    return mapping, i


def _scalar(text: str) -> Any:
    if text.startswith("["):
        return json.loads(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def test_the_yaml_reader_reads_what_it_claims() -> None:
    [doc] = parse_yaml(
        'a:\n  b: 1 # note\n  c:\n    - x\n    - name: y\n      v: "z"\n  d: |\n'
        '    {"not": [parsed]}\n  e: ["f", "g"]\nh:\n- i\n'
    )
    assert doc == {
        "a": {"b": "1", "c": ["x", {"name": "y", "v": "z"}], "d": "", "e": ["f", "g"]},
        "h": ["i"],
    }
