"""Issue 5's "Done when", end to end: ``usage-bot run`` polling the simulated upstream every
second and alerting in FakeSlack's channel through the real slack-sdk, in Socket Mode.

Each test runs the real process as a subprocess, on its own state file, with its own
FakeSlack and upstream. Where a test needs the process to believe more time has passed
than has (a restart after a crashed poster's lease), the in-process :class:`Bot` stands
in, with a clock set ahead. Waits are event-driven: a test waits for what FakeSlack, the
upstream or the state file show, bounded by a timeout, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import write_login
from tests.fakes.slack import FakeSlack
from usage_bot._app import Bot
from usage_bot._clock import FakeClock, SystemClock
from usage_bot._config import load_settings
from usage_bot._delivery import LEASE
from usage_bot._report import to_the_minute
from usage_bot._simulator import SimulatedUpstream
from usage_bot.state.sqlite import SQLiteStore

# Not shaped like any real token, so that a leak would show.
TOKEN = "zz-alert-delivery-token-4b7e1f9a2c"
BOT_TOKEN = "xoxb-1111111111-2222222222-alertdeliveryQQQQQQQQ"
APP_TOKEN = "xapp-1-A0APP-3333333333-alertdeliveryWWWWWWWW"
ACCOUNT = "acme"
CHANNEL = "C0ALERTS1"
POST = "chat.postMessage"
# How long to wait for what the bot does within a poll or two (polls are 1 s apart) or
# a start: only a failing test waits this long, and a busy machine can be very slow.
WAIT = 45.0
HELD = 60.0  # how long a held post would take: longer than any test waits for it

_THRESHOLD = re.compile(r"past the (\d+) % alert threshold")


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def usage(percent: float, resets_at: datetime) -> dict[str, Any]:
    """The upstream's answer: the 5-hour window at ``percent``, a quiet weekly one."""
    return {
        "five_hour": {"utilization": percent, "resets_at": iso(resets_at)},
        "seven_day": {"utilization": 12.0, "resets_at": iso(resets_at + timedelta(days=4))},
        "seven_day_opus": None,
    }


def first_window() -> datetime:
    """A 5-hour window ending in about three hours, with the upstream's odd fraction."""
    now = datetime.now(UTC).replace(second=59, microsecond=570750)
    return now + timedelta(hours=3)


class AheadClock(SystemClock):
    """The real time, ``ahead`` of itself: a process started that much later."""

    def __init__(self, ahead: timedelta) -> None:
        self.ahead = ahead

    def now(self) -> datetime:
        return super().now() + self.ahead


# -- the process -------------------------------------------------------------------------


