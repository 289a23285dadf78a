"""The usage service: one request in flight, spacing, back-off, stale values, per account."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, write_login
from usage_bot._clock import FakeClock
from usage_bot._config import Settings, load_settings
from usage_bot._core import build_core
from usage_bot._events import Event, Observers, Recorder, UsageRead
from usage_bot._exceptions import (
    CredentialsExpired,
    CredentialsMissing,
    RateLimited,
    UpstreamServerError,
)
from usage_bot._service import UsageService

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def usage(percent: float) -> dict[str, object]:
    return {"five_hour": {"utilization": percent, "resets_at": "2026-07-19T05:00:00Z"}}


class Upstream:
    """A scripted upstream behind httpx.MockTransport: answers queue up, default is 200."""

    def __init__(self) -> None:
        self.answers: list[httpx.Response] = []
        self.seen: list[httpx.Request] = []
        self.percent = 10.0
        self.gate: asyncio.Event | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.answers:
            return self.answers.pop(0)
        return httpx.Response(200, json=usage(self.percent))

    @property
    def tokens(self) -> list[str]:
        return [r.headers["authorization"].removeprefix("Bearer ") for r in self.seen]


@pytest.fixture
def fake() -> Upstream:
    return Upstream()


def service_for(settings: Settings, clock: FakeClock, fake: Upstream) -> UsageService:
    return build_core(settings, clock=clock, transport=httpx.MockTransport(fake)).service


@pytest.fixture
def settings(claude_dir: Path) -> Settings:
    return load_settings({"CLAUDE_CONFIG_DIR": str(claude_dir)}, dotenv_path=None)


async def test_many_callers_share_one_request(
    settings: Settings, clock: FakeClock, fake: Upstream
) -> None:
    service = service_for(settings, clock, fake)
    fake.gate = asyncio.Event()
    callers = [asyncio.create_task(service.get("default")) for _ in range(50)]
    await asyncio.sleep(0.01)
    assert service.would_fetch("default")
    fake.gate.set()
    results = await asyncio.gather(*callers)
    assert len(fake.seen) == 1
    assert {id(r) for r in results} == {id(results[0])}
    assert results[0].snapshot is not None
    assert results[0].error is None


async def test_at_most_one_request_every_30_seconds(
    settings: Settings, clock: FakeClock, fake: Upstream
) -> None:
    service = service_for(settings, clock, fake)
    await service.get("default")
    fake.percent = 20
    clock.advance(29)
    assert not service.would_fetch("default")
    cached = await service.get("default")
    assert len(fake.seen) == 1
    assert cached.snapshot is not None
    assert cached.snapshot.limits[0].percent == 10
    clock.advance(1)
    fresh = await service.get("default")
    assert len(fake.seen) == 2
    assert fresh.snapshot is not None
    assert fresh.snapshot.limits[0].percent == 20


async def test_a_short_poll_interval_shortens_the_spacing(
    claude_dir: Path, clock: FakeClock, fake: Upstream
) -> None:
    settings = load_settings(
        {"CLAUDE_CONFIG_DIR": str(claude_dir), "USAGE_BOT_POLL_SECONDS": "5"}, dotenv_path=None
    )
    service = service_for(settings, clock, fake)
    await service.get("default")
    clock.advance(5)
    await service.get("default")
    assert len(fake.seen) == 2


async def test_due_in_says_when_the_next_request_may_go(
    settings: Settings, clock: FakeClock, fake: Upstream
) -> None:
    service = service_for(settings, clock, fake)
    assert service.due_in("default") == 0
    await service.get("default")
    assert service.due_in("default") == 30
    clock.advance(29.5)
    assert service.due_in("default") == pytest.approx(0.5)
    clock.advance(0.5)
    assert service.due_in("default") == 0


async def test_429_waits_as_retry_after_says_and_serves_the_last_values(
    settings: Settings, clock: FakeClock, fake: Upstream
) -> None:
    service = service_for(settings, clock, fake)
    first = await service.get("default")
    clock.advance(30)
    fake.answers.append(httpx.Response(429, headers={"retry-after": "600"}))
    limited = await service.get("default")
    assert isinstance(limited.error, RateLimited)
    assert limited.snapshot == first.snapshot
    assert limited.stale
    assert limited.age(clock.now()) == timedelta(seconds=30)
    clock.advance(599)
    assert (await service.get("default")).error is limited.error
    assert len(fake.seen) == 2
    clock.advance(1)
    recovered = await service.get("default")
    assert len(fake.seen) == 3
    assert recovered.error is None
    assert not recovered.stale


@pytest.mark.parametrize(
    "headers", [{}, {"retry-after": "0"}, {"retry-after": "soon"}], ids=["absent", "zero", "junk"]
)
async def test_429_without_a_usable_retry_after_backs_off_from_5_min_doubling_to_an_hour(
    settings: Settings, clock: FakeClock, fake: Upstream, headers: dict[str, str]
) -> None:
    service = service_for(settings, clock, fake)
    fake.answers.extend([httpx.Response(429, headers=headers)] * 6)
    gaps = []
    last = clock.monotonic()
    limited = await service.get("default")
    assert isinstance(limited.error, RateLimited)
    assert "asks again in 5 min" in limited.error.message
    while len(fake.seen) < 7:
        clock.advance(10)
        before = len(fake.seen)
        await service.get("default")
        if len(fake.seen) > before:
            gaps.append(round(clock.monotonic() - last))
            last = clock.monotonic()
    assert gaps == [300, 600, 1200, 2400, 3600, 3600]


async def test_a_login_that_expires_during_a_back_off_is_noticed_without_a_request(
    settings: Settings, claude_dir: Path, clock: FakeClock, fake: Upstream
) -> None:
    write_login(claude_dir, expires_at=clock.now() + timedelta(minutes=10))
    service = service_for(settings, clock, fake)
    await service.get("default")
    clock.advance(30)
    fake.answers.append(httpx.Response(429, headers={"retry-after": "3600"}))
    assert isinstance((await service.get("default")).error, RateLimited)
    clock.advance(11 * 60)
    during = await service.get("default")
    assert isinstance(during.error, CredentialsExpired)
    assert during.snapshot is not None  # the last values stay shown, with their age
    assert len(fake.seen) == 2


async def test_server_errors_back_off_and_recover(
    settings: Settings, clock: FakeClock, fake: Upstream
) -> None:
    service = service_for(settings, clock, fake)
    fake.answers.extend([httpx.Response(503), httpx.Response(502)])
    failed = await service.get("default")
    assert isinstance(failed.error, UpstreamServerError)
    assert failed.snapshot is None
    clock.advance(30)
    await service.get("default")
    clock.advance(30)  # the second failure doubled the wait to 60 s
    await service.get("default")
    assert len(fake.seen) == 2
    clock.advance(30)
    assert (await service.get("default")).error is None


async def test_credentials_are_read_again_on_every_fetch(
    settings: Settings, claude_dir: Path, clock: FakeClock, fake: Upstream
) -> None:
    service = service_for(settings, clock, fake)
    await service.get("default")
    write_login(claude_dir, token="sk-ant-oat01-rotated-token", now=clock.now())
    clock.advance(30)
    await service.get("default")
    assert fake.tokens == [TOKEN, "sk-ant-oat01-rotated-token"]


async def test_an_expired_login_is_never_sent_and_is_retried_at_once_when_fixed(
    settings: Settings, claude_dir: Path, clock: FakeClock, fake: Upstream
) -> None:
    write_login(claude_dir, expires_at=clock.now() - timedelta(seconds=1))
    service = service_for(settings, clock, fake)
    result = await service.get("default")
    assert isinstance(result.error, CredentialsExpired)
    assert fake.seen == []
    write_login(claude_dir, now=clock.now())
    assert (await service.get("default")).error is None
    assert len(fake.seen) == 1


async def test_one_broken_account_never_hides_the_others(
    tmp_path: Path, clock: FakeClock, fake: Upstream
) -> None:
    write_login(tmp_path / "alice", now=clock.now())
    settings = load_settings(
        {"USAGE_BOT_ACCOUNTS": f"alice={tmp_path / 'alice'},bob={tmp_path / 'bob'}"},
        dotenv_path=None,
    )
    service = service_for(settings, clock, fake)
    alice, bob = await service.get_all()
    assert (alice.account, bob.account) == ("alice", "bob")
    assert alice.error is None
    assert alice.snapshot is not None
    assert isinstance(bob.error, CredentialsMissing)


async def test_observers_hear_every_attempt_and_a_failing_observer_is_contained(
    settings: Settings, clock: FakeClock, fake: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def observe(self, event: Event) -> None:
            raise RuntimeError("observer bug")

    heard = Recorder()
    core = build_core(
        settings,
        clock=clock,
        transport=httpx.MockTransport(fake),
        observer=Observers([Broken(), heard]),
    )
    fake.answers.append(httpx.Response(500))
    await core.service.get("default")
    clock.advance(30)
    await core.service.get("default")
    await core.aclose()
    assert heard.of(UsageRead) == [
        UsageRead("default", "upstream_server_error"),
        UsageRead("default", "ok"),
    ]
    assert "an observer failed on UsageRead" in caplog.text


async def test_a_caller_that_gives_up_does_not_cancel_the_shared_request(
    settings: Settings, clock: FakeClock, fake: Upstream
) -> None:
    service = service_for(settings, clock, fake)
    fake.gate = asyncio.Event()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(service.get("default"), timeout=0.05)
    fake.gate.set()
    result = await service.get("default")
    assert result.snapshot is not None
    assert len(fake.seen) == 1
