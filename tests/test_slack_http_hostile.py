"""Slack's HTTP mode against hostile and unusual requests, at the network boundary.

The real :class:`SlackFrontEnd` in HTTP mode on the real :class:`HttpServer`, FakeSlack as
Slack's Web API and response_url, the simulated upstream, and a real HTTP client sending
what Slack (or anyone on the internet) could send to ``POST /slack/events``, signed with
a real HMAC-SHA256 by Slack's v0 scheme where it should be.

- a command whose text holds the word ``payload`` is answered like any other (slack-bolt
  alone takes every form body containing "payload" for an interactive payload);
- a missing, malformed, stale or wrong signature or timestamp gets 401; a signed body the
  bot cannot read gets 400; a body over 1 MiB gets 413 before anything parses it;
- each refusal is one log line, without a traceback; the signing secret and the tokens
  appear in no log line and no response.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.slack import FakeSlack
from tests.test_slack import BOT_TOKEN, SIGNING_SECRET, command_body, running, text_of
from usage_bot._clock import FakeClock
from usage_bot._config import Settings
from usage_bot._http import HttpServer
from usage_bot._simulator import SimulatedUpstream
from usage_bot.frontends.slack.http_mode import EVENTS_PATH, MAX_REQUEST_BYTES

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
DEEP = 100_000
ARABIC_INDIC = "".join(chr(0x660 + digit) for digit in range(10))
UNSIGNED = {"Content-Type": FORM}
# Never in a log line, never in an answer.
SECRETS = (SIGNING_SECRET, BOT_TOKEN)

Json = dict[str, Any]


def sign(
    body: bytes | str,
    *,
    secret: str = SIGNING_SECRET,
    at: float | None = None,
    content_type: str = FORM,
    digits: str = "0123456789",
) -> dict[str, str]:
    """The headers Slack sends: the v0 signature of ``body`` at time ``at`` (now), the
    timestamp written with ``digits``."""
    raw = body.encode() if isinstance(body, str) else body
    timestamp = str(int(time.time() if at is None else at)).translate(
        str.maketrans("0123456789", digits)
    )
    base = b"v0:" + timestamp.encode() + b":" + raw
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }


class Sender:
    """A real HTTP client aimed at ``/slack/events``; keeps every answer's body."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        self.bodies: list[str] = []

    async def post(self, body: bytes | str, headers: Mapping[str, str | bytes]) -> httpx.Response:
        response = await self.client.post(self.url, content=body, headers=headers)
        self.bodies.append(response.text)
        return response

    async def command(self, slack: FakeSlack, text: str) -> Json:
        """Type ``/claude-usage TEXT``: what the user sees (the report or the help)."""
        body = command_body(slack, text, tag=f"cmd-{len(self.bodies)}")
        response = await self.post(body, sign(body))
        assert response.status_code == 200, response.text
        answer: Json = response.json()
        return answer


