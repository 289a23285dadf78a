"""The bot's own HTTP server: ``/healthz``, ``/metrics`` and, in Slack's HTTP mode,
``/slack/events``. One aiohttp server on ``USAGE_BOT_HTTP_HOST:USAGE_BOT_HTTP_PORT``."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from usage_bot._exceptions import ConfigError
from usage_bot._metrics import Exposition

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Health:
    """What ``/healthz`` says: healthy or not, and a small JSON body saying why."""

    healthy: bool
    body: dict[str, Any] = field(default_factory=dict)


class _MalformedRequestsInOneLine(logging.Filter):
    """aiohttp answers a request it cannot parse (a header over 8 KiB, a broken chunk
    size, a bad Content-Length) with 400 itself, and logs it at ERROR with a traceback:
    on a port anyone may reach, that is noise an attacker controls. One INFO line each."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            if record.levelno > logging.INFO:
                record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = "http: answered a malformed request with 400 (%s)"
            record.args = (type(error).__name__,)
            record.exc_info, record.exc_text = None, None
        return True


_MALFORMED_FILTER = _MalformedRequestsInOneLine()


class HttpServer:
    """Serves health and metrics; front ends may add routes before :meth:`start`."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        health: Callable[[], Health] | None = None,
        metrics: Callable[[], Exposition] | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._health = health or (lambda: Health(True, {"status": "ok"}))
        self._metrics = metrics or (lambda: Exposition(b"", "text/plain; version=0.0.4"))
        self._app = web.Application()
        self._app.router.add_get("/healthz", self._healthz)
        self._app.router.add_get("/metrics", self._metrics_page)
        self._runner: web.AppRunner | None = None
        self.port = port
        server_log = logging.getLogger("aiohttp.server")
        if _MALFORMED_FILTER not in server_log.filters:
            server_log.addFilter(_MALFORMED_FILTER)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        self._app.router.add_route(method, path, handler)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "::", "") else self._host  # noqa: S104
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self._app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise ConfigError(
                [
                    f"USAGE_BOT_HTTP_HOST={self._host} with USAGE_BOT_HTTP_PORT={self._port} "
                    f"cannot be listened on ({exc.strerror or type(exc).__name__}): another "
                    "program (another usage-bot?) may use the port; set a free port, or 0 to "
                    "turn the HTTP server off."
                ]
            ) from None
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        health = self._health()
        return web.Response(
            status=200 if health.healthy else 503,
            text=json.dumps(health.body),
            content_type="application/json",
        )

    async def _metrics_page(self, _: web.Request) -> web.Response:
        exposition = self._metrics()
        return web.Response(
            body=exposition.body,
            headers={"Content-Type": exposition.content_type, "X-Content-Type-Options": "nosniff"},
        )
