"""``usage-bot run`` as a subprocess, as a user starts it, and what /proc says about it."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import aiohttp

HEALTHY_WITHIN = 30.0
STOP_WITHIN = 12.0  # the bot stops within 10 s of SIGTERM
_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None)  # loaded here: the child, between fork and exec, only calls it


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the benchmark's process dies (Linux), so
    that a benchmark killed half-way leaves no bot running."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bot_command() -> list[str]:
    """The installed ``usage-bot`` script of this interpreter's environment, if there is one."""
    script = Path(sys.executable).with_name("usage-bot")
    if script.exists():
        return [str(script), "run"]
    return [sys.executable, "-m", "usage_bot", "run"]


class BotProcess:
    """One ``usage-bot run`` with ``settings`` as its whole environment, in ``workdir``.

    ``async with`` starts it and waits for a healthy ``/healthz`` (``startup_seconds``);
    leaving the block sends SIGTERM. Its stdout and stderr go to files in ``workdir``.
    """

    def __init__(self, settings: Mapping[str, str], *, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home = workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "USAGE_BOT_STATE": str(workdir / "state.sqlite3"),
            "USAGE_BOT_HTTP_HOST": "127.0.0.1",
            "USAGE_BOT_HTTP_PORT": str(self.port),
            **settings,
        }
        self.startup_seconds = float("nan")
        self._process: asyncio.subprocess.Process | None = None
        self._files: list[IO[bytes]] = []

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._process.pid

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> float:
        """Launch, then wait for ``/healthz`` to say 200; the seconds that took."""
        out = (self.workdir / f"{self.name}.out").open("ab")
        err = (self.workdir / f"{self.name}.log").open("ab")
        self._files = [out, err]
        started = time.perf_counter()
        self._process = await asyncio.create_subprocess_exec(
            *bot_command(),
            env=self.env,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            preexec_fn=_die_with_parent,
        )
        async with aiohttp.ClientSession() as session:
            while time.perf_counter() - started < HEALTHY_WITHIN:
                if self._process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
                try:
                    async with session.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            self.startup_seconds = time.perf_counter() - started
                            return self.startup_seconds
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.005)
        raise RuntimeError(
            f"{self.name} was not healthy within {HEALTHY_WITHIN} s: {self.log_tail()}"
        )

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_WITHIN)
            except TimeoutError:
                process.kill()
                await process.wait()
        for file in self._files:
            file.close()
        self._files = []

    def log_tail(self, lines: int = 15) -> str:
        log = self.workdir / f"{self.name}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) or "(no log)"

    def memory_kb(self) -> dict[str, int]:
        """``VmRSS`` (resident now) and ``VmHWM`` (its peak), in kB."""
        values = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        return values

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the whole process (all its threads) so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime and stime are fields 14 and 15 of proc(5), 12 and 13 after the name.
        return (int(fields[11]) + int(fields[12])) / _TICKS
