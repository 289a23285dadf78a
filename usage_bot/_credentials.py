"""The credential loader: finds the Claude Code login for an account, on every fetch.

Claude Code rotates its tokens, so nothing here is cached. The loader only reads: it
never refreshes or writes a login that Claude Code owns (a refresh by another program
rotates the refresh token and logs Claude Code out).

Order for the ``default`` account: ``CLAUDE_CODE_OAUTH_TOKEN`` (or ``..._FILE``), then
``$CLAUDE_CONFIG_DIR/.credentials.json``, then, on macOS, the login keychain item
``Claude Code-credentials``. A named account reads only its own path.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from usage_bot._config import AccountSpec, Secret, UpstreamConfig
from usage_bot._exceptions import (
    CredentialsEmpty,
    CredentialsExpired,
    CredentialsMalformed,
    CredentialsMissing,
    CredentialsNotAFile,
    CredentialsTooLarge,
    CredentialsUnreadable,
    ScopeMissing,
    TokenMalformed,
)
from usage_bot._files import DIRECTORY, FileTooLarge, NotARegularFile, read_small_file

CREDENTIALS_FILE = ".credentials.json"
KEYCHAIN_SERVICE = "Claude Code-credentials"
REQUIRED_SCOPE = "user:profile"

_BLANKS = " \t\r\n\v\f"  # around a token: a file's last line break, a pasted space
_NOT_IN_A_TOKEN = re.compile(r"[^\x21-\x7e]")  # a token is printable ASCII without spaces


@dataclass(frozen=True, slots=True)
class Credentials:
    """A login as read: the token stays wrapped in :class:`Secret`."""

    token: Secret
    source: str
    expires_at: datetime | None = None
    scopes: tuple[str, ...] | None = None
    subscription_type: str | None = None

    @property
    def from_file(self) -> bool:
        """Read from a credentials file or the keychain, not given as a bare token."""
        return not self.source.startswith("CLAUDE_CODE_OAUTH_TOKEN")

    def check(self, now: datetime) -> None:
        """Raise unless this token may be sent upstream now."""
        if self.expires_at is not None and self.expires_at <= now:
            raise CredentialsExpired(self.expires_at)
        if self.scopes is not None and REQUIRED_SCOPE not in self.scopes:
            raise ScopeMissing(self.scopes, from_file=self.from_file)


class CredentialLoader:
    """Reads one account's login; call :meth:`load` before every upstream request."""

    def __init__(
        self,
        account: AccountSpec,
        upstream: UpstreamConfig,
        *,
        platform: str = sys.platform,
    ) -> None:
        self.account = account
        self._upstream = upstream
        self._platform = platform

    def load(self, now: datetime) -> Credentials:
        """The login to use now, or a :class:`CredentialsError` saying what to fix."""
        credentials = self.read()
        credentials.check(now)
        return credentials

    def read(self) -> Credentials:
        """The login as found, expired or not (``doctor`` shows an expired one)."""
        if self.account.path is not None:
            path = self.account.path
            if path.is_dir() or not path.suffix:
                path = path / CREDENTIALS_FILE
            found = _read_file(path)
            if found is None:
                raise CredentialsMissing([str(path)], account=self.account.name)
            return found
        upstream = self._upstream
        if upstream.oauth_token is not None:
            return _from_token(upstream.oauth_token.reveal(), "CLAUDE_CODE_OAUTH_TOKEN")
        if upstream.oauth_token_file is not None:
            return _from_token_file(upstream.oauth_token_file)
        path = upstream.claude_config_dir
        if not _is_regular_file(path):  # CLAUDE_CONFIG_DIR pointing at the file itself
            path = path / CREDENTIALS_FILE
        found = _read_file(path)
        if found is not None:
            return found
        looked_in = ["CLAUDE_CODE_OAUTH_TOKEN", str(path)]
        if self._platform == "darwin":
            found = _read_keychain()
            if found is not None:
                return found
            looked_in.append(f"the macOS keychain item {KEYCHAIN_SERVICE!r}")
        raise CredentialsMissing(looked_in)


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _from_token(token: str, source: str) -> Credentials:
    return Credentials(token=_checked_token(token, source, setting=source), source=source)