@pytest.fixture
async def sender(
    make_settings: Callable[..., Settings],
    slack: FakeSlack,
    upstream: SimulatedUpstream,
    clock: FakeClock,
) -> AsyncIterator[Sender]:
    settings = make_settings(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_BASE_URL=slack.api_url,
        USAGE_BOT_API_BASE_URL=upstream.url,
        USAGE_BOT_HTTP_PORT="8080",
    )
    http = HttpServer(host="127.0.0.1", port=0)
    async with (
        running(settings, clock, http=http) as (front, _),
        httpx.AsyncClient(trust_env=False, timeout=10) as client,
    ):
        assert front.mode == "http"
        yield Sender(client, http.url + EVENTS_PATH)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged, at DEBUG; checked afterwards for tracebacks and secrets."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    assert_no_secret_logged(caplog)


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture) -> None:
    logged = caplog.text + "".join(record.getMessage() for record in caplog.records)
    for secret in SECRETS:
        assert secret not in logged


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The log lines the front end wrote about requests it refused."""
    return [
        record
        for record in caplog.records
        if record.name == "usage_bot.frontends.slack" and "refused a request" in record.message
    ]


def assert_one_quiet_line(caplog: pytest.LogCaptureFixture, level: int) -> None:
    """One refusal line at ``level``, and nothing anywhere with a traceback."""
    assert [record.levelno for record in refusals(caplog)] == [level]
    assert [record.getMessage() for record in caplog.records if record.exc_info] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def assert_no_secret(sender: Sender) -> None:
    for secret in SECRETS:
        assert all(secret not in body for body in sender.bodies)


def deeply_nested(levels: int) -> str:
    return "[" * levels + "]" * levels


# -- commands that bolt alone would take for interactive payloads ------------------------


@pytest.mark.parametrize(
    ("text", "control"),
    [
        pytest.param("payload", "zzz", id="payload"),
        pytest.param("help payload", "help", id="help-payload"),
        pytest.param("payload=1", "zzz", id="payload=1"),
        pytest.param('payload={"type":"block_actions"}', "zzz", id="payload-json"),
    ],
)
async def test_a_command_mentioning_payload_is_answered_like_any_other(
    sender: Sender, slack: FakeSlack, logs: pytest.LogCaptureFixture, text: str, control: str
) -> None:
    """The answer is the one another word gets: the help, saying what was not understood
    (or the plain help for ``help payload``, as for ``help``)."""
    answer = await sender.command(slack, text)
    expected = await sender.command(slack, control)

    if control == "zzz":
        expected = json.loads(json.dumps(expected).replace("zzz", text.replace('"', '\\"')))
        assert f"I don't understand `{text}`" in text_of(answer)
    assert answer == expected
    assert answer["response_type"] == "ephemeral"
    assert "/claude-usage" in text_of(answer)
    assert refusals(logs) == []
    assert_no_secret(sender)


async def test_a_plain_command_still_gets_the_report(
    sender: Sender, slack: FakeSlack, logs: pytest.LogCaptureFixture
) -> None:
    answer = await sender.command(slack, "share")

    assert answer["response_type"] == "in_channel"
    assert "5-hour" in text_of(answer)
    assert refusals(logs) == []


# -- 401: not Slack, or not now ----------------------------------------------------------


def _with(**changes: str | bytes | None) -> Callable[[bytes], dict[str, str | bytes]]:
    """Slack's headers for the body, with some replaced (None: left out)."""

    def headers(body: bytes) -> dict[str, str | bytes]:
        signed: dict[str, str | bytes] = dict(sign(body))
        for name, value in changes.items():
            header = {"timestamp": "X-Slack-Request-Timestamp", "signature": "X-Slack-Signature"}
            if value is None:
                del signed[header[name]]
            else:
                signed[header[name]] = value
        return signed

    return headers


def arabic_digits(body: bytes) -> dict[str, str | bytes]:
    """Signed now, the timestamp in Arabic-Indic digits: int() reads them, Slack never
    sends them."""
    headers: dict[str, str | bytes] = dict(sign(body, digits=ARABIC_INDIC))
    headers["X-Slack-Request-Timestamp"] = str(headers["X-Slack-Request-Timestamp"]).encode()
    return headers


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: UNSIGNED, id="unsigned"),
        pytest.param(
            lambda body: {"Content-Type": FORM, "X-Slack-Request-Timestamp": "soon"},
            id="unsigned-non-numeric-timestamp",
        ),
        pytest.param(_with(signature=None), id="no-signature"),
        pytest.param(_with(timestamp=None), id="no-timestamp"),
        pytest.param(_with(timestamp="1.7e9"), id="timestamp-not-an-integer"),
        pytest.param(arabic_digits, id="timestamp-arabic-digits"),
        pytest.param(_with(timestamp="9" * 400), id="timestamp-400-digits"),
        pytest.param(_with(signature="v0=not-hex"), id="signature-malformed"),
        pytest.param(_with(signature="v1=" + "0" * 64), id="signature-other-scheme"),
        pytest.param(lambda body: sign(body, secret="not-the-signing-secret"), id="wrong-secret"),
        pytest.param(lambda body: sign(body + b"&x=1"), id="signature-of-another-body"),
        pytest.param(lambda body: sign(body, at=time.time() - 301), id="stale"),
        # Six minutes ahead: a second ticking by on the way would make 301 s ahead 300.
        pytest.param(lambda body: sign(body, at=time.time() + 360), id="from-the-future"),
    ],
)
async def test_a_request_not_signed_now_by_slack_gets_401(
    sender: Sender,
    slack: FakeSlack,
    upstream: SimulatedUpstream,
    logs: pytest.LogCaptureFixture,
    headers: Callable[[bytes], Mapping[str, str | bytes]],
) -> None:
    body = command_body(slack, "share").encode()

    response = await sender.post(body, headers(body))

    assert response.status_code == 401
    assert "not signed with the Slack app's signing secret" in response.text
    assert (upstream.requests, slack.responses, slack.calls_to("chat.postMessage")) == ([], [], [])
    assert_one_quiet_line(logs, logging.INFO)
    assert_no_secret(sender)


async def test_a_refused_request_leaves_the_next_command_answered(
    sender: Sender, slack: FakeSlack, logs: pytest.LogCaptureFixture
) -> None:
    body = command_body(slack).encode()
    await sender.post(body, {"Content-Type": FORM, "X-Slack-Request-Timestamp": "soon"})
    await sender.post(deeply_nested(DEEP), sign(deeply_nested(DEEP), content_type=JSON))

    assert "5-hour" in text_of(await sender.command(slack, ""))


