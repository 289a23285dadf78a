"""Reading the login and ``NAME_FILE`` secrets safely (issue 11, item 5).

Found from outside against the running bot: a ``.credentials.json`` that is a FIFO hung
the whole process; a link to ``/dev/zero`` was read until the kernel killed it; a token
with a non-ASCII character or a line break was blamed on the upstream. Now only a
regular file is read (a link to one is fine), at most 1 MiB of it, never blocking, and a
token that is not printable ASCII without spaces is a login problem, named as such.

Everything here runs against real files: a real FIFO (``os.mkfifo``), a real link to
``/dev/zero``, a real directory, a real 2 MiB file, and the real ``usage-bot check``.
What could hang or read without bound (a FIFO, a device) runs in a child process with a
deadline and a cap on its memory, so that a regression fails the test instead of hanging
the suite or exhausting the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOKEN, write_login
from tests.test_cli import Case, Machine, Result, judge, new_machine, with_chat_secrets
from usage_bot._clock import FakeClock
from usage_bot._config import AccountSpec, UpstreamConfig, load_settings
from usage_bot._credentials import CredentialLoader
from usage_bot._exceptions import (
    ConfigError,
    CredentialsError,
    CredentialsNotAFile,
    CredentialsTooLarge,
    CredentialsUnreadable,
    TokenMalformed,
)
from usage_bot._files import MAX_FILE_BYTES
from usage_bot._simulator import SimulatedUpstream

ROOT = Path(__file__).parent.parent
DEADLINE = 20.0  # for a child process: imports on a loaded machine, never a hang
QUICK = 2.0  # for the read itself, once imported: a refusal takes microseconds
MEMORY_CAP = 2 * 1024**3  # a child reading /dev/zero stops at this, not at the machine's end
HUGE = 2 * MAX_FILE_BYTES

# Each half is a canary: a message that quotes the token, or any part of it, shows one.
LEFT, RIGHT = "zz-canary-left-4e1f9a", "zz-canary-right-8a2b7c"
BAD_TOKENS = {
    "non-ascii": (f"{LEFT}é{RIGHT}", "a non-ASCII character"),
    "crlf": (f"{LEFT}\r\n{RIGHT}", "a line break"),
    "lf": (f"{LEFT}\n{RIGHT}", "a line break"),
    "space": (f"{LEFT} {RIGHT}", "a space"),
    "tab": (f"{LEFT}\t{RIGHT}", "a tab"),
    "nul": (f"{LEFT}\x00{RIGHT}", "a control character"),
    "escape": (f"{LEFT}\x1b[31m{RIGHT}", "a control character"),
    "delete": (f"{LEFT}\x7f{RIGHT}", "a control character"),
    "no-break-space": (f"{LEFT}\u00a0{RIGHT}", "a non-ASCII character"),
    "byte-order-mark": (f"\ufeff{LEFT}{RIGHT}", "a non-ASCII character"),
    "lone-surrogate": (f"{LEFT}\ud800{RIGHT}", "a non-ASCII character"),
}


def assert_no_token(text: str) -> None:
    assert LEFT not in text, text
    assert RIGHT not in text, text


def login_json(token: str) -> str:
    """A whole, valid ``.credentials.json`` but for its token (JSON escapes any character)."""
    return json.dumps(
        {
            "claudeAiOauth": {
                "accessToken": token,
                "expiresAt": 4102444800000,
                "scopes": ["user:inference", "user:profile"],
            }
        }
    )


def loader(settings: UpstreamConfig, path: Path | None = None) -> CredentialLoader:
    return CredentialLoader(AccountSpec("alice" if path else "default", path), settings)


def refused(read: Callable[[], object]) -> CredentialsError:
    """The CredentialsError ``read`` raises; it must come at once."""
    started = time.monotonic()
    with pytest.raises(CredentialsError) as caught:
        read()
    assert time.monotonic() - started < QUICK
    assert caught.value.exit_code == 3
    assert "\n" not in caught.value.message
    assert caught.value.message.endswith(".")
    return caught.value


# -- what could block or read without end: in a child process ----------------------------------

PROBE = """
import json, resource, sys, time
from datetime import UTC, datetime
from usage_bot._config import load_settings
from usage_bot._credentials import CredentialLoader
from usage_bot._exceptions import UsageBotError

hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), hard))
started = time.monotonic()
try:
    settings = load_settings(json.loads(sys.argv[1]), dotenv_path=None)
    for account in settings.upstream.accounts:
        CredentialLoader(account, settings.upstream, platform="linux").load(datetime.now(UTC))
except UsageBotError as exc:
    error, message, code = type(exc).__name__, exc.message, exc.exit_code
else:
    error, message, code = None, "", 0
print(json.dumps([error, message, code, time.monotonic() - started]))
"""


@dataclass
class Outcome:
    error: str | None
    message: str
    exit_code: int
    seconds: float


def in_child(env: Mapping[str, str], cwd: Path) -> Outcome:
    """Settings from ``env``, then every account's login, in a child with a deadline."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(dict(env)), str(MEMORY_CAP)],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading the login did not return within {DEADLINE} s: it blocked")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    outcome = Outcome(*json.loads(done.stdout))
    assert outcome.seconds < QUICK, outcome
    return outcome


def fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def dev_zero(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/dev/zero")
    return path


HAZARDS = {
    "fifo": (fifo, "a FIFO (named pipe)"),
    "dev-zero": (dev_zero, "a link to /dev/zero, a character device"),
}


@pytest.mark.parametrize("hazard", HAZARDS)
def test_a_login_file_that_is_a_fifo_or_a_device_is_refused_at_once(
    tmp_path: Path, hazard: str
) -> None:
    make, what = HAZARDS[hazard]
    login = make(tmp_path / "claude" / ".credentials.json")
    got = in_child({"CLAUDE_CONFIG_DIR": str(tmp_path / "claude")}, tmp_path)
    assert got.error == "CredentialsNotAFile", got
    assert got.exit_code == 3
    assert got.message.startswith(f"The Claude login at {login} is {what}, not a regular file")
    assert "replace it with the file Claude Code writes" in got.message
    assert "run `claude` on the workstation and log in again" in got.message


@pytest.mark.parametrize("hazard", HAZARDS)
def test_an_account_path_that_is_a_fifo_or_a_device_is_refused_at_once(
    tmp_path: Path, hazard: str
) -> None:
    make, what = HAZARDS[hazard]
    login = make(tmp_path / "alice" / ".credentials.json")  # the path named, and inside a dir
    write_login(tmp_path / "bob")
    accounts = f"alice={login},carol={tmp_path / 'alice'},bob={tmp_path / 'bob'}"
    got = in_child({"USAGE_BOT_ACCOUNTS": accounts}, tmp_path)
    assert got.error == "CredentialsNotAFile", got
    assert f"The Claude login at {login} is {what}" in got.message


@pytest.mark.parametrize("hazard", HAZARDS)
def test_a_token_file_that_is_a_fifo_or_a_device_is_refused_at_once(
    tmp_path: Path, hazard: str
) -> None:
    make, what = HAZARDS[hazard]
    token_file = make(tmp_path / "token")
    got = in_child({"CLAUDE_CODE_OAUTH_TOKEN_FILE": str(token_file)}, tmp_path)
    assert got.error == "CredentialsNotAFile", got
    assert got.exit_code == 3  # the login is read on every fetch, so it is a login problem
    assert got.message == (
        f"The Claude login at {token_file} is {what}, not a regular file, so the bot does not "
        "read it; point CLAUDE_CODE_OAUTH_TOKEN_FILE at a regular file that holds only the "
        "token."
    )


@pytest.mark.parametrize("hazard", HAZARDS)
def test_a_secret_file_that_is_a_fifo_or_a_device_is_a_configuration_error(
    tmp_path: Path, hazard: str
) -> None:
    make, what = HAZARDS[hazard]
    secret_file = make(tmp_path / "slack-bot-token")
    env = {"SLACK_BOT_TOKEN_FILE": str(secret_file), "SLACK_APP_TOKEN": "xapp-1-A1-x"}
    got = in_child(env, tmp_path)
    assert got.error == "ConfigError", got
    assert got.exit_code == 2
    assert (
        f"SLACK_BOT_TOKEN_FILE={secret_file} is {what}, not a regular file, so it is not "
        "read: point it at a regular file that holds only the secret."
    ) in got.message


RACE = """
import os, sys, time
from pathlib import Path
from usage_bot._files import NotARegularFile, read_small_file

path, seconds = Path(sys.argv[1]), float(sys.argv[2])
content = b"the login, whole"
read = refused = 0
until = time.monotonic() + seconds
while time.monotonic() < until:
    try:
        got = read_small_file(path)
    except NotARegularFile:
        refused += 1
        continue
    if got != content:
        sys.exit(f"read {got!r}: a FIFO swapped in after the check was read")
    read += 1
print(read, refused)
"""

SWAP = """
import os, sys, time
from pathlib import Path

path, seconds = Path(sys.argv[1]), float(sys.argv[2])
regular, pipe = path.with_name("regular"), path.with_name("pipe")
until = time.monotonic() + seconds
while time.monotonic() < until:
    regular.write_bytes(b"the login, whole")
    os.replace(regular, path)
    os.mkfifo(pipe)
    os.replace(pipe, path)
"""


def test_a_fifo_swapped_in_between_the_check_and_the_read_is_never_read(tmp_path: Path) -> None:
    """Another process swaps a regular file and a FIFO at the path as fast as it can while
    this one reads: each read gives the whole file or a refusal, never the FIFO's empty
    read and never a blocked open. (Whether the swap lands inside the microseconds between
    ``stat`` and ``open`` is up to the scheduler; with ``fstat`` removed from the reader,
    this fails within a second on a two-core machine.)"""
    login = tmp_path / "login"
    login.write_bytes(b"the login, whole")
    seconds = "1.5"
    swapper = subprocess.Popen([sys.executable, "-c", SWAP, str(login), seconds], cwd=tmp_path)
    try:
        done = subprocess.run(
            [sys.executable, "-c", RACE, str(login), seconds],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a read blocked: a FIFO swapped in was opened without O_NONBLOCK")
    finally:
        assert swapper.wait(timeout=DEADLINE) == 0
    assert done.returncode == 0, done.stderr
    read, refusals = (int(n) for n in done.stdout.split())
    assert read > 0
    assert refusals > 0


# -- what is harmless to get wrong: in this process, timed -------------------------------------


def test_a_login_file_that_is_a_directory_is_an_error_not_a_missing_login(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "claude" / ".credentials.json"
    folder.mkdir(parents=True)
    error = refused(lambda: loader(UpstreamConfig(claude_config_dir=tmp_path / "claude")).read())
    assert isinstance(error, CredentialsNotAFile)
    assert error.code == "credentials_unreadable"
    assert error.message == (
        f"The Claude login at {folder} is a directory, not a regular file, so the bot does "
        "not read it; remove it, then run `claude` on the workstation and log in again so "
        "Claude Code writes the file (in a container, Docker makes this directory when the "
        "file to mount is missing on the host: mount ~/.claude itself instead)."
    )


def test_an_account_path_that_is_a_directory_still_means_the_file_inside(
    tmp_path: Path, clock: FakeClock
) -> None:
    write_login(tmp_path / "alice", now=clock.now())
    assert loader(UpstreamConfig(), tmp_path / "alice").load(clock.now()).token.reveal() == TOKEN
    (tmp_path / "bob" / ".credentials.json").mkdir(parents=True)
    error = refused(lambda: loader(UpstreamConfig(), tmp_path / "bob").read())
    assert isinstance(error, CredentialsNotAFile)
    assert f"{tmp_path / 'bob' / '.credentials.json'} is a directory" in error.message


@pytest.mark.parametrize("size", [MAX_FILE_BYTES + 1, HUGE])
def test_a_login_file_over_1_mib_is_not_read(tmp_path: Path, size: int) -> None:
    """A valid login padded past 1 MiB: the limit is on the size, whatever the content."""
    login = tmp_path / ".credentials.json"
    text = login_json(TOKEN)
    login.write_text(" " * (size - len(text)) + text, encoding="utf-8")
    error = refused(lambda: loader(UpstreamConfig(claude_config_dir=tmp_path)).read())
    assert isinstance(error, CredentialsTooLarge)
    assert isinstance(error, CredentialsUnreadable)
    assert error.message.startswith(f"The Claude login at {login} is over 1 MiB")
    assert "log in again so Claude Code rewrites it" in error.message


def test_a_login_file_of_exactly_1_mib_is_read(tmp_path: Path, clock: FakeClock) -> None:
    text = login_json(TOKEN)
    (tmp_path / ".credentials.json").write_text(" " * (MAX_FILE_BYTES - len(text)) + text)
    assert (
        loader(UpstreamConfig(claude_config_dir=tmp_path)).load(clock.now()).token.reveal() == TOKEN
    )


def test_a_token_file_over_1_mib_is_not_read(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_bytes(b"x" * HUGE)
    error = refused(lambda: loader(UpstreamConfig(oauth_token_file=token_file)).read())
    assert isinstance(error, CredentialsTooLarge)
    assert error.message == (
        f"The Claude login at {token_file} is over 1 MiB, far more than any login holds, so "
        "the bot does not read it; point CLAUDE_CODE_OAUTH_TOKEN_FILE at a file that holds "
        "only the token."
    )


def test_a_link_to_a_regular_file_is_read(tmp_path: Path, clock: FakeClock) -> None:
    """Kubernetes mounts secrets and config maps as links (``..data/``): they must work."""
    real = write_login(tmp_path / "real", now=clock.now())
    (tmp_path / "claude").mkdir()
    (tmp_path / "hop").symlink_to(real)
    (tmp_path / "claude" / ".credentials.json").symlink_to(tmp_path / "hop")
    settings = UpstreamConfig(claude_config_dir=tmp_path / "claude")
    assert loader(settings).load(clock.now()).token.reveal() == TOKEN
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "token-link").symlink_to(tmp_path / "token")
    token_settings = UpstreamConfig(oauth_token_file=tmp_path / "token-link")
    assert loader(token_settings).load(clock.now()).token.reveal() == TOKEN


def test_a_dangling_link_is_a_missing_login(tmp_path: Path) -> None:
    (tmp_path / ".credentials.json").symlink_to(tmp_path / "gone")
    error = refused(lambda: loader(UpstreamConfig(claude_config_dir=tmp_path)).read())
    assert error.code == "credentials_missing"


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_token_in_the_login_file_is_a_login_problem(tmp_path: Path, kind: str) -> None:
    token, holds = BAD_TOKENS[kind]
    login = tmp_path / ".credentials.json"
    login.write_text(login_json(token), encoding="utf-8")
    error = refused(lambda: loader(UpstreamConfig(claude_config_dir=tmp_path)).read())
    assert isinstance(error, TokenMalformed)
    assert error.code == "token_malformed"
    assert error.message == (
        f"The access token in {login} is not a valid token: it holds {holds} (a token is "
        "printable ASCII without spaces); run `claude` on the workstation and log in again "
        "so Claude Code rewrites it."
    )
    assert_no_token(error.message)


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_token_in_the_environment_is_a_login_problem(kind: str) -> None:
    token, holds = BAD_TOKENS[kind]
    settings = load_settings({"CLAUDE_CODE_OAUTH_TOKEN": token}, dotenv_path=None).upstream
    error = refused(lambda: loader(settings).read())
    assert isinstance(error, TokenMalformed)
    assert error.message == (
        f"The access token in CLAUDE_CODE_OAUTH_TOKEN is not a valid token: it holds {holds} "
        "(a token is printable ASCII without spaces); set CLAUDE_CODE_OAUTH_TOKEN to the "
        "access token alone, with nothing inside or around it."
    )
    assert_no_token(error.message)


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_token_in_the_token_file_is_a_login_problem(tmp_path: Path, kind: str) -> None:
    token, holds = BAD_TOKENS[kind]
    token_file = tmp_path / "token"
    token_file.write_bytes(token.encode("utf-8", "surrogatepass") + b"\n")
    error = refused(lambda: loader(UpstreamConfig(oauth_token_file=token_file)).read())
    if kind == "lone-surrogate":  # not UTF-8 once on disk: no text, so no token at all
        assert isinstance(error, CredentialsUnreadable)
        assert "(not text)" in error.message
        return
    assert isinstance(error, TokenMalformed)
    assert error.message == (
        f"The access token in CLAUDE_CODE_OAUTH_TOKEN_FILE ({token_file}) is not a valid "
        f"token: it holds {holds} (a token is printable ASCII without spaces); put the access "
        "token alone in that file, on one line."
    )
    assert_no_token(error.message)


def test_blanks_around_a_token_are_not_part_of_it(tmp_path: Path, clock: FakeClock) -> None:
    """A file's last line break, a space pasted before: taken off, as they always were."""
    token_file = tmp_path / "token"
    token_file.write_text(f" \t{TOKEN}\r\n")
    assert (
        loader(UpstreamConfig(oauth_token_file=token_file)).load(clock.now()).token.reveal()
        == TOKEN
    )
    (tmp_path / ".credentials.json").write_text(login_json(f"{TOKEN}\n"))
    settings = UpstreamConfig(claude_config_dir=tmp_path)
    assert loader(settings).load(clock.now()).token.reveal() == TOKEN


def test_every_printable_ascii_character_may_be_in_a_token(clock: FakeClock) -> None:
    token = "".join(chr(c) for c in range(0x21, 0x7F))
    settings = load_settings({"CLAUDE_CODE_OAUTH_TOKEN": token}, dotenv_path=None).upstream
    assert loader(settings).load(clock.now()).token.reveal() == token


def test_a_secret_file_that_is_a_directory_or_over_1_mib_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "huge").write_bytes(b"xoxb-" + b"1" * HUGE)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "SLACK_BOT_TOKEN_FILE": str(tmp_path / "folder"),
                "SLACK_APP_TOKEN_FILE": str(tmp_path / "huge"),
                "SLACK_SIGNING_SECRET": "s",
            },
            dotenv_path=None,
        )
    assert time.monotonic() - started < QUICK
    assert caught.value.exit_code == 2
    assert (
        f"SLACK_BOT_TOKEN_FILE={tmp_path / 'folder'} is a directory, not a regular file, so "
        "it is not read: point it at a regular file that holds only the secret."
    ) in caught.value.problems
    assert (
        f"SLACK_APP_TOKEN_FILE={tmp_path / 'huge'} is over 1 MiB, so it is not read: point "
        "it at a file that holds only the secret."
    ) in caught.value.problems


