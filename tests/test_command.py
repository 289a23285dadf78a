"""``/claude-usage`` itself, without a chat platform: the grammar, the access policy and the
answer plan (:mod:`usage_bot._command`, pure), then the whole command through the test
front end (push a command, pop the replies) against the real usage service and the
simulated upstream. What holds here holds in Slack, Discord and the console alike; their
own tests keep only their SDK and their layout.

These cases came from the Slack tests; Discord's are in ``test_command_discord_cases.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_login
from usage_bot._clock import FakeClock
from usage_bot._command import (
    AccessPolicy,
    Caller,
    Plan,
    RefusalReason,
    Refused,
    Request,
    ShowHelp,
    ShowUsage,
    parse,
    plan,
    refusal,
)
from usage_bot._config import Settings
from usage_bot._core import build_core
from usage_bot._events import CommandAnswered, Recorder
from usage_bot._simulator import SimulatedUpstream
from usage_bot._texts import FETCHING, FETCHING_SHARED, refused
from usage_bot.frontends import CommandCore, Reply
from usage_bot.frontends.testing import TestFrontEnd

ACCOUNTS = ("alice", "bob")
RATE_LIMITED = b'{"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}}'
# Slack's: how long the upstream gets before the acknowledgement must go.
PATIENCE = 1.0

MakeSettings = Callable[..., Settings]


# -- the words -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "request_"),
    [
        ("", ShowUsage()),
        ("  share ", ShowUsage(shared=True)),
        ("SHARE", ShowUsage(shared=True)),
        ("alice", ShowUsage(("alice",))),
        ("share BOB alice", ShowUsage(("bob", "alice"), shared=True)),
        ("bob bob", ShowUsage(("bob",))),
        ("help", ShowHelp()),
        ("HELP", ShowHelp()),
        ("-h", ShowHelp()),
        ("--help", ShowHelp()),
        ("?", ShowHelp()),
        ("alice help", ShowHelp()),
        ("help payload", ShowHelp()),
        ("carol", ShowHelp(not_understood="carol")),
        ("  what is this ", ShowHelp(not_understood="what is this")),
        ("share nobody", ShowHelp(not_understood="share nobody")),
        ("payload", ShowHelp(not_understood="payload")),
    ],
)
def test_parse(text: str, request_: Request) -> None:
    assert parse(text, ACCOUNTS) == request_


def test_an_account_named_like_it_is_typed_wins_over_another_case() -> None:
    assert parse("Bob", ("bob", "Bob")) == ShowUsage(("Bob",))
    assert parse("BOB", ("bob", "Bob")) == ShowUsage(("Bob",))


# -- who may ask ---------------------------------------------------------------------------

USERS = AccessPolicy(users=frozenset({"U0ALLOWED1"}))
CHANNELS = AccessPolicy(channels=frozenset({"C0ALLOWED1"}))
BOTH = AccessPolicy(users=frozenset({"U0ALLOWED1"}), channels=frozenset({"C0ALLOWED1"}))


@pytest.mark.parametrize(
    ("policy", "user", "channel", "reason"),
    [
        (AccessPolicy(), "U0ANYONE01", "C0ANYWHERE", None),
        (USERS, "U0OTHER01", "C0ANYWHERE", "user"),
        (USERS, "U0ALLOWED1", "C0ANYWHERE", None),
        (CHANNELS, "U0ANYONE01", "C0OTHER01", "channel"),
        (CHANNELS, "U0ANYONE01", "C0ALLOWED1", None),
        (BOTH, "U0OTHER01", "C0OTHER01", "user"),
        (BOTH, "U0ALLOWED1", "C0OTHER01", "channel"),
        (BOTH, "U0ALLOWED1", "C0ALLOWED1", None),
    ],
)
def test_refusal(
    policy: AccessPolicy, user: str, channel: str, reason: RefusalReason | None
) -> None:
    assert refusal(policy, Caller("slack", user, channel)) == reason


def test_a_refused_caller_learns_nothing_of_the_words_or_the_accounts() -> None:
    stranger = Caller("slack", "U0OTHER01", "C0ALLOWED1")

    for text in ("", "help", "alice", "nonsense"):
        assert plan(text, caller=stranger, accounts=ACCOUNTS, policy=BOTH) == Refused("user")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Plan(ShowUsage(), ACCOUNTS, "private")),
        ("share", Plan(ShowUsage(shared=True), ACCOUNTS, "channel")),
        ("share bob", Plan(ShowUsage(("bob",), shared=True), ("bob",), "channel")),
        ("help", Plan(ShowHelp(), (), "private")),
        ("carol", Plan(ShowHelp(not_understood="carol"), (), "private")),
    ],
)
def test_plan(text: str, expected: Plan) -> None:
    assert plan(text, caller=Caller("slack"), accounts=ACCOUNTS, policy=AccessPolicy()) == expected


@pytest.mark.parametrize(
    ("reason", "names"),
    [("user", "SLACK_ALLOWED_USERS"), ("channel", "SLACK_ALLOWED_CHANNELS")],
)
def test_a_refusal_in_slack_names_the_allow_list(reason: RefusalReason, names: str) -> None:
    said = refused(reason, "slack")

    assert said.startswith("Sorry, /claude-usage is not available")
    assert names in said


# -- the whole command, through the test front end -------------------------------------------


@pytest.fixture
def two_accounts(
    make_settings: MakeSettings, upstream: SimulatedUpstream, clock: FakeClock, tmp_path: Path
) -> Settings:
    for name in ACCOUNTS:
        write_login(tmp_path / name, now=clock.now())
    accounts = ",".join(f"{name}={tmp_path / name}" for name in ACCOUNTS)
    return make_settings(USAGE_BOT_API_BASE_URL=upstream.url, USAGE_BOT_ACCOUNTS=accounts)


@pytest.fixture
def one_account(make_settings: MakeSettings, upstream: SimulatedUpstream) -> Settings:
    return make_settings(USAGE_BOT_API_BASE_URL=upstream.url)


class CommandsInTasks(TestFrontEnd):
    """Each command answered in a task of its own, as a chat SDK does. (Pushed from the
    test's own task, :meth:`TestFrontEnd.stop` would wait for that task, its own, and
    hang: the answers under way are tracked by task.)"""

    async def push(self, text: str = "", **where: Any) -> None:
        await asyncio.create_task(super().push(text, **where))


@asynccontextmanager
async def front_end(
    settings: Settings,
    clock: FakeClock,
    *,
    policy: AccessPolicy | None = None,
    patience: float = float("inf"),
    recorder: Recorder | None = None,
) -> AsyncIterator[CommandsInTasks]:
    """The test front end as Slack would be: its platform's name, policy and patience."""
    core = build_core(settings, clock=clock)
    front = CommandsInTasks(
        CommandCore(service=core.service, clock=clock),
        policy=policy or AccessPolicy(),
        platform="slack",
        patience=patience,
        observer=recorder or Recorder(),
    )
    await front.start()
    try:
        yield front
    finally:
        await front.stop()
        await core.aclose()


