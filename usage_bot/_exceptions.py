"""Every error usage-bot reports, and the sentence it says to the user.

::

    UsageBotError                 anything usage-bot itself reports; .message is for users
    ├── ConfigError               a setting is wrong (exit 2); .problems lists every one
    ├── CredentialsError          no usable Claude login (exit 3)
    │   ├── CredentialsMissing    nowhere to read a token from
    │   ├── CredentialsUnreadable the file exists but cannot be read
    │   │   ├── CredentialsNotAFile   a FIFO, a device or a directory: never opened to read
    │   │   └── CredentialsTooLarge   over 1 MiB: no login is that big
    │   ├── CredentialsMalformed  the file is not the JSON Claude Code writes
    │   ├── CredentialsEmpty      the token is an empty string
    │   ├── TokenMalformed        the token holds a space, a line break, a non-ASCII character
    │   ├── CredentialsExpired    past expiresAt: never sent upstream
    │   ├── ScopeMissing          the token cannot read usage (no user:profile)
    │   └── CredentialsRejected   the upstream answered 401
    ├── UpstreamError             the usage endpoint failed (exit 4)
    │   ├── RateLimited           429; .retry_after in seconds, or None
    │   ├── UpstreamServerError   5xx
    │   ├── UpstreamHTTPError     any other unexpected status
    │   ├── UpstreamTimeout       no answer in time
    │   ├── UpstreamUnreachable   could not connect, or the connection broke
    │   ├── ChallengePage         an HTML page (a Cloudflare challenge) instead of JSON
    │   └── UnexpectedResponse    JSON, but not of the shape we know
    ├── UnknownAccount            a name that is not one of the configured accounts
    ├── FrontEndFailed            a chat front end cannot start (a rejected token, no network)
    ├── DeliveryError             an alert post did not arrive; .retryable says if trying helps
    └── StateUnavailable          the state store cannot be used now (locked, read-only, gone)
        └── StoreClosed           ... because it was closed (the process is stopping)

Catch :class:`CredentialsError` to tell the user to log in again, :class:`UpstreamError`
to keep serving the last known values, :class:`StateUnavailable` to let the next poll try
again (whatever the back end: each translates its own errors into it), and
:class:`UsageBotError` at the top of a command to print ``.message`` and exit with
``.exit_code``. No message ever contains a secret: they are built here from paths, names
and numbers only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

LOGIN_AGAIN = "run `claude` on the workstation and log in again"


class UsageBotError(Exception):
    """Base of every error usage-bot reports; ``message`` is one sentence for users.

    ``once`` is the same sentence for a command that asks once and ends (``usage-bot
    check``): it never promises that the bot will try again on its own.
    """

    exit_code = 1
    code = "error"

    def __init__(self, message: str, *, once: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.once = once or message


class ConfigError(UsageBotError):
    """One or more settings are wrong; ``problems`` names each variable and its fix."""

    exit_code = 2
    code = "config"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = "1 setting is wrong" if count == 1 else f"{count} settings are wrong"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


class CredentialsError(UsageBotError):
    """There is no Claude login that can read usage."""

    exit_code = 3
    code = "credentials"


class CredentialsMissing(CredentialsError):
    code = "credentials_missing"

    def __init__(self, looked_in: Sequence[str], *, account: str | None = None) -> None:
        places = "; ".join(looked_in)
        if account is None:
            fix = (
                "log in with `claude` on this machine, mount ~/.claude, or set "
                "CLAUDE_CODE_OAUTH_TOKEN"
            )
        else:
            # CLAUDE_CODE_OAUTH_TOKEN serves the default account only.
            fix = (
                f"log in with `claude` where account {account}'s login lives, or correct its "
                "path in USAGE_BOT_ACCOUNTS"
            )
        found = (
            f"No Claude login found for account {account}" if account else "No Claude login found"
        )
        super().__init__(f"{found} (looked in: {places}); {fix}.")


class CredentialsUnreadable(CredentialsError):
    code = "credentials_unreadable"

    def __init__(self, path: str, reason: str) -> None:
        if reason == "not text":
            fix = f"{LOGIN_AGAIN} so Claude Code rewrites it"
        else:
            fix = (
                "make it readable by the user the bot runs as (for a container, mount "
                "~/.claude read-only)"
            )
        super().__init__(f"Cannot read the Claude login at {path} ({reason}); {fix}.")


class CredentialsNotAFile(CredentialsUnreadable):
    """The login path is not a regular file; ``what`` names it ("a FIFO (named pipe)")."""

    def __init__(
        self, path: str, what: str, *, directory: bool = False, setting: str | None = None
    ) -> None:
        if setting is not None:
            fix = f"point {setting} at a regular file that holds only the token"
        elif directory:
            fix = (
                f"remove it, then {LOGIN_AGAIN} so Claude Code writes the file (in a "
                "container, Docker makes this directory when the file to mount is missing on "
                "the host: mount ~/.claude itself instead)"
            )
        else:
            fix = f"replace it with the file Claude Code writes ({LOGIN_AGAIN})"
        CredentialsError.__init__(
            self,
            f"The Claude login at {path} is {what}, not a regular file, so the bot does not "
            f"read it; {fix}.",
        )


class CredentialsTooLarge(CredentialsUnreadable):
    """The login file holds more than ``limit`` bytes; nothing past the limit was read."""

    def __init__(self, path: str, limit: int, *, setting: str | None = None) -> None:
        if setting is not None:
            fix = f"point {setting} at a file that holds only the token"
        else:
            fix = (
                "check that this is the .credentials.json Claude Code writes, or run `claude` "
                "on the workstation and log in again so Claude Code rewrites it"
            )
        CredentialsError.__init__(
            self,
            f"The Claude login at {path} is over {limit / 2**20:g} MiB, far more than any "
            f"login holds, so the bot does not read it; {fix}.",
        )


class CredentialsMalformed(CredentialsError):
    code = "credentials_malformed"

    def __init__(self, where: str, problem: str, *, once: str | None = None) -> None:
        said = f"The Claude login at {where} {{}}; {LOGIN_AGAIN} so Claude Code rewrites it."
        super().__init__(said.format(problem), once=said.format(once) if once else None)


class CredentialsEmpty(CredentialsError):
    code = "credentials_empty"

    def __init__(self, where: str) -> None:
        super().__init__(f"The access token in {where} is empty; {LOGIN_AGAIN}.")


class TokenMalformed(CredentialsError):
    """The token holds what no token does; ``holds`` names it ("a line break"), never the token.

    ``setting`` is the variable it came from (``CLAUDE_CODE_OAUTH_TOKEN`` or ``..._FILE``);
    None for a login Claude Code wrote.
    """

    code = "token_malformed"

    def __init__(self, where: str, holds: str, *, setting: str | None = None) -> None:
        if setting is None:
            fix = f"{LOGIN_AGAIN} so Claude Code rewrites it"
        elif setting.endswith("_FILE"):
            fix = "put the access token alone in that file, on one line"
        else:
            fix = f"set {setting} to the access token alone, with nothing inside or around it"
        super().__init__(
            f"The access token in {where} is not a valid token: it holds {holds} (a token is "
            f"printable ASCII without spaces); {fix}."
        )


class CredentialsExpired(CredentialsError):
    code = "credentials_expired"

    def __init__(self, expired_at: datetime) -> None:
        self.expired_at = expired_at
        when = expired_at.strftime("%Y-%m-%d %H:%M UTC")
        super().__init__(
            f"The Claude login expired at {when} (Claude Code renews it only while it is "
            f"used); {LOGIN_AGAIN}, or use Claude Code once to renew it."
        )


class ScopeMissing(CredentialsError):
    """The token lacks ``user:profile``: ``scopes`` are what it has, when the login says;
    ``from_file``: it came from a credentials file (so "use the file" would be no fix)."""

    code = "scope_missing"

    def __init__(self, scopes: Sequence[str] | None = None, *, from_file: bool = False) -> None:
        has = f", only {', '.join(scopes)}" if scopes else ""
        if from_file:
            fix = (
                "log in again with `claude` (a full login, not `claude setup-token`, whose "
                "tokens are inference-only) so Claude Code rewrites it"
            )
        else:
            fix = (
                "tokens from `claude setup-token` are inference-only and never can: use the "
                "access token of a full `claude` login, from ~/.claude/.credentials.json"
            )
        super().__init__(
            f"This Claude login cannot read usage: it lacks the user:profile scope{has}; {fix}."
        )


class CredentialsRejected(CredentialsError):
    code = "credentials_rejected"

    def __init__(self) -> None:
        super().__init__(
            f"Anthropic rejected the Claude login (revoked or expired); {LOGIN_AGAIN}."
        )


class UpstreamError(UsageBotError):
    """The usage endpoint could not be read; the last known values are still good to show."""

    exit_code = 4
    code = "upstream"


class RateLimited(UpstreamError):
    """429. ``retry_after``: what the upstream asked for (None when absent, or 0); ``wait``:
    how long the bot itself waits before asking again, when this is the bot's error."""

    code = "rate_limited"

    def __init__(self, retry_after: float | None, *, wait: float | None = None) -> None:
        self.retry_after = retry_after
        self.wait = wait
        if wait is not None:
            tail = f"the bot asks again in {_wait(wait)} and shows the last known values until then"
        elif retry_after:
            tail = f"try again in {_wait(retry_after)}"
        else:
            tail = "try again in a few minutes"
        super().__init__(f"Anthropic is rate-limiting usage requests; {tail}.")


