"""The command core through the test front end: what every platform answers, before its
layout. The upstream is the simulated one (a real HTTP server), the clock a FakeClock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.conftest import write_login
from usage_bot._clock import FakeClock
from usage_bot._command import AccessPolicy
from usage_bot._config import Settings
from usage_bot._core import build_core
from usage_bot._events import CommandAnswered, Recorder
from usage_bot._exceptions import DeliveryError
from usage_bot._notify import AlertMessage
from usage_bot._simulator import SimulatedUpstream
from usage_bot._texts import FETCHING, FETCHING_SHARED
from usage_bot.frontends import CommandCore
from usage_bot.frontends.testing import TestFrontEnd


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def front(
    make_settings: Callable[..., Settings],
    clock: FakeClock,
    upstream: SimulatedUpstream,
    tmp_path: Path,
    recorder: Recorder,
) -> AsyncIterator[TestFrontEnd]:
    write_login(tmp_path / "bob", now=clock.now())
    settings = make_settings(
        USAGE_BOT_API_BASE_URL=upstream.url,
        USAGE_BOT_ACCOUNTS=f"alice={tmp_path / 'claude'},bob={tmp_path / 'bob'}",
    )
    core = build_core(settings, clock=clock, trust_env=False)
    front = TestFrontEnd(
        CommandCore(service=core.service, clock=clock), patience=0.2, observer=recorder
    )
    yield front
    await core.aclose()


async def test_a_command_is_answered_with_every_account_from_the_upstream(
    front: TestFrontEnd, upstream: SimulatedUpstream
) -> None:
    await front.push("")
    reply = front.pop()
    assert reply.kind == "usage"
    assert reply.visibility == "private"
    assert [r.account for r in reply.reports] == ["alice", "bob"]
    assert not reply.pending
    assert len(upstream.requests) == 2
    assert front.replies == ()


async def test_a_second_command_within_the_spacing_is_answered_without_asking_again(
    front: TestFrontEnd, upstream: SimulatedUpstream, clock: FakeClock
) -> None:
    await front.push("alice")
    front.pop()
    clock.advance(5)
    await front.push("ALICE share")
    reply = front.pop()
    assert [r.account for r in reply.reports] == ["alice"]
    assert reply.visibility == "channel"
    assert len(upstream.requests) == 1


async def test_a_slow_upstream_gets_the_known_values_now_and_fresh_ones_after(
    front: TestFrontEnd, upstream: SimulatedUpstream, clock: FakeClock
) -> None:
    await front.push("alice")
    first = front.pop()
    clock.advance(60)
    upstream.latency = 1.0
    await front.push("alice")
    now, later = front.pop(), front.pop()
    assert now.kind == "usage"
    assert now.pending
    assert now.reports[0].fetched_at == first.reports[0].fetched_at
    assert later.kind == "usage"
    assert not later.pending
    assert later.reports[0].fetched_at == clock.now()


async def test_a_slow_upstream_with_nothing_known_says_it_is_asking(
    front: TestFrontEnd, upstream: SimulatedUpstream
) -> None:
    upstream.latency = 1.0
    await front.push("bob")
    assert front.pop().text == FETCHING
    assert front.pop().kind == "usage"
    await front.push("share alice")
    notice, report = front.pop(), front.pop()
    # For the channel: the values go out fresh or not at all, never stale in public.
    assert notice.text == FETCHING_SHARED
    assert report.visibility == "channel"


async def test_help_and_words_not_understood(front: TestFrontEnd) -> None:
    await front.push("help")
    reply = front.pop()
    assert (reply.kind, reply.not_understood, reply.accounts) == ("help", None, ("alice", "bob"))
    await front.push("carol")
    assert front.pop().not_understood == "carol"


async def test_a_refused_caller_is_told_why_and_nothing_is_asked(
    clock: FakeClock, make_settings: Callable[..., Settings], upstream: SimulatedUpstream
) -> None:
    core = build_core(make_settings(USAGE_BOT_API_BASE_URL=upstream.url), clock=clock)
    recorder = Recorder()
    front = TestFrontEnd(
        CommandCore(service=core.service, clock=clock),
        policy=AccessPolicy(users=frozenset({"U0ALLOWED1"})),
        platform="slack",
        observer=recorder,
    )
    await front.push("", user="U0STRANGER")
    reply = front.pop()
    await core.aclose()
    assert reply.kind == "notice"
    assert reply.refused
    assert "SLACK_ALLOWED_USERS" in reply.text
    assert upstream.requests == []
    [answered] = recorder.of(CommandAnswered)
    assert (answered.platform, answered.outcome) == ("slack", "refused")


async def test_every_answer_is_observed_once_with_its_outcome(
    front: TestFrontEnd, recorder: Recorder
) -> None:
    await front.push("")
    await front.push("help")
    assert [(e.platform, e.outcome) for e in recorder.of(CommandAnswered)] == [
        ("test", "ok"),
        ("test", "ok"),
    ]


async def test_alerts_posted_to_the_test_front_end_can_be_popped(front: TestFrontEnd) -> None:
    message = AlertMessage(kind="reset", key="k", account="alice", title="t", text="x")
    front.failures.append(DeliveryError("down", retryable=True))
    with pytest.raises(DeliveryError):
        await front.post(message)
    await front.post(message)
    assert front.pop_alert() == message
