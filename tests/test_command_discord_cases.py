"""``/claude-usage`` as Discord users reach it, tested without Discord: who may use it in
which server, direct message, channel or thread, and what Discord's two options mean.

These cases were tested through the Discord front end; they are the grammar's and the
access policy's (:mod:`usage_bot._command`), so they run against it and the test front
end. The Discord front end's own tests check only that an interaction becomes the
:class:`Caller` and the words used here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.conftest import write_login
from usage_bot._clock import FakeClock
from usage_bot._command import (
    AccessPolicy,
    Caller,
    Plan,
    RefusalReason,
    Refused,
    ShowHelp,
    ShowUsage,
    plan,
    refusal,
    words_of,
)
from usage_bot._config import Settings
from usage_bot._core import build_core
from usage_bot._simulator import SimulatedUpstream
from usage_bot._texts import refused
from usage_bot.frontends import CommandCore
from usage_bot.frontends.testing import TestFrontEnd

# Discord's ids, as the Discord front end hands them over: snowflakes as text.
SERVER, OTHER_SERVER = "1100000000000000004", "1300000000000000001"
CHANNEL, OTHER_CHANNEL = "1100000000000000005", "1300000000000000002"
THREAD, DM_CHANNEL = "1200000000000000009", "1200000000000000010"
USER = "1100000000000000003"
ACCOUNTS = ("alice", "bob")


def in_channel(channel: str = CHANNEL, server: str = SERVER) -> Caller:
    return Caller("discord", USER, channel, server)


def in_thread(parent: str, server: str = SERVER) -> Caller:
    return Caller("discord", USER, THREAD, server, parent_channel=parent)


def in_dm() -> Caller:
    return Caller("discord", USER, DM_CHANNEL, None)


SERVERS = AccessPolicy(servers=frozenset({SERVER}))  # DISCORD_ALLOWED_GUILDS
CHANNELS = AccessPolicy(channels=frozenset({CHANNEL}))  # DISCORD_ALLOWED_CHANNELS
BOTH = AccessPolicy(servers=frozenset({SERVER}), channels=frozenset({CHANNEL}))


@pytest.mark.parametrize(
    ("policy", "caller", "reason"),
    [
        (AccessPolicy(), in_dm(), None),
        (AccessPolicy(), in_channel(OTHER_CHANNEL, OTHER_SERVER), None),
        (SERVERS, in_channel(), None),
        (SERVERS, in_channel(server=OTHER_SERVER), "server"),
        (SERVERS, in_dm(), "direct_message"),
        (SERVERS, in_thread(OTHER_CHANNEL), None),
        (CHANNELS, in_channel(), None),
        (CHANNELS, in_channel(OTHER_CHANNEL), "channel"),
        (CHANNELS, in_thread(CHANNEL), None),
        (CHANNELS, in_thread(OTHER_CHANNEL), "channel"),
        (CHANNELS, in_dm(), "channel"),
        (BOTH, in_channel(), None),
        (BOTH, in_thread(CHANNEL), None),
        (BOTH, in_channel(server=OTHER_SERVER), "server"),
        (BOTH, in_dm(), "direct_message"),
    ],
    ids=[
        "no lists, a direct message",
        "no lists, anywhere",
        "allowed server",
        "other server",
        "direct message with a server list",
        "any thread of an allowed server",
        "allowed channel",
        "other channel",
        "thread of the allowed channel",
        "thread of another channel",
        "direct message with a channel list",
        "allowed server and channel",
        "thread in the allowed server and channel",
        "the server is checked first",
        "a direct message belongs to no server",
    ],
)
def test_who_may_use_the_command_where(
    policy: AccessPolicy, caller: Caller, reason: RefusalReason | None
) -> None:
    assert refusal(policy, caller) == reason
    decided = plan("share", caller=caller, accounts=ACCOUNTS, policy=policy)
    if reason is None:
        assert isinstance(decided, Plan)
    else:
        assert decided == Refused(reason)


@pytest.mark.parametrize(
    ("share", "account", "asks", "visibility"),
    [
        (False, None, ShowUsage(), "private"),
        (True, None, ShowUsage(shared=True), "channel"),
        (False, "BOB", ShowUsage(accounts=("bob",)), "private"),
        (True, " alice ", ShowUsage(accounts=("alice",), shared=True), "channel"),
        (False, "   ", ShowUsage(), "private"),
        (False, "share bob", ShowUsage(accounts=("bob",), shared=True), "channel"),
        (False, "carol", ShowHelp(not_understood="carol"), "private"),
        (True, "carol", ShowHelp(not_understood="share carol"), "private"),
        (False, "help", ShowHelp(), "private"),
    ],
)
def test_discords_options_mean_what_the_typed_words_mean(
    share: bool,
    account: str | None,
    asks: ShowUsage | ShowHelp,
    visibility: str,
) -> None:
    decided = plan(
        words_of(share=share, account=account),
        caller=in_channel(),
        accounts=ACCOUNTS,
        policy=AccessPolicy(),
    )

    assert isinstance(decided, Plan)
    assert (decided.request, decided.visibility) == (asks, visibility)


# -- through the test front end, as the platform "discord" ---------------------------------


@pytest.fixture
def two_accounts(tmp_path: Path, clock: FakeClock) -> str:
    for name in ACCOUNTS:
        write_login(tmp_path / name, now=clock.now())
    return ",".join(f"{name}={tmp_path / name}" for name in ACCOUNTS)


@pytest.fixture
async def commands(
    make_settings: Callable[..., Settings],
    upstream: SimulatedUpstream,
    clock: FakeClock,
    two_accounts: str,
) -> AsyncIterator[CommandCore]:
    settings = make_settings(USAGE_BOT_API_BASE_URL=upstream.url, USAGE_BOT_ACCOUNTS=two_accounts)
    core = build_core(settings, clock=clock, trust_env=False)
    yield CommandCore(service=core.service, clock=clock)
    await core.aclose()


@pytest.mark.parametrize(
    ("where", "reason", "variable"),
    [
        ({"server": OTHER_SERVER}, "server", "DISCORD_ALLOWED_GUILDS"),
        ({"server": None}, "direct_message", None),
        ({"server": SERVER, "channel": OTHER_CHANNEL}, "channel", "DISCORD_ALLOWED_CHANNELS"),
        (
            {"server": SERVER, "channel": THREAD, "parent_channel": OTHER_CHANNEL},
            "channel",
            "DISCORD_ALLOWED_CHANNELS",
        ),
    ],
    ids=["other server", "direct message", "other channel", "thread of another channel"],
)
async def test_a_refused_caller_is_told_why_and_nothing_is_asked_upstream(
    commands: CommandCore,
    upstream: SimulatedUpstream,
    where: dict[str, str | None],
    reason: RefusalReason,
    variable: str | None,
) -> None:
    front = TestFrontEnd(commands, policy=BOTH, platform="discord")

    await front.push("share alice", **where)

    reply = front.pop()
    assert (reply.kind, reply.refused, reply.visibility) == ("notice", True, "private")
    assert reply.text == refused(reason, "discord")
    if variable is not None:
        assert variable in reply.text
    assert upstream.requests == []


async def test_the_allowed_place_gets_the_report(
    commands: CommandCore, upstream: SimulatedUpstream
) -> None:
    front = TestFrontEnd(commands, policy=BOTH, platform="discord")

    await front.push(words_of(account="bob"), server=SERVER, channel=THREAD, parent_channel=CHANNEL)

    reply = front.pop()
    assert reply.kind == "usage"
    assert [report.account for report in reply.reports] == ["bob"]
    assert len(upstream.requests) == 1


async def test_an_unknown_account_gets_the_help_with_what_was_not_understood(
    commands: CommandCore, upstream: SimulatedUpstream
) -> None:
    front = TestFrontEnd(commands, platform="discord")

    await front.push(words_of(account="carol"), server=SERVER)

    reply = front.pop()
    assert (reply.kind, reply.not_understood, reply.accounts) == ("help", "carol", ACCOUNTS)
    assert reply.refused is False
    assert upstream.requests == []