class BotProcess:
    """``usage-bot run`` as a subprocess; its output goes to files, shown when a test fails."""

    def __init__(self, name: str, env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self._env = env
        self._cwd = cwd
        self._log_path = cwd / f"{name}.log"
        self._log: IO[bytes] = self._log_path.open("wb")
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> BotProcess:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "usage_bot",
            "run",
            env=self._env,
            cwd=self._cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        return self

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def stop(self) -> None:
        """SIGTERM, as a container stop: it must end cleanly, within the 10 s it gets."""
        code = await self._end(signal.SIGTERM, within=10)
        assert code == 0, f"{self.name} ended with {code} on SIGTERM\n{self.output()}"

    async def kill(self) -> None:
        """``kill -9``: no chance to finish anything."""
        code = await self._end(signal.SIGKILL, within=5)
        assert code == -signal.SIGKILL, f"{self.name} ended with {code}\n{self.output()}"

    async def _end(self, signum: int, *, within: float) -> int:
        assert self._process is not None
        if self._process.returncode is None:
            self._process.send_signal(signum)
        try:
            return await asyncio.wait_for(self._process.wait(), within)
        finally:
            self._log.close()

    async def cleanup(self) -> None:
        if self.running:
            await self._end(signal.SIGKILL, within=5)
        self._log.close()

    def output(self) -> str:
        text = self._log_path.read_text(encoding="utf-8", errors="replace")
        return f"--- {self.name}\n{text}"


# -- the scene ---------------------------------------------------------------------------


@dataclass
class Scene:
    """A machine running usage-bot: a Claude login, a working directory, a state file, the
    environment, and the fakes of the upstream and of Slack."""

    root: Path
    slack: FakeSlack
    upstream: SimulatedUpstream
    window: datetime = field(default_factory=first_window)
    processes: list[BotProcess] = field(default_factory=list)
    # What the upstream answered from which request on: (request index, percent, resets_at).
    changes: list[tuple[int, float, datetime]] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def claude_dir(self) -> Path:
        return self.root / "claude"

    @property
    def state(self) -> Path:
        return self.root / "usage-bot.sqlite3"

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.root),
            "USAGE_BOT_ACCOUNTS": f"{ACCOUNT}={self.claude_dir}",
            "USAGE_BOT_API_BASE_URL": self.upstream.url,
            "USAGE_BOT_POLL_SECONDS": "1",
            "USAGE_BOT_THRESHOLDS": "80,95",
            "USAGE_BOT_STATE": str(self.state),
            "USAGE_BOT_HTTP_PORT": "0",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_ALERT_CHANNEL": CHANNEL,
            "SLACK_API_BASE_URL": self.slack.api_url,
            **self.extra_env,
        }

    def login(self, *, expired: bool = False) -> None:
        now = datetime.now(UTC)
        expires_at = now - timedelta(minutes=5) if expired else now + timedelta(hours=8)
        write_login(self.claude_dir, token=TOKEN, expires_at=expires_at)

    def serve(self, percent: float, resets_at: datetime | None = None) -> None:
        """From the next request on, the upstream says the 5-hour window is at ``percent``."""
        resets_at = resets_at or self.window
        self.upstream.payload = usage(percent, resets_at)
        self.changes.append((len(self.upstream.requests), percent, resets_at))

    def served(self) -> list[tuple[float, datetime]]:
        """What each request so far was answered, in order."""
        answers = []
        for index in range(len(self.upstream.requests)):
            _, percent, resets_at = max(c for c in self.changes if c[0] <= index)
            answers.append((percent, resets_at))
        return answers

    async def start(self) -> BotProcess:
        process = BotProcess(f"usage-bot-{len(self.processes) + 1}", self.env, self.root)
        self.processes.append(process)
        return await process.start()

    @asynccontextmanager
    async def in_process(self, *, ahead: timedelta = timedelta(0)) -> AsyncIterator[Bot]:
        """The same bot in this process, its clock ``ahead`` of the real time."""
        bot = Bot(
            load_settings(self.env, dotenv_path=None), clock=AheadClock(ahead), out=io.StringIO()
        )
        try:
            await bot.start()
            yield bot
        finally:
            await bot.stop()

    async def wait_for(
        self, what: str, check: Callable[[], bool | Awaitable[bool]], *, within: float = WAIT
    ) -> None:
        """Wait until ``check()`` is true, looking every 50 ms; fail after ``within`` s."""
        deadline = time.monotonic() + within
        while True:
            done = check()
            if inspect.isawaitable(done):
                done = await done
            if done:
                return
            if time.monotonic() > deadline:
                logs = "\n".join(p.output() for p in self.processes)
                raise AssertionError(
                    f"no {what} within {within:.0f} s\n{alerts(self.slack)}\n{logs}"
                )
            await asyncio.sleep(0.05)

    async def asked(self, requests: int = 1) -> None:
        """Wait until the upstream has been asked ``requests`` more times."""
        target = len(self.upstream.requests) + requests
        await self.wait_for(f"{requests} request(s)", lambda: len(self.upstream.requests) >= target)

    async def polled(self, polls: int = 1) -> None:
        """Wait until the upstream has been asked ``polls`` more times and the poll before
        that last request is finished: alerts decided, deliveries tried."""
        target = len(self.upstream.requests) + polls + 1
        await self.wait_for(f"{polls} poll(s)", lambda: len(self.upstream.requests) >= target)

    async def alerted(self, count: int) -> None:
        await self.wait_for(
            f"{count} alert(s) in {CHANNEL}", lambda: len(alerts(self.slack)) >= count
        )

    async def failed_checks(self, count: int) -> None:
        """Wait until ``count`` polls in a row have failed, as the state file shows."""
        seen: set[datetime] = set()
        async with self.store() as store:

            async def enough() -> bool:
                incident = (await store.load_ledger(ACCOUNT)).incident
                if incident.last_failed_check is not None:
                    seen.add(incident.last_failed_check)
                return len(seen) >= count

            await self.wait_for(f"{count} failed poll(s)", enough)

    async def settled(self, *, attempts: int = 0) -> None:
        """Wait until the state file shows no post under way: every delivery confirmed, or
        (``attempts``) given back after that many failed tries, to be retried later."""
        async with self.store() as store:

            async def settled() -> bool:
                pending = await store.pending(f"slack:{CHANNEL}")
                return all(d.claim is None and d.attempts == attempts for d in pending) and (
                    attempts == 0 or bool(pending)
                )

            await self.wait_for("settled deliveries", settled)

    @asynccontextmanager
    async def store(self) -> AsyncIterator[SQLiteStore]:
        """The state file, opened as another process would."""
        store = await SQLiteStore.open(self.state)
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    async with FakeSlack() as slack, SimulatedUpstream(clock=FakeClock(), token=TOKEN) as upstream:
        scene = Scene(tmp_path, slack, upstream)
        scene.login()
        scene.serve(50)
        try:
            yield scene
        finally:
            for process in scene.processes:
                await process.cleanup()


