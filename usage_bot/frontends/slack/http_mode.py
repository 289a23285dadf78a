"""HTTP mode: what arrives at ``POST /slack/events``, checked before Bolt sees it.

The URL is public, so anyone can send anything to it. :func:`checked_command` reads and
checks each request: a body over :data:`MAX_REQUEST_BYTES` gets 413 unread; a missing,
malformed, stale or wrong signature or timestamp 401 (Slack's v0 scheme); a signed body
that is not a ``/claude-usage`` command 400 (the bot has no interactive components and
subscribes to no events). Each refusal is one log line. Slack's unsigned ``ssl_check``
gets 200, as Bolt answers it. What passes is the command's fields, for Bolt to get as
JSON: its own parser takes any form body containing "payload" (as ``/claude-usage
payload`` does) for an interactive payload, and it fails with a 500 on a non-numeric
timestamp, a malformed body or form fields named like parts of an event.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from aiohttp import web

from usage_bot._config import Secret
from usage_bot._texts import SLASH

# The package's one logger: Slack's log lines are named so, whichever module writes them.
log = logging.getLogger("usage_bot.frontends.slack")

EVENTS_PATH = "/slack/events"
# Slack's requests are a few kilobytes; anything this big is not from Slack.
MAX_REQUEST_BYTES = 1024 * 1024
# Slack's rule: a request signed more than 5 minutes ago (or ahead) may be a replay.
MAX_REQUEST_AGE = 300
# A slash command has 15 fields.
MAX_FORM_FIELDS = 100

_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
# What Slack sends with a slash command (docs.slack.dev, "Implementing slash commands").
_COMMAND_FIELDS = frozenset(
    {
        "api_app_id",
        "channel_id",
        "channel_name",
        "command",
        "enterprise_id",
        "enterprise_name",
        "is_enterprise_install",
        "response_url",
        "team_domain",
        "team_id",
        "text",
        "token",
        "trigger_id",
        "user_id",
        "user_name",
    }
)
_NOT_SIGNED = (
    "This request is not signed with the Slack app's signing secret, or was signed over 5 "
    "minutes ago."
)


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """A request to ``/slack/events`` that Bolt never sees: its status, why (for the log:
    never anything of the secret or of the request's own bytes), and whether it was
    signed, which makes it a warning."""

    status: Literal[400, 401, 413]
    reason: str
    signed: bool = False

    @property
    def answer(self) -> str:
        """What the sender is told: for 401, the same whatever the reason."""
        if self.status == 401:
            return _NOT_SIGNED
        if self.status == 413:
            return "This request is over 1 MiB; Slack's are far smaller."
        return f"usage-bot cannot read this request: {self.reason}."


async def checked_command(
    request: web.Request, secret: Secret
) -> dict[str, str] | web.StreamResponse:
    """The fields of the ``/claude-usage`` command ``request`` carries, signed with
    ``secret`` just now; otherwise the answer to give instead (and the line logged)."""
    body = await _read_body(request, MAX_REQUEST_BYTES)
    if isinstance(body, RequestRefused):
        return _refuse(request, body)
    if _is_ssl_check(body, request.content_type):
        return web.Response(status=200)
    # Slack's clock, not the injected one: the timestamp is real time wherever we run.
    refused = check_signature(
        secret,
        timestamp=request.headers.get("X-Slack-Request-Timestamp"),
        signature=request.headers.get("X-Slack-Signature"),
        body=body,
        now=time.time(),
    )
    if refused is not None:
        return _refuse(request, refused)
    command = read_slack_command(body, request.content_type)
    if isinstance(command, RequestRefused):
        return _refuse(request, command)
    return command


def check_signature(
    secret: Secret, *, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> RequestRefused | None:
    """Slack's v0 signature of ``body``: None when it is the signing secret's and the
    timestamp within :data:`MAX_REQUEST_AGE` of ``now``; else a 401 saying why."""
    if timestamp is None or signature is None:
        missing = "X-Slack-Request-Timestamp" if timestamp is None else "X-Slack-Signature"
        return RequestRefused(401, f"it has no {missing} header")
    if not _TIMESTAMP.fullmatch(timestamp):
        return RequestRefused(401, "its X-Slack-Request-Timestamp is not a number of seconds")
    age = int(now) - int(timestamp)
    if abs(age) > MAX_REQUEST_AGE:
        when = f"{age} s ago" if age > 0 else f"{-age} s ahead"
        return RequestRefused(
            401,
            f"its timestamp is {when} by this machine's clock, over 5 minutes (a replay, "
            "or a wrong clock here or at the sender)",
        )
    if not _SIGNATURE.fullmatch(signature):
        return RequestRefused(401, "its X-Slack-Signature is not a v0 signature")
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.reveal().encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return RequestRefused(401, "its signature is not SLACK_SIGNING_SECRET's")
    return None


def read_slack_command(body: bytes, content_type: str) -> dict[str, str] | RequestRefused:
    """A signed body as Bolt gets it: the fields of a ``/claude-usage`` command, those
    Slack documents (others are dropped: a form field named like a part of an event,
    ``authorizations`` say, trips Bolt's parser). The bot takes nothing else here: no
    interactive payloads, no events; anything else is a 400 saying why."""
    fields = _command_fields(body, content_type)
    if isinstance(fields, str):
        return RequestRefused(400, fields, signed=True)
    return {name: value for name, value in fields.items() if name in _COMMAND_FIELDS}


def _command_fields(body: bytes, content_type: str) -> dict[str, str] | str:
    """The form fields of a ``/claude-usage`` command, or why the body is not one."""
    if content_type == _JSON:
        return "it is JSON (an event), and this bot subscribes to none"
    if content_type != _FORM:
        return "it is not a form"
    fields = _form_fields(body)
    if isinstance(fields, str):
        return fields
    if "command" not in fields:
        if "payload" in fields:
            return "it is an interactive payload, and this bot has none"
        return "it is not a slash command"
    if fields["command"] != SLASH:
        return f"it is a slash command other than {SLASH}: point that one elsewhere"
    return fields


def _form_fields(body: bytes) -> dict[str, str] | str:
    """A form's fields, or why it is not a form Slack would send."""
    if body.count(b"&") >= MAX_FORM_FIELDS:
        return f"its form has over {MAX_FORM_FIELDS} fields"
    try:
        pairs = parse_qsl(
            body.decode(), keep_blank_values=True, strict_parsing=True, errors="strict"
        )
    except UnicodeDecodeError:
        return "its form is not UTF-8"
    except ValueError:
        return "it is not a well-formed form"
    fields = dict(pairs)
    if len(fields) != len(pairs):
        # Slack never repeats a field; which of two would count is the sender's game.
        return "its form has a field twice"
    return fields


def _is_ssl_check(body: bytes, content_type: str) -> bool:
    """Slack's unsigned check of the Request URL's certificate, answered as Bolt does:
    ``ssl_check=1`` and a token, nothing else (bolt-js#2897 smuggled a payload in beside
    one)."""
    if content_type != _FORM or len(body) > 1024:
        return False
    fields = _form_fields(body)
    return (
        not isinstance(fields, str)
        and fields.get("ssl_check") == "1"
        and set(fields) <= {"ssl_check", "token"}
    )


async def _read_body(request: web.Request, limit: int) -> bytes | RequestRefused:
    """The request's body, having read no more than ``limit`` bytes of it (decompressed)."""
    if request.content_length is not None and request.content_length > limit:
        return RequestRefused(413, "its body is over 1 MiB")
    body = bytearray()
    try:
        while chunk := await request.content.readany():
            body += chunk
            if len(body) > limit:
                return RequestRefused(413, "its body is over 1 MiB")
    except (web.RequestPayloadError, ConnectionError):
        return RequestRefused(
            400, "its body broke off, or its chunked or compressed encoding is broken"
        )
    return bytes(body)


def _refuse(request: web.Request, refused: RequestRefused) -> web.Response:
    # Anyone may knock; but a signed request the bot cannot read means that Slack sent
    # something new (a command renamed, an event subscribed to) or that the secret is out.
    level = logging.WARNING if refused.signed else logging.INFO
    log.log(
        level,
        "slack: refused a request to %s from %s (%d): %s",
        EVENTS_PATH,
        request.remote or "?",
        refused.status,
        refused.reason,
    )
    return web.Response(status=refused.status, text=refused.answer)