def accounts_in(reply: Reply) -> list[str]:
    return [report.account for report in reply.reports]


async def test_every_account_at_once_or_one_by_name(
    two_accounts: Settings, clock: FakeClock
) -> None:
    async with front_end(two_accounts, clock) as front:
        await front.push("")
        await front.push("Bob")
        await front.push("help")
        every, one, help_ = front.pop(), front.pop(), front.pop()

    assert (every.kind, every.visibility, accounts_in(every)) == (
        "usage",
        "private",
        ["alice", "bob"],
    )
    assert all(report.rows for report in every.reports)
    assert accounts_in(one) == ["bob"]
    assert (help_.kind, help_.accounts, help_.not_understood) == ("help", ACCOUNTS, None)


async def test_share_is_for_the_channel(one_account: Settings, clock: FakeClock) -> None:
    async with front_end(one_account, clock) as front:
        await front.push("share")

    reply = front.pop()
    assert (reply.kind, reply.visibility) == ("usage", "channel")


async def test_anything_unknown_gets_the_help_and_asks_nothing(
    one_account: Settings, clock: FakeClock, upstream: SimulatedUpstream
) -> None:
    async with front_end(one_account, clock) as front:
        await front.push("share nobody")

    reply = front.pop()
    assert (reply.kind, reply.not_understood, reply.visibility) == (
        "help",
        "share nobody",
        "private",
    )
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("user", "channel", "reason"),
    [("U0OTHER01", "C0ALLOWED1", "user"), ("U0ALLOWED1", "C0OTHER01", "channel")],
)
async def test_a_refused_caller_is_told_why_privately_and_nothing_is_asked(
    one_account: Settings,
    clock: FakeClock,
    upstream: SimulatedUpstream,
    user: str,
    channel: str,
    reason: RefusalReason,
) -> None:
    recorder = Recorder()
    async with front_end(one_account, clock, policy=BOTH, recorder=recorder) as front:
        await front.push("share", user=user, channel=channel)
        await front.push("share", user="U0ALLOWED1", channel="C0ALLOWED1")

    refusal_, allowed = front.pop(), front.pop()
    assert refusal_ == Reply("notice", text=refused(reason, "slack"), refused=True)
    assert allowed.visibility == "channel"
    assert len(upstream.requests) == 1, "only for the allowed caller"
    outcomes = [(e.platform, e.outcome) for e in recorder.of(CommandAnswered)]
    assert outcomes == [("slack", "refused"), ("slack", "ok")]


