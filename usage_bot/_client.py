"""The upstream client: one ``GET /api/oauth/usage``, every failure a typed error.

One :class:`UsageClient` (one ``httpx.AsyncClient``, one connection pool) serves every
account of the process. It only asks; when to ask is the usage service's business.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from usage_bot._exceptions import (
    ChallengePage,
    CredentialsRejected,
    RateLimited,
    ScopeMissing,
    UnexpectedResponse,
    UpstreamHTTPError,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

USAGE_PATH = "/api/oauth/usage"
OAUTH_BETA = "oauth-2025-04-20"
MAX_BODY_BYTES = 1_000_000
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
MAX_RETRY_AFTER = 3600.0


class UsageClient:
    """Asks the usage endpoint; :meth:`fetch` returns the JSON object or raises."""

    def __init__(
        self,
        *,
        base_url: str,
        user_agent: str,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        trust_env: bool = True,
    ) -> None:
        self._host = urlsplit(base_url).hostname or base_url
        # httpx bounds each connect and read, not the whole request: a body that trickles
        # in would hold the account's single request in flight for as long as it likes.
        self._total = (timeout.connect or 0.0) + (timeout.read or 0.0) or None
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={
                "anthropic-beta": OAUTH_BETA,
                "Accept": "application/json",
                "User-Agent": user_agent,
            },
            follow_redirects=False,
            trust_env=trust_env,
        )
        self.requests_made = 0

    async def fetch(self, token: str, *, now: datetime) -> dict[str, Any]:
        """One request with this token; ``now`` turns an HTTP-date ``retry-after`` into seconds."""
        self.requests_made += 1
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with (
                asyncio.timeout(self._total),
                self._http.stream("GET", USAGE_PATH, headers=headers) as response,
            ):
                body = await _read_capped(response)
        except (httpx.TimeoutException, TimeoutError):
            raise UpstreamTimeout() from None
        except httpx.DecodingError:
            raise UnexpectedResponse("the answer could not be decoded") from None
        except (httpx.ReadError, httpx.RemoteProtocolError):
            raise UpstreamUnreachable(self._host, mid_answer=True) from None
        except httpx.HTTPError:
            raise UpstreamUnreachable(self._host) from None
        return _interpret(response, body, now)

    async def aclose(self) -> None:
        await self._http.aclose()


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise UnexpectedResponse(f"the answer is over {MAX_BODY_BYTES // 1000} kB")
        chunks.append(chunk)
    return b"".join(chunks)


def _interpret(response: httpx.Response, body: bytes, now: datetime) -> dict[str, Any]:
    status = response.status_code
    # Status first: a Cloudflare 429 or 502 page is a rate limit or an outage, whatever
    # its body; only an HTML page where JSON should be is a challenge.
    if status == 429:
        raise RateLimited(parse_retry_after(response.headers.get("retry-after"), now))
    if status >= 500:
        raise UpstreamServerError(status)
    if _looks_like_html(response, body):
        raise ChallengePage(status)
    if status == 401:
        raise CredentialsRejected()
    if status == 403:
        if _mentions_scope(body):
            raise ScopeMissing()
        raise UpstreamHTTPError(status)
    if status != 200:
        raise UpstreamHTTPError(status)
    try:
        data = json.loads(body)
    except ValueError:  # not JSON, not UTF-8, or a number over Python's 4300 digits
        raise UnexpectedResponse("the answer is not JSON") from None
    except RecursionError:
        raise UnexpectedResponse("the answer is nested too deeply") from None
    if not isinstance(data, dict):
        raise UnexpectedResponse("the answer is not a JSON object")
    return data


def _looks_like_html(response: httpx.Response, body: bytes) -> bool:
    kind = response.headers.get("content-type", "").lower()
    start = body[:200].lstrip().lower()
    return "text/html" in kind or start.startswith((b"<!doctype html", b"<html"))


def _mentions_scope(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return isinstance(message, str) and "scope" in message.lower()


def parse_retry_after(raw: str | None, now: datetime) -> float | None:
    """Seconds to wait from ``retry-after`` (seconds or an HTTP date), capped at an hour."""
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
