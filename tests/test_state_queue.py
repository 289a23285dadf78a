"""The delivery queue under any interleaving of two posters, against every back end.

A Hypothesis state machine records announcements for some destinations, and has two
owners (on two handles of one state where the back end has such a thing: two processes on
one SQLite file) claim, post, confirm and release them, while deliveries expire and the
clock moves on, in any order. Every answer is checked against :class:`Queue`, a reference
model of the semantics ``usage_bot.state`` documents, and, said plainly, whatever the
interleaving:

- each (key, destination) is confirmed at most once;
- a destination's deliveries are claimed in the order they were recorded: a delivery is
  only ever claimed when every one recorded before it for that destination is finished;
- a delivery is never claimed while another claim on it is live (its lease not passed);
- a release gives back only the current claim, and expiry spares live ones (what
  ``pending()`` shows, claim and attempts included, is the model's after every step).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.state_backends import BackEnd, params
from usage_bot._alerts import Assessment, ThresholdCrossed
from usage_bot.state import Delivery

T = TypeVar("T")

NOW = datetime(2026, 7, 19, 1, 0, tzinfo=UTC)
LEASE = timedelta(seconds=120)
OWNERS = ("one", "two")
DESTINATIONS = ("slack:C1", "discord:2")
# Three windows ending soon, later and much later, so that deliveries reach their expiry.
EVENTS = tuple(
    ThresholdCrossed(
        account="alice",
        limit_id=limit_id,
        label=limit_id,
        level=level,
        percent=level + 1,
        window=NOW + ends_in,
        resets_at=NOW + ends_in,
        severity="warning",
        at=NOW,
    )
    for limit_id, ends_in in (
        ("five_hour", timedelta(minutes=10)),
        ("seven_day", timedelta(hours=1)),
        ("seven_day_opus", timedelta(hours=3)),
    )
    for level in (80.0, 95.0)
)

Pair = tuple[str, str]  # (key, destination)


# -- the reference model ----------------------------------------------------------------


@dataclass
class Queue:
    """What ``usage_bot.state`` says the queue does, in a few dictionaries."""

    recorded: list[Pair] = field(default_factory=list)  # every pair ever queued, in order
    expires: dict[Pair, datetime] = field(default_factory=dict)
    finished: set[Pair] = field(default_factory=set)
    claim: dict[Pair, str | None] = field(default_factory=dict)
    not_before: dict[Pair, datetime] = field(default_factory=dict)
    attempts: Counter[Pair] = field(default_factory=Counter)

    def record(self, events: tuple[ThresholdCrossed, ...], destinations: tuple[str, ...]) -> None:
        for event in events:
            for destination in destinations:
                pair = (event.message().key, destination)
                if pair not in self.expires:  # once ever: posted or dropped ones too
                    self.recorded.append(pair)
                    self.expires[pair] = event.expires_at

    def pending(self) -> list[Pair]:
        return [pair for pair in self.recorded if pair not in self.finished]

    def shown(self) -> list[tuple[str, str, str | None, int]]:
        """What ``pending()`` should answer: key, destination, current claim, attempts."""
        return [(*pair, self.claim.get(pair), self.attempts[pair]) for pair in self.pending()]

    def due(self, destination: str, now: datetime) -> Pair | None:
        head = next((p for p in self.pending() if p[1] == destination), None)
        if head is None or self.not_before.get(head, NOW) > now:
            return None
        return head

    def claimed(self, pair: Pair, claim: str | None, now: datetime) -> None:
        self.claim[pair] = claim
        self.not_before[pair] = now + LEASE
        self.attempts[pair] += 1

    def confirm(self, pair: Pair) -> bool:
        if pair in self.finished:
            return False
        self.finished.add(pair)
        return True

    def release(self, pair: Pair, claim: str | None, retry_at: datetime) -> None:
        if pair not in self.finished and claim is not None and self.claim.get(pair) == claim:
            self.claim[pair] = None
            self.not_before[pair] = retry_at

    def expire(self, now: datetime) -> list[Pair]:
        gone = [
            pair
            for pair in self.pending()
            if self.expires[pair] <= now
            and not (self.claim.get(pair) is not None and self.not_before[pair] > now)
        ]
        self.finished.update(gone)
        return gone


# -- the machine ------------------------------------------------------------------------


def holding(*, posted: bool) -> Any:
    """Run the rule only while an owner holds a delivery it has (or has not) posted."""
    return precondition(lambda machine: any(p == posted for _, p in machine.held.values()))


class Posters(RuleBasedStateMachine):
    """Two owners posting from one queue; ``held`` is what each has claimed and not yet
    confirmed or released, per destination, and whether it has posted it."""

    def __init__(self, back_end: BackEnd) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.folder = tempfile.TemporaryDirectory()
        one = self.run(back_end.open(Path(self.folder.name)))
        self.handles = {"one": one, "two": self.run(back_end.again(one, Path(self.folder.name)))}
        self.queue = Queue()
        self.now = NOW
        self.held: dict[tuple[str, str], tuple[Delivery, bool]] = {}
        self.confirmed: Counter[Pair] = Counter()
        self.claims: list[Pair] = []

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(work)

    def teardown(self) -> None:
        try:
            for store in self.handles.values():
                self.run(store.close())
        finally:
            self.runner.close()
            self.folder.cleanup()

    def pick(self, which: int, *, posted: bool) -> tuple[str, str]:
        mine = sorted(k for k, (_, done) in self.held.items() if done == posted)
        return mine[which % len(mine)]

    @rule(
        events=st.lists(st.integers(0, len(EVENTS) - 1), min_size=1, max_size=3, unique=True),
        to=st.lists(st.sampled_from(DESTINATIONS), min_size=1, max_size=2, unique=True),
    )
    def update(self, events: list[int], to: list[str]) -> None:
        """The engine announces ``EVENTS[i] for i in events`` for ``to``."""
        step = tuple(EVENTS[i] for i in events)
        self.run(
            self.handles["one"].update_ledger(
                "alice", lambda ledger: Assessment(ledger, step), destinations=to, now=self.now
            )
        )
        self.queue.record(step, tuple(to))

    @rule(owner=st.sampled_from(OWNERS), destination=st.sampled_from(DESTINATIONS))
    def claim(self, owner: str, destination: str) -> None:
        got = self.run(
            self.handles[owner].claim_next(destination, owner=owner, now=self.now, lease=LEASE)
        )
        expected = self.queue.due(destination, self.now)
        assert ((got.key, got.destination) if got else None) == expected
        if got is None or expected is None:
            return
        # In order: everything recorded before it for this destination is finished.
        earlier = self.queue.recorded[: self.queue.recorded.index(expected)]
        assert all(p in self.queue.finished for p in earlier if p[1] == destination)
        # Never under another live claim: the model's lease has passed.
        assert self.queue.not_before.get(expected, NOW) <= self.now
        self.queue.claimed(expected, got.claim, self.now)
        assert got.attempts == self.queue.attempts[expected]
        assert got.claim is not None
        assert got.claim.startswith(f"{owner}#")
        self.claims.append(expected)
        # Claiming again for a destination lets go of what it held, as a poster that died.
        self.held[(owner, destination)] = (got, False)

    @holding(posted=False)
    @rule(which=st.integers(0, 3))
    def post(self, which: int) -> None:
        """The owner posts what it holds (the platform accepts it)."""
        held = self.pick(which, posted=False)
        self.held[held] = (self.held[held][0], True)

    @holding(posted=True)
    @rule(which=st.integers(0, 3))
    def confirm(self, which: int) -> None:
        """The owner writes down the post it made (perhaps after its lease ran out)."""
        owner, _ = held = self.pick(which, posted=True)
        delivery, _ = self.held.pop(held)
        done = self.run(self.handles[owner].confirm(delivery, now=self.now))
        pair = (delivery.key, delivery.destination)
        assert done == self.queue.confirm(pair)
        self.confirmed[pair] += done

    @holding(posted=False)
    @rule(which=st.integers(0, 3), after=st.sampled_from([0, 30, 300]))
    def release(self, which: int, after: int) -> None:
        """The owner's post failed: it gives the delivery back, to retry ``after`` s on
        (due at once, within a lease, or after one)."""
        owner, _ = held = self.pick(which, posted=False)
        delivery, _ = self.held.pop(held)
        retry_at = self.now + timedelta(seconds=after)
        self.run(self.handles[owner].release(delivery, retry_at=retry_at, error="HTTP 503"))
        self.queue.release((delivery.key, delivery.destination), delivery.claim, retry_at)

    @holding(posted=False)
    @rule(which=st.integers(0, 3))
    def take_over(self, which: int) -> None:
        """A holder stalls past its lease and the other owner claims the destination: the
        interleaving that stale releases and confirms come from, made likely."""
        owner, destination = self.pick(which, posted=False)
        self.advance(int(LEASE.total_seconds()))
        self.claim(OWNERS[1 - OWNERS.index(owner)], destination)

    @rule(owner=st.sampled_from(OWNERS))
    def expire(self, owner: str) -> None:
        dropped = self.run(self.handles[owner].expire(now=self.now))
        assert [(d.key, d.destination) for d in dropped] == self.queue.expire(self.now)

    # Within a lease, just past one, and long: what makes claims lapse, overlap and expire.
    @rule(seconds=st.sampled_from([1, 30, 130, 900, 3600]))
    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @invariant()
    def the_queue_is_the_models(self) -> None:
        for owner, store in self.handles.items():
            shown = self.run(store.pending())
            got = [(d.key, d.destination, d.claim, d.attempts) for d in shown]
            assert got == self.queue.shown(), owner

    @invariant()
    def each_is_confirmed_at_most_once_and_claimed_in_order(self) -> None:
        assert all(n <= 1 for n in self.confirmed.values()), self.confirmed
        for destination in DESTINATIONS:
            # A destination's claims, retries folded, follow the order of recording.
            mine = [p for p in dict.fromkeys(self.claims) if p[1] == destination]
            assert mine == sorted(mine, key=self.queue.recorded.index)


@pytest.mark.parametrize("back_end", params())
def test_any_interleaving_confirms_once_and_claims_in_order(back_end: BackEnd) -> None:
    run_state_machine_as_test(
        lambda: Posters(back_end),
        settings=settings(
            max_examples=40,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_the_model_itself_keeps_the_order_and_the_lease() -> None:
    """The judge judged: the reference model on a script whose answers are known."""
    queue = Queue()
    first, second = EVENTS[0], EVENTS[2]  # ending in 10 minutes, and in an hour
    queue.record((first, second), ("a",))
    key1, key2 = first.message().key, second.message().key
    assert queue.due("a", NOW) == (key1, "a")
    queue.claimed((key1, "a"), "one#x", NOW)
    assert queue.due("a", NOW) is None
    assert queue.due("a", NOW + LEASE) == (key1, "a")
    queue.release((key1, "a"), "two#y", NOW)  # not its claim
    assert queue.due("a", NOW) is None
    queue.release((key1, "a"), "one#x", NOW + timedelta(seconds=5))
    assert queue.due("a", NOW + timedelta(seconds=5)) == (key1, "a")
    assert queue.confirm((key1, "a"))
    assert not queue.confirm((key1, "a"))
    assert queue.due("a", NOW) == (key2, "a")
    queue.record((first,), ("a",))
    assert queue.pending() == [(key2, "a")]
    assert queue.expire(first.expires_at) == []
    assert queue.expire(second.expires_at) == [(key2, "a")]
