"""The real :class:`UsageClient` at the network boundary.

``httpx.MockTransport`` answers where only the HTTP exchange matters; the simulated
upstream (a real server on loopback) where a real socket does: a connection cut
mid-body, an answer slower than the client's timeout, a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import socket
import time
import traceback
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import TOKEN
from usage_bot._client import MAX_BODY_BYTES, MAX_RETRY_AFTER, UsageClient, parse_retry_after
from usage_bot._config import DEFAULT_USER_AGENT
from usage_bot._exceptions import (
    ChallengePage,
    CredentialsError,
    CredentialsRejected,
    RateLimited,
    ScopeMissing,
    UnexpectedResponse,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnreachable,
    UsageBotError,
)
from usage_bot._simulator import Fault, SimulatedUpstream

NOW = datetime(2026, 7, 19, 0, 0, tzinfo=UTC)
BASE_URL = "https://api.anthropic.test"
USAGE = {
    "five_hour": {"utilization": 15, "resets_at": "2026-07-19T03:39:59.570750Z"},
    "seven_day": None,
}
CHALLENGE_HTML = (
    b"<!DOCTYPE html><html lang='en-US'><head><title>Just a moment...</title></head>"
    b"<body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>"
)
AUTHENTICATION_ERROR = {
    "type": "error",
    "error": {"type": "authentication_error", "message": "Invalid bearer token"},
}
SCOPE_ERROR = {
    "type": "error",
    "error": {
        "type": "permission_error",
        "message": "OAuth token does not meet scope requirement user:profile",
    },
}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client trusts the environment's proxies; loopback tests must not go through one."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def mock_client(handler: Handler, *, base_url: str = BASE_URL) -> UsageClient:
    return UsageClient(
        base_url=base_url, user_agent=DEFAULT_USER_AGENT, transport=httpx.MockTransport(handler)
    )


async def fetch_with(handler: Handler, *, token: str = TOKEN, now: datetime = NOW) -> object:
    client = mock_client(handler)
    try:
        return await client.fetch(token, now=now)
    finally:
        await client.aclose()


async def error_from(handler: Handler) -> UsageBotError:
    with pytest.raises(UsageBotError) as caught:
        await fetch_with(handler)
    return caught.value


def answer(
    status: int,
    *,
    payload: object = None,
    content: bytes | AsyncIterator[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> Handler:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=payload, content=content, headers=headers)

    return handler


def assert_for_users(exc: UsageBotError, *says: str) -> None:
    """One line for users that says what to do, and nothing of the token anywhere."""
    message = exc.message
    assert message == str(exc)
    assert message.strip() == message
    assert "\n" not in message
    assert message[:1].isupper()
    assert message.endswith(".")
    assert len(message) < 320
    for fragment in says:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    shown = "".join(traceback.format_exception(exc)) + repr(exc)
    assert TOKEN not in shown
    assert "Bearer" not in shown


def assert_one_sentence(message: str) -> None:
    body = message.removesuffix(".")
    assert not re.search(r"[.!?]\s+[A-Z]", body), f"more than one sentence: {message!r}"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# The request


async def test_request_is_what_claude_code_sends() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=USAGE)

    assert await fetch_with(handler) == USAGE
    (request,) = seen
    assert request.method == "GET"
    assert request.url.scheme == "https"
    assert request.url.host == "api.anthropic.test"
    assert request.url.path == "/api/oauth/usage"
    assert request.url.query == b""
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["anthropic-beta"] == "oauth-2025-04-20"
    assert request.headers["Accept"] == "application/json"
    assert re.fullmatch(r"claude-code/\d+\.\d+\.\d+", request.headers["User-Agent"])
    assert not request.content


async def test_each_fetch_sends_the_token_it_is_given() -> None:
    """Claude Code rotates tokens: nothing of an earlier token is kept."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json=USAGE)

    client = mock_client(handler)
    try:
        await client.fetch("sk-ant-oat01-first", now=NOW)
        await client.fetch("sk-ant-oat01-second", now=NOW)
    finally:
        await client.aclose()
    assert seen == ["Bearer sk-ant-oat01-first", "Bearer sk-ant-oat01-second"]
    assert client.requests_made == 2