def _wait(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


class UpstreamServerError(UpstreamError):
    code = "upstream_server_error"

    def __init__(self, status: int) -> None:
        self.status = status
        said = f"Anthropic's usage service failed (HTTP {status})"
        super().__init__(f"{said}; the bot retries on its own.", once=f"{said}; try again soon.")


class UpstreamHTTPError(UpstreamError):
    code = "upstream_http_error"

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(
            f"Anthropic's usage service answered HTTP {status}, which the bot does not "
            "expect; check USAGE_BOT_API_BASE_URL and try again later."
        )


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"

    def __init__(self) -> None:
        said = "Anthropic's usage service did not answer in time"
        super().__init__(f"{said}; the bot retries on its own.", once=f"{said}; try again soon.")


class UpstreamUnreachable(UpstreamError):
    code = "upstream_unreachable"

    def __init__(self, host: str, *, mid_answer: bool = False) -> None:
        if mid_answer:
            said = f"The connection to {host} broke off mid-answer"
            super().__init__(f"{said}; the bot tries again.", once=f"{said}; try again.")
        else:
            super().__init__(
                f"Cannot reach {host}; check this machine's network (and proxy settings)."
            )


class ChallengePage(UpstreamError):
    code = "challenge_page"

    def __init__(self, status: int) -> None:
        self.status = status
        said = (
            f"Anthropic answered with a web page instead of usage data (HTTP {status}, "
            "likely a bot check)"
        )
        agent = "USAGE_BOT_USER_AGENT should look like Claude Code's"
        super().__init__(
            f"{said}; the bot retries later, and {agent}.",
            once=f"{said}; try again later, and {agent}.",
        )


class UnexpectedResponse(UpstreamError):
    code = "unexpected_response"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"Anthropic's usage answer has a shape the bot does not understand ({detail}); "
            "the endpoint is unofficial and may have changed: update usage-bot."
        )


class UnknownAccount(UsageBotError, LookupError):
    """Asked for an account that is not configured."""

    code = "unknown_account"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"There is no account named {name}.")


class FrontEndFailed(UsageBotError):
    """A chat front end cannot start; ``message`` says what to fix. The others keep running."""

    code = "front_end_failed"


class DeliveryError(UsageBotError):
    """A post did not arrive. ``retryable`` says whether trying again can help."""

    code = "delivery"

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class StateUnavailable(UsageBotError):
    """The state store cannot be used right now: ``message`` says why, naming
    ``USAGE_BOT_STATE`` and never a password. Nothing was written; try again later."""

    code = "state_unavailable"


class StoreClosed(StateUnavailable):
    """The store was used after it was closed."""

    code = "state_closed"

    def __init__(self) -> None:
        super().__init__("The state store is closed.")
