"""The Slack fake answers the real slack_sdk clients the way Slack does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import FakeSlack


@pytest.fixture
def web(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.api_url)


async def ack_slash_commands(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
    if request.type == "slash_commands":
        reply = SocketModeResponse(
            envelope_id=request.envelope_id, payload={"text": f"got {request.payload['text']!r}"}
        )
        await client.send_socket_mode_response(reply)


@pytest.fixture
async def socket_mode(slack: FakeSlack) -> AsyncIterator[SocketModeClient]:
    client = SocketModeClient(
        app_token="xapp-test", web_client=AsyncWebClient(base_url=slack.api_url)
    )
    client.socket_mode_request_listeners.append(ack_slash_commands)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


async def test_auth_test_names_the_bot_and_records_the_token(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    answer = await web.auth_test()

    assert (answer["user_id"], answer["team_id"]) == (slack.bot_user_id, slack.team_id)
    assert [(call.method, call.authorization) for call in slack.calls] == [
        ("auth.test", "Bearer xoxb-test")
    ]


async def test_post_message_is_recorded(slack: FakeSlack, web: AsyncWebClient) -> None:
    answer = await web.chat_postMessage(channel="C123", text="hello")

    assert answer["channel"] == "C123"
    assert answer["ts"]
    assert slack.posts == [{"channel": "C123", "text": "hello"}]


async def test_rate_limit_shows_retry_after_to_the_sdk(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    slack.fail("chat.postMessage", status=429, retry_after=7)

    with pytest.raises(SlackApiError) as raised:
        await web.chat_postMessage(channel="C123", text="hello")

    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"
    assert raised.value.response["error"] == "ratelimited"


async def test_rate_limit_then_success_after_retry_after(slack: FakeSlack) -> None:
    web = AsyncWebClient(
        token="xoxb-test",
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    slack.fail("chat.postMessage", status=429, retry_after=1)

    started = time.monotonic()
    await web.chat_postMessage(channel="C123", text="hello")

    assert time.monotonic() - started >= 1
    assert [call.failed for call in slack.calls] == [True, False]
    assert slack.posts == [{"channel": "C123", "text": "hello"}]


async def test_a_delayed_call_answers_late_and_only_the_next_call_is_held(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    slack.delay("chat.postMessage", 0.3)

    started = time.monotonic()
    await web.chat_postMessage(channel="C123", text="slow")
    held_for = time.monotonic() - started
    await web.chat_postMessage(channel="C123", text="quick")

    assert held_for >= 0.3
    assert slack.held == [("chat.postMessage", {"channel": "C123", "text": "slow"})]
    assert [post["text"] for post in slack.posts] == ["slow", "quick"]


@pytest.mark.parametrize(("accepted", "posted"), [(False, []), (True, ["held"])])
async def test_a_client_that_hangs_up_on_a_held_call_posted_only_if_slack_accepted_it(
    slack: FakeSlack, accepted: bool, posted: list[str]
) -> None:
    impatient = AsyncWebClient(token="xoxb-test", base_url=slack.api_url, timeout=1)
    slack.delay("chat.postMessage", 30, accepted=accepted)

    with pytest.raises(TimeoutError):
        await impatient.chat_postMessage(channel="C123", text="held")
    for _ in range(250):  # the fake notices a hang-up within a few ms
        if slack.calls:
            break
        await asyncio.sleep(0.02)

    assert [post["text"] for post in slack.posts] == posted
    assert [call.status for call in slack.calls] == [200 if accepted else 499]


@pytest.mark.parametrize(
    ("method", "status", "error", "expected_error"),
    [
        ("chat.postMessage", 200, "channel_not_found", "channel_not_found"),
        ("chat.postMessage", 500, None, "fatal_error"),
        ("auth.test", 200, "invalid_auth", "invalid_auth"),
    ],
)
async def test_failure_on_demand_then_works_again(
    slack: FakeSlack,
    web: AsyncWebClient,
    method: str,
    status: int,
    error: str | None,
    expected_error: str,
) -> None:
    slack.fail(method, status=status, error=error)

    with pytest.raises(SlackApiError) as raised:
        await web.api_call(method, json={"channel": "C123", "text": "hello"})
    await web.api_call(method, json={"channel": "C123", "text": "hello"})

    assert (raised.value.response.status_code, raised.value.response["error"]) == (
        status,
        expected_error,
    )
    assert [call.failed for call in slack.calls] == [True, False]


async def test_bot_outside_a_channel(slack: FakeSlack, web: AsyncWebClient) -> None:
    slack.remove_bot_from("C123")

    info = await web.conversations_info(channel="C123")
    with pytest.raises(SlackApiError, match="not_in_channel"):
        await web.chat_postMessage(channel="C123", text="hello")

    assert info["channel"]["is_member"] is False
    assert slack.posts == []


async def test_incoming_webhook_records_posts_and_fails_in_plain_text(slack: FakeSlack) -> None:
    webhook = AsyncWebhookClient(slack.webhook_url)
    slack.fail_webhook(status=429, retry_after=2)
    slack.fail_webhook(status=404)

    limited = await webhook.send(text="one")
    missing = await webhook.send(text="two")
    sent = await webhook.send(text="three")

    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    assert (missing.status_code, missing.body) == (404, "no_service")
    assert (sent.status_code, sent.body) == (200, "ok")
    assert slack.webhook_posts == [{"text": "three"}]
    assert [call.failed for call in slack.webhook_calls] == [True, True, False]


async def test_response_url_posts_are_awaitable(slack: FakeSlack) -> None:
    await AsyncWebhookClient(slack.response_url("cmd-1")).send(text="done")

    assert await slack.wait_for_response(timeout=3) == ("cmd-1", {"text": "done"})
    assert slack.responses == [("cmd-1", {"text": "done"})]


async def test_socket_mode_client_acks_a_slash_command(
    slack: FakeSlack, socket_mode: SocketModeClient
) -> None:
    await slack.wait_for_socket(timeout=5)

    ack = await slack.send_slash_command(text="now", timeout=3)

    envelope = slack.envelopes[0]
    assert ack == {"envelope_id": envelope["envelope_id"], "payload": {"text": "got 'now'"}}
    assert envelope["payload"]["response_url"] == slack.response_url(envelope["envelope_id"])
    assert slack.acks[0].seconds < 3
    assert [call.token for call in slack.calls_to("apps.connections.open")] == ["xapp-test"]


@pytest.mark.parametrize("reason", [None, "refresh_requested"])
async def test_socket_mode_client_reconnects_after_a_drop(
    slack: FakeSlack, socket_mode: SocketModeClient, reason: str | None
) -> None:
    await slack.wait_for_socket(timeout=5)

    await slack.drop_socket(reason=reason)
    await slack.wait_for_socket(timeout=5)
    ack = await slack.send_slash_command(text="again", timeout=3)

    assert ack["payload"] == {"text": "got 'again'"}
    assert slack.socket_connections == 2
    assert len(slack.calls_to("apps.connections.open")) == 2


async def test_slack_bolt_app_acks_and_responds(slack: FakeSlack) -> None:
    app = AsyncApp(client=AsyncWebClient(token="xoxb-test", base_url=slack.api_url))

    @app.command("/claude-usage")
    async def usage(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack("working on it")
        await respond("here it is")

    handler = AsyncSocketModeHandler(app, "xapp-test")
    await handler.connect_async()
    try:
        await slack.wait_for_socket(timeout=5)
        ack = await slack.send_slash_command(timeout=3)
        response = await slack.wait_for_response(timeout=3)
    finally:
        await handler.close_async()

    assert ack["payload"] == {"text": "working on it"}
    assert response == (ack["envelope_id"], {"text": "here it is"})