async def test_base_url_with_a_path_prefix_is_kept() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=USAGE)

    client = mock_client(handler, base_url="https://proxy.test/anthropic")
    try:
        await client.fetch(TOKEN, now=NOW)
    finally:
        await client.aclose()
    assert seen[0].url.path == "/anthropic/api/oauth/usage"


async def test_the_simulated_upstream_receives_the_same_headers(
    upstream: SimulatedUpstream,
) -> None:
    client = UsageClient(base_url=upstream.url, user_agent=DEFAULT_USER_AGENT)
    try:
        payload = await client.fetch(TOKEN, now=NOW)
    finally:
        await client.aclose()
    assert "five_hour" in payload
    (headers,) = upstream.requests
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["anthropic-beta"] == "oauth-2025-04-20"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == DEFAULT_USER_AGENT


async def test_the_token_is_in_no_log_record_even_at_debug(
    upstream: SimulatedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = UsageClient(base_url=upstream.url, user_agent=DEFAULT_USER_AGENT)
    try:
        await client.fetch(TOKEN, now=NOW)
        upstream.fail(status=401, body=json.dumps(AUTHENTICATION_ERROR).encode())
        with pytest.raises(CredentialsRejected):
            await client.fetch(TOKEN, now=NOW)
    finally:
        await client.aclose()
    assert caplog.records, "httpx logs nothing at DEBUG: the test would prove nothing"
    assert TOKEN not in caplog.text
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


# Answers that work


async def test_a_body_just_under_the_cap_is_read() -> None:
    padding = "x" * (MAX_BODY_BYTES - 1000)
    body = {**USAGE, "padding": padding}
    assert await fetch_with(answer(200, payload=body)) == body


async def test_an_answer_with_more_keys_and_no_content_type_is_read() -> None:
    body = json.dumps({**USAGE, "currency": "EUR", "new_thing": [1, 2]}).encode()
    payload = await fetch_with(answer(200, content=body))
    assert payload == {**USAGE, "currency": "EUR", "new_thing": [1, 2]}


# Credentials the upstream refuses


async def test_401_authentication_error_is_credentials_rejected() -> None:
    exc = await error_from(answer(401, payload=AUTHENTICATION_ERROR))
    assert type(exc) is CredentialsRejected
    assert isinstance(exc, CredentialsError)
    assert exc.exit_code == 3
    assert_for_users(exc, "`claude`", "log in again")
    assert_one_sentence(exc.message)


async def test_403_scope_error_is_scope_missing_naming_setup_token() -> None:
    exc = await error_from(answer(403, payload=SCOPE_ERROR))
    assert type(exc) is ScopeMissing
    assert exc.exit_code == 3
    assert_for_users(exc, "user:profile", "claude setup-token", ".credentials.json")


async def test_403_scope_error_message_is_one_sentence() -> None:
    exc = await error_from(answer(403, payload=SCOPE_ERROR))
    assert_one_sentence(exc.message)


async def test_403_without_a_scope_message_is_an_http_error() -> None:
    body = {"type": "error", "error": {"type": "permission_error", "message": "Forbidden"}}
    exc = await error_from(answer(403, payload=body))
    assert type(exc) is UpstreamHTTPError
    assert exc.status == 403
    assert exc.exit_code == 4
    assert_for_users(exc, "HTTP 403")
    assert_one_sentence(exc.message)


# Cloudflare challenge pages


@pytest.mark.parametrize("status", [200, 403])
@pytest.mark.parametrize("content_type", ["text/html; charset=UTF-8", None])
async def test_html_challenge_page_is_challenge_page(status: int, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    exc = await error_from(answer(status, content=CHALLENGE_HTML, headers=headers))
    assert type(exc) is ChallengePage
    assert exc.status == status
    assert exc.exit_code == 4
    assert_for_users(exc, "web page", f"HTTP {status}", "USAGE_BOT_USER_AGENT")
    assert_one_sentence(exc.message)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (502, {"Content-Type": "text/html"}, UpstreamServerError),
        (429, {"Content-Type": "text/html", "Retry-After": "1800"}, RateLimited),
    ],
)
async def test_an_html_error_page_keeps_the_meaning_of_its_status(
    status: int, headers: dict[str, str], expected: type[UpstreamError]
) -> None:
    body = b"<!DOCTYPE html><html><title>Error 1015 - You are being rate limited</title></html>"
    exc = await error_from(answer(status, content=body, headers=headers))
    assert type(exc) is expected
    if isinstance(exc, RateLimited):
        assert exc.retry_after == 1800