async def test_fresh_values_are_answered_without_asking_again(
    one_account: Settings, clock: FakeClock, upstream: SimulatedUpstream
) -> None:
    async with front_end(one_account, clock, patience=PATIENCE) as front:
        await front.push()
        await front.push()

    assert [reply.kind for reply in front.replies] == ["usage", "usage"]
    assert len(upstream.requests) == 1


async def test_rate_limited_upstream_answers_at_once_with_last_known_values(
    one_account: Settings, clock: FakeClock, upstream: SimulatedUpstream
) -> None:
    async with front_end(one_account, clock, patience=PATIENCE) as front:
        await front.push()
        clock.advance(12 * 60)
        upstream.fail(status=429, body=RATE_LIMITED, headers={"retry-after": "600"})
        started = time.monotonic()
        await front.push()
        elapsed = time.monotonic() - started

    front.pop()
    [report] = front.pop().reports
    assert elapsed < PATIENCE
    assert report.stale
    assert report.rows
    assert report.staleness_note is not None
    assert report.staleness_note.startswith("Last known values, from 12 min ago.")
    assert "rate-limiting" in report.staleness_note


@pytest.mark.parametrize(
    ("text", "notice", "visibility"),
    [("", FETCHING, "private"), ("share", FETCHING_SHARED, "channel")],
    ids=["private", "shared"],
)
async def test_a_slow_upstream_says_fetching_then_gives_the_report(
    one_account: Settings,
    clock: FakeClock,
    upstream: SimulatedUpstream,
    text: str,
    notice: str,
    visibility: str,
) -> None:
    upstream.latency = PATIENCE + 0.3
    async with front_end(one_account, clock, patience=PATIENCE) as front:
        await front.push(text)

    first, then = front.pop(), front.pop()
    assert first == Reply("notice", text=notice)
    assert (then.kind, then.visibility, then.pending) == ("usage", visibility, False)


async def test_a_slow_upstream_shows_the_last_known_values_first(
    one_account: Settings, clock: FakeClock, upstream: SimulatedUpstream
) -> None:
    async with front_end(one_account, clock, patience=PATIENCE) as front:
        await front.push()
        clock.advance(5 * 60)
        upstream.latency = PATIENCE + 0.3
        await front.push()
        clock.advance(5 * 60)
        await front.push("share")

    front.pop()
    known, fresh = front.pop(), front.pop()
    assert (known.kind, known.pending, known.visibility) == ("usage", True, "private")
    assert (fresh.kind, fresh.pending) == ("usage", False)
    # For the channel: never values marked pending, only the fresh report once it is in.
    notice, shared = front.pop(), front.pop()
    assert notice == Reply("notice", text=FETCHING_SHARED)
    assert (shared.visibility, shared.pending) == ("channel", False)
