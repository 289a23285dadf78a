"""Every error usage-bot reports, and the sentence it says to the user.

::

    UsageBotError                 anything usage-bot itself reports; .message is for users
    ├── ConfigError               a setting is wrong (exit 2); .problems lists every one
    ├── CredentialsError          no usable Claude login (exit 3)
    │   ├── CredentialsMissing    nowhere to read a token from
    │   ├── CredentialsUnreadable the file exists but cannot be read
    │   ├── CredentialsMalformed  the file is not the JSON Claude Code writes
    │   ├── CredentialsEmpty      the token is an empty string
    │   ├── CredentialsExpired    past expiresAt: never sent upstream
    │   ├── ScopeMissing          the token cannot read usage (no user:profile)
    │   └── CredentialsRejected   the upstream answered 401
    └── UpstreamError             the usage endpoint failed (exit 4)
        ├── RateLimited           429; .retry_after in seconds, or None
        ├── UpstreamServerError   5xx
        ├── UpstreamHTTPError     any other unexpected status
        ├── UpstreamTimeout       no answer in time
        ├── UpstreamUnreachable   could not connect, or the connection broke
        ├── ChallengePage         an HTML page (a Cloudflare challenge) instead of JSON
        └── UnexpectedResponse    JSON, but not of the shape we know

Catch :class:`CredentialsError` to tell the user to log in again, :class:`UpstreamError`
to keep serving the last known values, and :class:`UsageBotError` at the top of a command
to print ``.message`` and exit with ``.exit_code``. No message ever contains a secret:
they are built here from paths, names and numbers only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

LOGIN_AGAIN = "run `claude` on the workstation and log in again"


class UsageBotError(Exception):
    """Base of every error usage-bot reports; ``message`` is one sentence for users."""

    exit_code = 1
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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

    def __init__(self, looked_in: Sequence[str]) -> None:
        places = "; ".join(looked_in)
        super().__init__(
            f"No Claude login found (looked in: {places}); log in with `claude` on this "
            "machine, mount ~/.claude, or set CLAUDE_CODE_OAUTH_TOKEN."
        )


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


class CredentialsMalformed(CredentialsError):
    code = "credentials_malformed"

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(
            f"The Claude login at {where} {problem}; {LOGIN_AGAIN} so Claude Code rewrites it."
        )


class CredentialsEmpty(CredentialsError):
    code = "credentials_empty"

    def __init__(self, where: str) -> None:
        super().__init__(f"The access token in {where} is empty; {LOGIN_AGAIN}.")


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
    code = "scope_missing"

    def __init__(self, scopes: Sequence[str] | None = None) -> None:
        has = f" (it has {', '.join(scopes)})" if scopes else ""
        super().__init__(
            f"This token cannot read usage: it lacks the user:profile scope{has} (tokens from "
            "`claude setup-token` are inference-only and can never read usage); use the login "
            "from `claude` (~/.claude/.credentials.json) instead."
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
    code = "rate_limited"

    def __init__(self, retry_after: float | None) -> None:
        self.retry_after = retry_after
        if retry_after is None:
            wait = "later"
        elif retry_after < 30:
            wait = "shortly"  # never sooner than the usual 30 s spacing, whatever it says
        elif retry_after < 90:
            wait = f"in {max(0, round(retry_after))} s"
        else:
            wait = f"in {round(retry_after / 60)} min"
        super().__init__(
            f"Anthropic is rate-limiting usage requests; the bot will ask again {wait} and "
            "shows the last known values until then."
        )


class UpstreamServerError(UpstreamError):
    code = "upstream_server_error"

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(
            f"Anthropic's usage service failed (HTTP {status}); the bot retries on its own."
        )


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
        super().__init__(
            "Anthropic's usage service did not answer in time; the bot retries on its own."
        )


class UpstreamUnreachable(UpstreamError):
    code = "upstream_unreachable"

    def __init__(self, host: str, *, mid_answer: bool = False) -> None:
        if mid_answer:
            message = f"The connection to {host} broke off mid-answer; the bot tries again."
        else:
            message = f"Cannot reach {host}; check this machine's network (and proxy settings)."
        super().__init__(message)


class ChallengePage(UpstreamError):
    code = "challenge_page"

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(
            f"Anthropic answered with a web page instead of usage data (HTTP {status}, "
            "likely a bot check); the bot retries later, and USAGE_BOT_USER_AGENT should "
            "look like Claude Code's."
        )


class UnexpectedResponse(UpstreamError):
    code = "unexpected_response"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"Anthropic's usage answer has a shape the bot does not understand ({detail}); "
            "the endpoint is unofficial and may have changed: update usage-bot."
        )