# -- 400: signed, but not something the bot can read -------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param("%%%&&&===", FORM, id="junk-form"),
        pytest.param("a=1&b=2", FORM, id="form-neither-command-nor-payload"),
        pytest.param("", FORM, id="empty"),
        pytest.param("command=%2Fclaude-usage&command=%2Fother", FORM, id="command-twice"),
        pytest.param("command=%FF%FE", FORM, id="form-not-utf8-escaped"),
        pytest.param(b"command=\xff\xfe", FORM, id="body-not-utf8"),
        pytest.param("&".join(f"f{i}=1" for i in range(5000)), FORM, id="form-5000-fields"),
        pytest.param("payload=not json", FORM, id="payload-not-json"),
        pytest.param("payload=%5B1%2C2%5D", FORM, id="payload-not-an-object"),
        pytest.param("payload=%7B%7D", FORM, id="payload-without-type"),
        pytest.param(urlencode({"payload": deeply_nested(DEEP)}), FORM, id="payload-deep"),
        pytest.param(deeply_nested(DEEP), JSON, id="json-deep"),
        pytest.param('{"type": "x", "a": ' + deeply_nested(200) + "}", JSON, id="json-200-deep"),
        pytest.param("{not json", JSON, id="json-broken"),
        pytest.param("[]", JSON, id="json-not-an-object"),
        pytest.param('{"type": "x", "n": ' + "9" * 5000 + "}", JSON, id="json-5000-digit-number"),
        pytest.param("hello", "text/plain", id="text-plain"),
        # Well-formed, but nothing this bot takes (each made Bolt fail with a 500).
        pytest.param(
            urlencode({"payload": json.dumps({"type": "block_actions", "actions": []})}),
            FORM,
            id="interactive-payload",
        ),
        pytest.param('{"type": "event_callback", "event": "x"}', JSON, id="event"),
        pytest.param('{"type": "url_verification", "challenge": "c"}', JSON, id="url-check"),
        pytest.param("command=%2Fother&text=", FORM, id="another-command"),
    ],
)
async def test_a_signed_body_the_bot_cannot_read_gets_400(
    sender: Sender,
    slack: FakeSlack,
    upstream: SimulatedUpstream,
    logs: pytest.LogCaptureFixture,
    body: str | bytes,
    content_type: str,
) -> None:
    started = time.monotonic()
    response = await sender.post(body, sign(body, content_type=content_type))
    elapsed = time.monotonic() - started

    assert response.status_code == 400
    assert elapsed < 1
    assert (upstream.requests, slack.responses) == ([], [])
    assert_one_quiet_line(logs, logging.WARNING)
    assert_no_secret(sender)


# -- what Slack itself sends besides commands --------------------------------------------


async def test_slacks_ssl_check_is_answered_without_a_signature(
    sender: Sender, logs: pytest.LogCaptureFixture
) -> None:
    """Slack checks the Request URL's certificate with an unsigned ``ssl_check=1``."""
    response = await sender.post("ssl_check=1&token=fake-verification-token", UNSIGNED)

    assert (response.status_code, response.text) == (200, "")
    assert refusals(logs) == []


async def test_no_payload_is_smuggled_in_with_an_ssl_check(
    sender: Sender, slack: FakeSlack, upstream: SimulatedUpstream, logs: pytest.LogCaptureFixture
) -> None:
    """As in bolt-js#2897: ``ssl_check=1`` beside anything else is no ssl_check."""
    body = "ssl_check=1&" + command_body(slack, "share")

    response = await sender.post(body, UNSIGNED)

    assert response.status_code == 401
    assert (upstream.requests, slack.responses) == ([], [])
    assert_one_quiet_line(logs, logging.INFO)


async def test_a_command_with_fields_slack_never_sends_is_answered(
    sender: Sender, slack: FakeSlack, logs: pytest.LogCaptureFixture
) -> None:
    """Fields named like parts of an event (which trip Bolt's parser) are left out."""
    extra = {"authorizations": "x", "event": "x", "response_urls": "x", "team": "x"}
    body = command_body(slack, "share") + "&" + urlencode(extra)

    response = await sender.post(body, sign(body))

    assert response.status_code == 200
    assert "5-hour" in text_of(response.json())
    assert_no_secret(sender)