# Rate limits


def rate_limited(retry_after: str | None) -> Handler:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited"}}
    return answer(429, payload=body, headers=headers)


def http_date(moment: datetime) -> str:
    return email.utils.format_datetime(moment, usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "seconds", "says"),
    [
        ("30", 30.0, "in 30 s"),
        (" 45 ", 45.0, "in 45 s"),
        (http_date(NOW + timedelta(minutes=2)), 120.0, "in 2 min"),
        (http_date(NOW + timedelta(seconds=30)), 30.0, "in 30 s"),
        (http_date(NOW - timedelta(minutes=5)), 0.0, "in a few minutes"),
        ("0", 0.0, "in a few minutes"),
        (None, None, "in a few minutes"),
        ("", None, "in a few minutes"),
        ("soon", None, "in a few minutes"),
        ("3600", 3600.0, "in 60 min"),
        ("7200", MAX_RETRY_AFTER, "in 60 min"),
        (http_date(NOW + timedelta(hours=5)), MAX_RETRY_AFTER, "in 60 min"),
        ("nan", None, "in a few minutes"),
    ],
)
async def test_429_is_rate_limited_with_retry_after(
    retry_after: str | None, seconds: float | None, says: str
) -> None:
    exc = await error_from(rate_limited(retry_after))
    assert type(exc) is RateLimited
    assert exc.retry_after == seconds
    assert exc.exit_code == 4
    assert_for_users(exc, "rate-limiting", says)
    assert_one_sentence(exc.message)


def test_an_http_date_counts_from_the_now_passed_in() -> None:
    header = http_date(NOW + timedelta(minutes=10))
    assert parse_retry_after(header, NOW) == 600.0
    assert parse_retry_after(header, NOW + timedelta(minutes=4)) == 360.0
    assert parse_retry_after(header, NOW + timedelta(minutes=20)) == 0.0
    assert MAX_RETRY_AFTER == 3600.0


# Server and other HTTP errors


@pytest.mark.parametrize("status", [500, 502, 503, 529])
async def test_5xx_is_a_server_error(status: int) -> None:
    body = {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
    exc = await error_from(answer(status, payload=body))
    assert type(exc) is UpstreamServerError
    assert exc.status == status
    assert exc.exit_code == 4
    assert_for_users(exc, f"HTTP {status}", "retries")
    assert_one_sentence(exc.message)


@pytest.mark.parametrize("status", [302, 400, 404, 405, 418, 451])
async def test_any_other_status_is_an_http_error(status: int) -> None:
    headers = {"Location": "https://elsewhere.test/"} if status == 302 else {}
    exc = await error_from(answer(status, payload={"error": "nope"}, headers=headers))
    assert type(exc) is UpstreamHTTPError
    assert exc.status == status
    assert exc.exit_code == 4
    assert_for_users(exc, f"HTTP {status}", "USAGE_BOT_API_BASE_URL")
    assert_one_sentence(exc.message)


# Timeouts and the network


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_a_transport_timeout_is_upstream_timeout(error: type[httpx.TimeoutException]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("timed out", request=request)

    exc = await error_from(handler)
    assert type(exc) is UpstreamTimeout
    assert exc.exit_code == 4
    assert_for_users(exc, "did not answer in time")
    assert_one_sentence(exc.message)


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (httpx.ConnectError, "network"),
        (httpx.ReadError, "broke off mid-answer"),
        (httpx.RemoteProtocolError, "broke off mid-answer"),
    ],
)
async def test_a_transport_error_is_upstream_unreachable(
    error: type[httpx.TransportError], says: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(f"failed with Bearer {TOKEN}", request=request)

    exc = await error_from(handler)
    assert type(exc) is UpstreamUnreachable
    assert_for_users(exc, "api.anthropic.test", says)


async def test_an_answer_slower_than_the_timeout_is_upstream_timeout(
    upstream: SimulatedUpstream,
) -> None:
    upstream.fail(Fault(status=200, body=json.dumps(USAGE).encode(), delay=1.0))
    client = UsageClient(
        base_url=upstream.url, user_agent=DEFAULT_USER_AGENT, timeout=httpx.Timeout(0.2)
    )
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeout) as caught:
            await client.fetch(TOKEN, now=NOW)
    finally:
        await client.aclose()
    assert time.monotonic() - started < 0.9
    assert_for_users(caught.value, "did not answer in time")