def test_a_secret_file_behind_a_link_is_read(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("xoxb-1-2-from-a-file\n")
    (tmp_path / "link").symlink_to(tmp_path / "token")
    settings = load_settings(
        {"SLACK_BOT_TOKEN_FILE": str(tmp_path / "link"), "SLACK_APP_TOKEN": "xapp-1-A1-x"},
        dotenv_path=None,
    )
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.reveal() == "xoxb-1-2-from-a-file"


# -- `usage-bot check`, as a user runs it ---------------------------------------------------------

# The real command, under a cap on its memory: reading /dev/zero would stop there.
CAPPED = (
    "import resource, runpy, sys\n"
    "hard = resource.getrlimit(resource.RLIMIT_AS)[1]\n"
    f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP}, hard))\n"
    "runpy.run_module('usage_bot', run_name='__main__', alter_sys=True)\n"
)


async def run_capped(machine: Machine, *args: str) -> Result:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CAPPED,
        *args,
        env=machine.env,
        cwd=machine.cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    except TimeoutError:
        process.kill()
        await process.wait()
        return Result(-1, "", f"still running after {DEADLINE} s: it blocked", DEADLINE)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode(), time.monotonic() - started)


def replaced(make: Callable[[Path], object]) -> Callable[[Machine], None]:
    """A logged-in machine whose ``.credentials.json`` is then replaced by ``make(path)``."""

    def prepare(machine: Machine) -> None:
        login = machine.login()
        login.unlink()
        make(login)

    return prepare