# -- 413: too big to read ----------------------------------------------------------------


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
async def test_a_body_over_a_mebibyte_gets_413(
    sender: Sender, slack: FakeSlack, logs: pytest.LogCaptureFixture, signed: bool
) -> None:
    body = command_body(slack) + "&pad=" + "x" * MAX_REQUEST_BYTES
    headers = sign(body) if signed else UNSIGNED

    response = await sender.post(body, headers)

    assert response.status_code == 413
    assert_one_quiet_line(logs, logging.INFO)
    assert_no_secret(sender)


async def test_a_chunked_body_over_a_mebibyte_gets_413(
    sender: Sender, logs: pytest.LogCaptureFixture
) -> None:
    """No Content-Length to go by: the bot stops reading past the limit."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"x" * 65536

    response = await sender.client.post(sender.url, content=chunks(), headers=UNSIGNED)

    assert response.status_code == 413
    assert_one_quiet_line(logs, logging.INFO)


async def test_a_body_just_under_the_limit_is_read(
    sender: Sender, slack: FakeSlack, logs: pytest.LogCaptureFixture
) -> None:
    body = command_body(slack, "share")
    body += "&pad=" + "x" * (MAX_REQUEST_BYTES - len(body) - len("&pad="))
    assert len(body) == MAX_REQUEST_BYTES

    response = await sender.post(body, sign(body))

    assert response.status_code == 200
    assert "5-hour" in text_of(response.json())


async def test_a_body_that_is_not_the_gzip_it_claims_gets_400(
    sender: Sender, logs: pytest.LogCaptureFixture
) -> None:
    headers = {"Content-Type": FORM, "Content-Encoding": "gzip"}

    response = await sender.post(b"not gzip at all", headers)

    assert response.status_code == 400
    assert [record.levelno for record in refusals(logs)] == [logging.INFO]
    # aiohttp's own "Unhandled exception" follows, on every route alike (/healthz too):
    # after the answer, its lingering read of the body raises the decoding error again.
    # That is the HTTP server's to quieten, not the front end's.
    tracebacks = {record.name for record in logs.records if record.exc_info}
    assert tracebacks <= {"aiohttp.server"}


async def test_a_gzip_bomb_gets_413_without_being_unpacked(
    sender: Sender, logs: pytest.LogCaptureFixture
) -> None:
    bomb = gzip.compress(bytes(64 * MAX_REQUEST_BYTES))
    headers = {"Content-Type": FORM, "Content-Encoding": "gzip"}

    response = await sender.post(bomb, headers)

    assert response.status_code == 413
    assert_one_quiet_line(logs, logging.INFO)


async def test_a_sender_that_hangs_up_mid_body_leaves_one_quiet_line(
    sender: Sender, logs: pytest.LogCaptureFixture
) -> None:
    heard = RefusalHeard()
    logging.getLogger("usage_bot.frontends.slack").addHandler(heard)
    url = httpx.URL(sender.url)
    _, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Length: 100\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\ncommand=%2F"
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    try:
        async with asyncio.timeout(3):
            await heard.event.wait()
    finally:
        logging.getLogger("usage_bot.frontends.slack").removeHandler(heard)
    assert_one_quiet_line(logs, logging.INFO)


class RefusalHeard(logging.Handler):
    """Sets ``event`` when the front end logs a refusal (in the loop's own thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "refused a request" in record.getMessage():
            self.event.set()


# -- anything at all ---------------------------------------------------------------------

# Field names Slack sends with a command, and ones Bolt's parser reads in other requests.
FIELD_NAMES = st.sampled_from(
    [
        "command",
        "text",
        "user_id",
        "channel_id",
        "team_id",
        "enterprise_id",
        "response_url",
        "is_enterprise_install",
        "payload",
        "ssl_check",
        "token",
        "authorizations",
        "event",
        "team",
        "user",
        "channel",
        "view",
        "message",
        "response_urls",
        "function_data",
    ]
) | st.text(max_size=12)
FIELD_VALUES = (
    st.sampled_from(["/claude-usage", "1", "true", "", "payload", "[]", "{}"]) | st.text()
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.binary(max_size=200)
    | st.dictionaries(FIELD_NAMES, FIELD_VALUES, max_size=8).map(urlencode).map(str.encode),
    content_type=st.sampled_from([FORM, FORM, JSON, "text/plain", ""]),
    signed=st.booleans(),
)
async def test_whatever_arrives_gets_an_answer_and_no_traceback(
    sender: Sender,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
    signed: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    headers = sign(body, content_type=content_type) if signed else {"Content-Type": content_type}

    response = await sender.post(body, headers)

    assert response.status_code in ((200, 400) if signed else (200, 401)), response.text
    assert [record.getMessage() for record in caplog.records if record.exc_info] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert_no_secret_logged(caplog)
    assert_no_secret(sender)
