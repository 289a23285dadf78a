"""The bot's own HTTP server, attacked with requests that are not HTTP at all."""

from __future__ import annotations

import asyncio
import logging

import pytest

from usage_bot._http import HttpServer

MALFORMED = {
    "header-over-8-kib": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    "negative-length": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "bad-chunk-size": (
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    ),
    "length-and-chunked": (
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "not-http": b"GARBAGE\r\n\r\n",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_request_gets_400_and_one_quiet_line(
    raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = HttpServer(host="127.0.0.1", port=0)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(100), 5)
        writer.close()
        await asyncio.sleep(0.05)
        # The server still answers a proper request afterwards.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        healthy = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        await server.stop()
    assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    assert healthy.startswith(b"HTTP/1.1 200")
    server_records = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert all(r.exc_info is None for r in server_records)
    assert all(r.levelno <= logging.INFO for r in server_records)