async def test_a_closed_port_is_upstream_unreachable() -> None:
    client = UsageClient(
        base_url=f"http://127.0.0.1:{closed_port()}",
        user_agent=DEFAULT_USER_AGENT,
        timeout=httpx.Timeout(2.0),
    )
    try:
        with pytest.raises(UpstreamUnreachable) as caught:
            await client.fetch(TOKEN, now=NOW)
    finally:
        await client.aclose()
    assert caught.value.exit_code == 4
    assert_for_users(caught.value, "Cannot reach 127.0.0.1", "network")
    assert_one_sentence(caught.value.message)


async def test_a_connection_cut_mid_body_is_upstream_unreachable(
    upstream: SimulatedUpstream,
) -> None:
    upstream.fail(cut_mid_body=True)
    client = UsageClient(base_url=upstream.url, user_agent=DEFAULT_USER_AGENT)
    try:
        with pytest.raises(UpstreamUnreachable) as caught:
            await client.fetch(TOKEN, now=NOW)
        # The pool recovers: the next request gets a fresh connection.
        assert "five_hour" in await client.fetch(TOKEN, now=NOW)
    finally:
        await client.aclose()
    assert_for_users(caught.value, "127.0.0.1")


@pytest.fixture
async def trickling_server() -> AsyncIterator[str]:
    """A server that sends a valid answer one byte every 50 ms (1.5 s in all)."""
    body = json.dumps({"five_hour": None, "pad": "x" * 8}).encode()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            for byte in body:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_an_answer_trickling_in_still_times_out(trickling_server: str) -> None:
    client = UsageClient(
        base_url=trickling_server, user_agent=DEFAULT_USER_AGENT, timeout=httpx.Timeout(0.2)
    )
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeout):
            await client.fetch(TOKEN, now=NOW)
    finally:
        await client.aclose()
    assert time.monotonic() - started < 1.0


# Bodies that are not what we expect


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"Internal error, please retry", "not JSON"),
        (b"", "not JSON"),
        (b'{"five_hour": ', "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'[{"five_hour": null}]', "not a JSON object"),
        (b"null", "not a JSON object"),
        (b'"five_hour"', "not a JSON object"),
        (b"42", "not a JSON object"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_unexpected(body: bytes, detail: str) -> None:
    exc = await error_from(answer(200, content=body, headers={"Content-Type": "application/json"}))
    assert type(exc) is UnexpectedResponse
    assert exc.exit_code == 4
    assert_for_users(exc, detail, "update usage-bot")
    assert_one_sentence(exc.message)


async def test_a_body_over_a_megabyte_is_unexpected() -> None:
    body = json.dumps({**USAGE, "padding": "x" * MAX_BODY_BYTES}).encode()
    exc = await error_from(answer(200, content=body, headers={"Content-Type": "application/json"}))
    assert type(exc) is UnexpectedResponse
    assert_for_users(exc, "kB", "update usage-bot")


async def test_an_endless_body_is_cut_off_at_the_cap() -> None:
    sent = 0
    chunk = b" " * 65536

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += len(chunk)
            yield chunk

    exc = await error_from(answer(200, content=endless()))
    assert type(exc) is UnexpectedResponse
    assert sent <= MAX_BODY_BYTES + len(chunk)


async def test_a_body_that_cannot_be_decoded_is_an_upstream_error() -> None:
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    with pytest.raises(UpstreamError):
        await fetch_with(answer(200, content=b"this is not gzip", headers=headers))
