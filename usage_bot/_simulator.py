"""A simulated usage endpoint: an account whose usage climbs, crosses thresholds and
resets, in whatever time its clock keeps. ``usage-bot demo`` runs against it in
accelerated time, and the tests use it as their fake upstream (with faults on demand).

It is a real HTTP server on loopback, so the real client, with its real headers and
error handling, talks to it exactly as it talks to Anthropic.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from usage_bot._clock import Clock

DEMO_TOKEN = "sk-ant-demo-token-not-a-real-one-0000000000"  # noqa: S105 - a fake
FIVE_HOURS = timedelta(hours=5)
WEEK = timedelta(days=7)


def simulated_usage(now: datetime, origin: datetime) -> dict[str, Any]:
    """The simulated account at ``now``: the shape of the newest upstream answers.

    A plan, so the windows' dollars are null; a codenamed placeholder that stays hidden;
    the weekly limit with who used it; a model-scoped limit only in ``limits``.
    """
    elapsed = now - origin
    window = elapsed // FIVE_HOURS
    phase = (elapsed - window * FIVE_HOURS) / FIVE_HOURS
    session = round(min(100.0, 10 + 95 * phase), 1)
    session_reset = origin + (window + 1) * FIVE_HOURS
    week_index = elapsed // WEEK
    week_phase = (elapsed - week_index * WEEK) / WEEK
    weekly = round(min(100.0, 35 + 60 * week_phase), 1)
    weekly_reset = origin + (week_index + 1) * WEEK
    fable = min(100, int(72 + elapsed.total_seconds() / 3600 * 2))
    return {
        "five_hour": _window(session, session_reset),
        "seven_day": _window(weekly, weekly_reset),
        "seven_day_opus": None,
        "tangelo_sprout": {"utilization": 0.0, "resets_at": None},
        "seven_day_breakdown": _breakdown(weekly, now, weekly_reset - WEEK),
        "limits": [
            {
                "kind": "session",
                "group": "default",
                "percent": int(session),
                "severity": "normal",
                "resets_at": _iso(session_reset),
                "scope": None,
                "is_active": True,
            },
            {
                "kind": "weekly_scoped",
                "group": "default",
                "percent": fable,
                "severity": "warning" if fable >= 80 else "normal",
                "resets_at": _iso(weekly_reset),
                "scope": {"model": {"id": "claude-fable", "display_name": "Fable"}},
                "is_active": True,
            },
        ],
        "extra_usage": {
            "is_enabled": True,
            "monthly_limit": 10000,
            "used_credits": 2050 + int(elapsed.total_seconds() // 600),
            "utilization": None,
            "currency": "USD",
            "decimal_places": 2,
        },
    }


def _window(percent: float, resets_at: datetime) -> dict[str, Any]:
    return {
        "utilization": percent,
        "resets_at": _iso(resets_at),
        "limit_dollars": None,
        "used_dollars": None,
        "remaining_dollars": None,
        "locked_reason": None,
    }


def _breakdown(weekly: float, now: datetime, started: datetime) -> dict[str, Any]:
    """Who used the weekly quota: mostly Claude Code, the rest chat, Cowork and other."""
    code, chat, cowork = (round(weekly * share, 1) for share in (0.62, 0.25, 0.09))
    other = round(max(weekly - code - chat - cowork, 0.0), 1)
    names = {"claude_code": "Claude Code", "chat": "Chat", "cowork": "Cowork", "other": "Other"}
    percents = {"claude_code": code, "chat": chat, "cowork": cowork, "other": other}
    return {
        "as_of": _iso(now),
        "window_started_at": _iso(started),
        "rows": [
            {"key": key, "display_name": names[key], "percent": percents[key]} for key in names
        ],
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class Fault:
    """One canned answer: a status with a body, a delay, or a connection cut mid-body."""

    status: int = 500
    body: bytes = b'{"type":"error","error":{"type":"api_error","message":"Internal"}}'
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    cut_mid_body: bool = False


class SimulatedUpstream:
    """``GET /api/oauth/usage`` on 127.0.0.1, answering from :func:`simulated_usage`.

    ``payload`` replaces the simulation with a fixed answer; :meth:`fail` queues faults;
    ``latency`` delays every answer (real seconds); ``requests`` records what was asked.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        origin: datetime | None = None,
        token: str | None = DEMO_TOKEN,
        latency: float = 0.0,
    ) -> None:
        self.clock = clock
        self.origin = origin or clock.now() - FIVE_HOURS * 0.55
        self.token = token
        self.latency = latency
        self.payload: dict[str, Any] | None = None
        self.requests: list[dict[str, str]] = []
        self._faults: deque[Fault] = deque()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def fail(self, fault: Fault | None = None, *, times: int = 1, **fields: Any) -> None:
        """Answer the next ``times`` requests with ``fault`` (or ``Fault(**fields)``)."""
        self._faults.extend([fault or Fault(**fields)] * times)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/oauth/usage", self._usage)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimulatedUpstream:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _usage(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._faults:
            return await self._fault(request, self._faults.popleft())
        if self.token is not None and request.headers.get("Authorization") != (
            f"Bearer {self.token}"
        ):
            return web.json_response(
                {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": "Invalid bearer token"},
                },
                status=401,
            )
        body = self.payload if self.payload is not None else self.simulated_now()
        return web.json_response(body)

    def simulated_now(self) -> dict[str, Any]:
        return simulated_usage(self.clock.now(), self.origin)

    async def _fault(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.cut_mid_body:
            response = web.StreamResponse(status=200, headers={"Content-Length": "5000"})
            response.content_type = "application/json"
            await response.prepare(request)
            await response.write(json.dumps({"five_hour": {"utilization": 1}}).encode()[:20])
            if request.transport is not None:
                request.transport.close()
            return response
        return web.Response(
            status=fault.status,
            body=fault.body,
            content_type=fault.content_type,
            headers=fault.headers,
        )