# -- what reached the channel ------------------------------------------------------------


def alert_posts(slack: FakeSlack) -> list[dict[str, Any]]:
    return [post for post in slack.posts if post.get("channel") == CHANNEL]


def alerts(slack: FakeSlack) -> list[str]:
    """What reached the alert channel, in order: ``80 %``, ``95 %``, ``reset``, ``cannot
    read usage``, ``readable again``."""
    return [kind(post["text"]) for post in alert_posts(slack)]


def kind(text: str) -> str:
    if found := _THRESHOLD.search(text):
        return f"{found[1]} %"
    if "has reset" in text or "was reset early" in text:
        return "reset"
    if "cannot read the Claude usage" in text:
        return "cannot read usage"
    if "can read the Claude usage" in text:
        return "readable again"
    return f"? {text}"


def body(post: dict[str, Any]) -> str:
    """Everything a reader sees of a post: its blocks' texts."""
    texts = []
    for block in post["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(element["text"] for element in block.get("elements", ()))
    return "\n".join(texts)


def date_token(moment: datetime) -> str:
    """The start of Slack's token for ``moment``: the nearest minute, as it is shown."""
    return f"<!date^{int(to_the_minute(moment).timestamp())}^"


# -- the climb ---------------------------------------------------------------------------


async def test_a_climb_posts_80_95_and_the_reset_once_each_despite_a_429_and_a_restart(
    scene: Scene,
) -> None:
    slack = scene.slack
    slack.fail(POST, status=429, retry_after=1)
    first = await scene.start()
    await scene.asked()
    scene.serve(85)
    await scene.wait_for("try at the 80 % alert", lambda: bool(slack.calls_to(POST)))
    scene.serve(96)
    await scene.alerted(2)
    await first.stop()

    # A restart in the middle of the window, the upstream still at 96 %: nothing again.
    second = await scene.start()
    await scene.polled()
    assert alerts(slack) == ["80 %", "95 %"]
    next_window = scene.window + timedelta(hours=5)
    scene.serve(3, next_window)
    await scene.alerted(3)
    await scene.polled()
    await second.stop()

    assert alerts(slack) == ["80 %", "95 %", "reset"]
    assert [call.status for call in slack.calls_to(POST)] == [429, 200, 200, 200]
    eighty, ninety_five, reset = (body(post) for post in alert_posts(slack))
    for text, percent in ((eighty, "85 %"), (ninety_five, "96 %")):
        assert f"Account *{ACCOUNT}*" in text
        assert f"used {percent} of its 5-hour limit" in text
        assert f"Resets {date_token(scene.window)}" in text
    # Its end had not come: the percent fell, so Anthropic reset it early.
    assert f"The 5-hour limit of account {ACCOUNT} was reset early by Anthropic" in reset
    assert f"Account *{ACCOUNT}*" in reset
    assert f"Resets {date_token(next_window)}" in reset

    # The history holds every sample the pollers saw, across the restart.
    async with scene.store() as store:
        history = await store.history(ACCOUNT)
    five_hour = [(s.percent, s.resets_at) for s in history if s.limit_id == "five_hour"]
    assert five_hour == scene.served()
    assert len([s for s in history if s.limit_id == "seven_day"]) == len(five_hour)


async def test_expired_credentials_alert_once_with_the_fix_and_once_when_a_login_is_back(
    scene: Scene,
) -> None:
    # At once here; by default a night without Claude Code is no incident (tests/test_alerts).
    scene.extra_env["USAGE_BOT_EXPIRED_LOGIN_ALERT_AFTER"] = "0"
    scene.serve(20)
    bot = await scene.start()
    await scene.asked()
    scene.login(expired=True)
    await scene.alerted(1)
    await scene.failed_checks(3)
    scene.login()
    await scene.alerted(2)
    await scene.polled()
    await bot.stop()

    assert alerts(scene.slack) == ["cannot read usage", "readable again"]
    started, ended = (body(post) for post in alert_posts(scene.slack))
    assert f"cannot read the Claude usage of account {ACCOUNT}" in started
    assert "The Claude login expired" in started
    assert "run `claude` on the workstation and log in again" in started
    assert f"account {ACCOUNT} again" in ended
    for post in alert_posts(scene.slack):
        assert TOKEN not in str(post)


# -- kill -9 -----------------------------------------------------------------------------


async def test_kill_9_while_slack_holds_a_post_loses_nothing(scene: Scene) -> None:
    """Slack is slow: the 80 % post hangs. The bot keeps polling meanwhile, and the console
    hears of the 95 % at once. Killed then, before Slack took the post: once the claim's
    lease has passed, the next process posts both, in order, once each."""
    slack = scene.slack
    slack.delay(POST, HELD)
    scene.serve(85)
    doomed = await scene.start()
    await scene.wait_for("post held by Slack", lambda: bool(slack.held))
    scene.serve(96)
    await scene.wait_for("95 % alert on the console", lambda: "at 96 %" in doomed.output())
    # Had the polls waited for Slack, they would have gone on only once the Slack client
    # gave up on the held post (after 10 s), and Slack would have seen it hang up.
    assert slack.calls_to(POST) == [], "the polls waited for Slack"
    await doomed.kill()
    await scene.wait_for("hang-up seen by Slack", lambda: bool(slack.calls_to(POST)))
    assert alerts(slack) == []

    async with scene.in_process(ahead=LEASE):
        await scene.alerted(2)
        await scene.settled()

    assert alerts(slack) == ["80 %", "95 %"]
    assert [call.status for call in slack.calls_to(POST)] == [499, 200, 200]


async def test_kill_9_after_slack_took_the_post_but_before_it_was_confirmed_repeats_it_once(
    scene: Scene,
) -> None:
    """The one documented double post: Slack accepted it, the process died before writing
    that down, so after the lease the next process cannot know and posts it again."""
    slack = scene.slack
    slack.delay(POST, HELD, accepted=True)
    scene.serve(85)
    doomed = await scene.start()
    await scene.wait_for("post held by Slack", lambda: bool(slack.held))
    assert alerts(slack) == ["80 %"]
    await doomed.kill()

    async with scene.in_process(ahead=LEASE):
        await scene.alerted(2)
        scene.serve(96)
        await scene.alerted(3)
        await scene.settled()

    assert alerts(slack) == ["80 %", "80 %", "95 %"]


async def test_kill_9_after_a_confirmed_post_or_a_failed_one_loses_and_repeats_nothing(
    scene: Scene,
) -> None:
    slack = scene.slack
    scene.serve(85)
    first = await scene.start()
    await scene.alerted(1)
    await scene.settled()
    await first.kill()

    slack.fail(POST, status=429, retry_after=3)
    second = await scene.start()
    await scene.asked()
    scene.serve(96)
    await scene.wait_for("try at the 95 % alert", lambda: len(slack.calls_to(POST)) == 2)
    await scene.settled(attempts=1)
    await second.kill()

    async with scene.in_process():
        await scene.alerted(2)
        await scene.settled()

    assert alerts(slack) == ["80 %", "95 %"]
    assert [call.status for call in slack.calls_to(POST)] == [200, 429, 200]


# -- two processes -----------------------------------------------------------------------


async def test_two_processes_sharing_one_state_file_post_each_alert_once(scene: Scene) -> None:
    slack = scene.slack
    slack.fail(POST, status=429, retry_after=1)
    scene.serve(85)
    one, two = await scene.start(), await scene.start()
    await scene.alerted(1)
    scene.serve(96)
    await scene.alerted(2)
    next_window = scene.window + timedelta(hours=5)
    scene.serve(3, next_window)
    await scene.alerted(3)
    await scene.polled()
    await asyncio.gather(one.stop(), two.stop())

    assert all("running: slack" in bot.output() for bot in (one, two))
    assert alerts(slack) == ["80 %", "95 %", "reset"]
    assert [call.status for call in slack.calls_to(POST)] == [429, 200, 200, 200]
    async with scene.store() as store:
        history = await store.history(ACCOUNT)
    five_hour = [(s.percent, s.resets_at) for s in history if s.limit_id == "five_hour"]
    assert sorted(five_hour) == sorted(scene.served())