def padded(login: Path) -> None:
    text = login_json(TOKEN)
    login.write_text(" " * (HUGE - len(text)) + text, encoding="utf-8")


def bad_token(kind: str) -> Callable[[Machine], None]:
    return lambda machine: machine.login(token=BAD_TOKENS[kind][0])


def in_file(name: str, make: Callable[[Path], object]) -> Callable[[Machine], None]:
    def prepare(machine: Machine) -> None:
        path = machine.root / name.lower()
        make(path)
        machine.env[name] = str(path)

    return prepare


def refusal(name: str, code: int, says: tuple[str, ...], **options: Any) -> Case:
    """A case where nothing may be sent upstream: there is no usable token to send."""
    return Case(name, code, says, asks_upstream=False, **options)


CHECK_CASES = [
    refusal("fifo", 3, ("is a FIFO (named pipe), not a regular file",), prepare=replaced(fifo)),
    refusal(
        "dev-zero", 3, ("is a link to /dev/zero, a character device",), prepare=replaced(dev_zero)
    ),
    refusal(
        "directory",
        3,
        ("is a directory, not a regular file", "mount ~/.claude itself"),
        prepare=replaced(Path.mkdir),
    ),
    refusal("huge", 3, ("is over 1 MiB",), prepare=replaced(padded)),
    refusal("non-ascii", 3, ("it holds a non-ASCII character",), prepare=bad_token("non-ascii")),
    refusal("crlf", 3, ("it holds a line break",), prepare=bad_token("crlf")),
    refusal(
        "crlf-env",
        3,
        ("CLAUDE_CODE_OAUTH_TOKEN is not a valid token: it holds a line break",),
        env={"CLAUDE_CODE_OAUTH_TOKEN": BAD_TOKENS["crlf"][0]},
    ),
    refusal(
        "fifo-json",
        3,
        ('"code": "credentials_unreadable"', "is a FIFO (named pipe)"),
        prepare=replaced(fifo),
        args=("check", "--json"),
    ),
    refusal(
        "non-ascii-json",
        3,
        ('"code": "token_malformed"', "it holds a non-ASCII character"),
        prepare=bad_token("non-ascii"),
        args=("check", "--json"),
    ),
    refusal(
        "token-file-fifo",
        3,
        ("is a FIFO (named pipe)", "point CLAUDE_CODE_OAUTH_TOKEN_FILE at a regular file"),
        prepare=in_file("CLAUDE_CODE_OAUTH_TOKEN_FILE", fifo),
    ),
    refusal(
        "slack-token-file-fifo",
        2,
        ("SLACK_BOT_TOKEN_FILE=", "is a FIFO (named pipe), not a regular file, so it is not read"),
        prepare=in_file("SLACK_BOT_TOKEN_FILE", fifo),
        env={"SLACK_BOT_TOKEN": ""},  # an empty value is unset: the file alone is set
        # A chat setting never stops `check` (a warning there); it stops `run` at once.
        args=("run",),
    ),
    refusal(
        "slack-token-file-dev-zero",
        2,
        ("SLACK_BOT_TOKEN_FILE=", "is a link to /dev/zero, a character device"),
        prepare=in_file("SLACK_BOT_TOKEN_FILE", dev_zero),
        env={"SLACK_BOT_TOKEN": ""},
        args=("run",),
    ),
]


async def test_check_says_one_sentence_and_exits_for_each_unsafe_login(tmp_path: Path) -> None:
    """Exit 3 for the login, 2 for a setting; one sentence, no traceback, no token (nor any
    part of it), no hang; nothing is sent upstream."""
    async with AsyncExitStack() as stack:
        machines, upstreams = [], []
        for case in CHECK_CASES:
            upstream = await stack.enter_async_context(
                SimulatedUpstream(clock=FakeClock(), token=TOKEN)
            )
            machine = new_machine(tmp_path / case.name, upstream.url)
            machine.env = with_chat_secrets(machine.env) | case.env
            case.prepare(machine)
            machines.append(machine)
            upstreams.append(upstream)
        results = await asyncio.gather(
            *(run_capped(m, *c.args) for m, c in zip(machines, CHECK_CASES, strict=True))
        )
    problems = []
    for case, upstream, result in zip(CHECK_CASES, upstreams, results, strict=True):
        found = judge(case, upstream, result)
        if LEFT in result.out + result.err or RIGHT in result.out + result.err:
            found.append("a part of the bad token in the output")
        problems.extend(f"{case.name}: {p}\n{result}" for p in found)
    assert not problems, "\n\n".join(problems)