def _from_token_file(path: Path) -> Credentials:
    setting = "CLAUDE_CODE_OAUTH_TOKEN_FILE"
    source = f"{setting} ({path})"
    try:
        text = _read_text(path, setting=setting)
    except FileNotFoundError:
        raise CredentialsMissing([source]) from None
    return Credentials(token=_checked_token(text, source, setting=setting), source=source)


def _read_file(path: Path) -> Credentials | None:
    """The login in a ``.credentials.json``, or None when there is no such file."""
    try:
        text = _read_text(path)
    except FileNotFoundError:
        return None
    return parse_credentials(text, str(path))


def _read_text(path: Path, *, setting: str | None = None) -> str:
    """The text of a login file; :class:`FileNotFoundError` when there is none.

    Only a regular file, at most 1 MiB, and never a blocking read: see :mod:`._files`.
    """
    try:
        data = read_small_file(path)
    except NotARegularFile as exc:
        directory = exc.kind == DIRECTORY
        raise CredentialsNotAFile(
            str(path), exc.what, directory=directory, setting=setting
        ) from None
    except FileTooLarge as exc:
        raise CredentialsTooLarge(str(path), exc.limit, setting=setting) from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CredentialsUnreadable(str(path), exc.strerror or type(exc).__name__) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsUnreadable(str(path), "not text") from None


def _checked_token(token: str, where: str, *, setting: str | None = None) -> Secret:
    """The token without the blanks around it, if it is one: printable ASCII, no spaces.

    Anything else would fail later and far from here (httpx cannot encode a non-ASCII
    header; a line break makes the request itself invalid), with a misleading sentence.
    """
    token = token.strip(_BLANKS)
    if not token:
        raise CredentialsEmpty(where)
    bad = _NOT_IN_A_TOKEN.search(token)
    if bad is not None:
        raise TokenMalformed(where, _what_character(bad.group()), setting=setting)
    return Secret(token)


def _what_character(character: str) -> str:
    if character in "\r\n":
        return "a line break"
    if character == " ":
        return "a space"
    if character == "\t":
        return "a tab"
    if character.isascii():
        return "a control character"
    return "a non-ASCII character"


def _read_keychain() -> Credentials | None:
    security = shutil.which("security")
    if security is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [security, "find-generic-password", "-s", KEYCHAIN_SERVICE, "-w"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return parse_credentials(done.stdout, f"the macOS keychain item {KEYCHAIN_SERVICE!r}")


def parse_credentials(text: str, where: str) -> Credentials:
    """Parse the JSON Claude Code writes; each way it can be wrong has its own message."""
    if not text.strip():
        raise CredentialsMalformed(where, "is empty")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # also a number over 4300 digits, or deep nesting
        raise CredentialsMalformed(
            where,
            "is not valid JSON (it may be half-written; the bot tries again)",
            once="is not valid JSON (it may be half-written: try again)",
        ) from None
    oauth = data.get("claudeAiOauth") if isinstance(data, Mapping) else None
    if not isinstance(oauth, Mapping):
        raise CredentialsMalformed(where, "has no claudeAiOauth login in it")
    token = oauth.get("accessToken")
    if token is None:
        raise CredentialsMalformed(where, "has no accessToken")
    if not isinstance(token, str):
        raise CredentialsMalformed(where, "has an accessToken that is not a string")
    checked = _checked_token(token, where)
    expires = oauth.get("expiresAt")
    if expires is not None and (
        isinstance(expires, bool) or not isinstance(expires, int | float) or expires != expires
    ):
        raise CredentialsMalformed(where, "has an expiresAt that is not a number")
    scopes = oauth.get("scopes")
    if scopes is not None and (
        not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)
    ):
        raise CredentialsMalformed(where, "has scopes that are not a list of strings")
    subscription = oauth.get("subscriptionType")
    return Credentials(
        token=checked,
        source=where,
        expires_at=_from_epoch_ms(expires) if expires is not None else None,
        scopes=tuple(scopes) if scopes is not None else None,
        subscription_type=subscription if isinstance(subscription, str) else None,
    )


def _from_epoch_ms(ms: float) -> datetime:
    """An expiry off the calendar counts as its nearer end: far past is expired."""
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return (datetime.min if ms < 0 else datetime.max).replace(tzinfo=UTC)
