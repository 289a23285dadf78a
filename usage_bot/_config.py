"""Configuration: read once at start-up into one frozen :class:`Settings`.

:func:`load_settings` is the only code that reads the environment (and the ``.env``
file). Every problem found is collected, so that a broken configuration is reported in
one go, each line naming the variable and the fix.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Literal, TypeVar, cast
from urllib.parse import urlsplit

from dotenv import dotenv_values

from usage_bot._exceptions import ConfigError
from usage_bot._files import FileTooLarge, NotARegularFile, read_small_file

CLAUDE_CODE_VERSION = "2.1.0"
DEFAULT_USER_AGENT = f"claude-code/{CLAUDE_CODE_VERSION}"
DEFAULT_STATE = "./usage-bot.sqlite3"

ResetAnnounce = Literal["alerted", "always", "never"]
LogFormat = Literal["text", "json"]

_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SLACK_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{6,}$")
_SNOWFLAKE = re.compile(r"^[0-9]{15,21}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

T = TypeVar("T")


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def masked(self) -> str:
        """At most a short, harmless prefix: enough to tell two tokens apart."""
        prefix = self._value[:5] if len(self._value) >= 20 else ""
        return f"{prefix}…" if prefix else "…"

    def __repr__(self) -> str:
        return "Secret('…')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """One Claude subscription: ``path`` is a config dir or credentials file; None = default."""

    name: str
    path: Path | None = None


def _home_claude() -> Path:
    return Path("~/.claude").expanduser()


@dataclass(frozen=True, slots=True)
class SeatSpec:
    """A seat that pushes its own usage (``USAGE_BOT_SEATS``): its name and its token."""

    name: str
    token: Secret


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """Where the usage comes from: the logins, the endpoint, how often to ask."""

    oauth_token: Secret | None = None
    oauth_token_file: Path | None = None
    claude_config_dir: Path = field(default_factory=_home_claude)
    accounts: tuple[AccountSpec, ...] = (AccountSpec("default"),)
    api_base_url: str = "https://api.anthropic.com"
    user_agent: str = DEFAULT_USER_AGENT
    poll_seconds: int = 180
    seats: tuple[SeatSpec, ...] = ()

    @property
    def min_fetch_interval(self) -> float:
        """Upstream spacing per account: 30 s, or the poll interval when that is shorter."""
        return float(min(30, self.poll_seconds))


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """What is announced, and when."""

    thresholds: tuple[float, ...] = (80.0, 95.0)
    reset_announce: ResetAnnounce = "alerted"
    # None: an expired login is never an incident ("never").
    expired_login_alert_after: timedelta | None = timedelta(hours=24)
    forecast: bool = True
    forecast_min_span: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The bot's own HTTP server: health, metrics and Slack's HTTP mode; port 0 is off."""

    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True)
class SlackConfig:
    """Slack: the app (bot token, Socket Mode or HTTP mode), alerts, who may ask."""

    bot_token: Secret | None = None
    app_token: Secret | None = None
    signing_secret: Secret | None = None
    alert_channel: str | None = None
    webhook_url: Secret | None = None
    api_base_url: str = "https://slack.com/api/"
    allowed_channels: frozenset[str] = frozenset()
    allowed_users: frozenset[str] = frozenset()
    admin_users: frozenset[str] = frozenset()

    @property
    def enabled(self) -> bool:
        """The app is configured: ``/claude-usage`` in Slack."""
        return self.bot_token is not None

    @property
    def mode(self) -> Literal["socket", "http"]:
        """Socket Mode when there is an app-level token; otherwise HTTP mode."""
        return "socket" if self.app_token is not None else "http"


@dataclass(frozen=True, slots=True)
class DiscordConfig:
    """Discord: the bot, where its command lives, alerts, who may ask."""

    bot_token: Secret | None = None
    guild_id: int | None = None
    alert_channel_id: int | None = None
    webhook_url: Secret | None = None
    allowed_guilds: frozenset[int] = frozenset()
    allowed_channels: frozenset[int] = frozenset()
    api_base_url: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg/"

    @property
    def enabled(self) -> bool:
        """The bot is configured: ``/claude-usage`` in Discord."""
        return self.bot_token is not None


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "INFO"
    format: LogFormat = "text"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of PRODUCT.md, validated and grouped. Build it with :func:`load_settings`."""

    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    alerts: AlertConfig = AlertConfig()
    http: HttpConfig = HttpConfig()
    slack: SlackConfig = SlackConfig()
    discord: DiscordConfig = DiscordConfig()
    log: LogConfig = LogConfig()
    state: str = DEFAULT_STATE
    warnings: tuple[str, ...] = ()
    # Problems that did not stop this command (load_settings' ``strict``): shown by doctor.
    problems: tuple[str, ...] = ()

    @property
    def chat_configured(self) -> bool:
        slack, discord = self.slack, self.discord
        return bool(slack.enabled or discord.enabled or slack.webhook_url or discord.webhook_url)

    def secrets(self) -> Iterator[str]:
        """Every secret value this process knows, for the log redactor."""
        for value in (
            self.upstream.oauth_token,
            self.slack.bot_token,
            self.slack.app_token,
            self.slack.signing_secret,
            self.slack.webhook_url,
            self.discord.bot_token,
            self.discord.webhook_url,
            *(seat.token for seat in self.upstream.seats),
        ):
            if value is not None and value.reveal():
                yield value.reveal()


Strictness = Literal["all", "core", "none"]
_CHAT_PREFIXES = ("SLACK_", "DISCORD_")
# Names of ours that are read elsewhere: by Compose (the container's user), and by the
# status line and the push agent, which run on members' machines.
_READ_ELSEWHERE = frozenset(
    {"USAGE_BOT_UID", "USAGE_BOT_GID", "USAGE_BOT_SEAT_TOKEN", "USAGE_BOT_SEAT_TOKEN_FILE"}
)


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    dotenv_path: Path | None = Path(".env"),
    strict: Strictness = "all",
) -> Settings:
    """Read the environment (over ``.env``), or raise :class:`ConfigError` with every problem.

    ``strict`` says which problems stop: ``all`` (``usage-bot run``), ``core`` (the chat
    settings never stop ``check``: their problems are kept in ``Settings.problems``) or
    ``none`` (``doctor`` shows every problem itself). A setting with a problem keeps its
    default. Names of ours that are no setting at all are warnings, with the nearest name.
    """
    env: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    env.update(os.environ if environ is None else environ)
    return _Reader(env).settings(strict)


def _is_chat(problem: str) -> bool:
    return problem.startswith(_CHAT_PREFIXES)


class _Reader:
    """Reads one variable at a time, keeping every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = {k: v.strip() for k, v in env.items()}
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.known: set[str] = set()

    def raw(self, name: str) -> str | None:
        self.known.add(name)
        value = self.env.get(name, "")
        return value or None

    def value(self, name: str, parse: Callable[[str], T], default: T, fix: str) -> T:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            detail = f" ({exc})" if str(exc) else ""
            self.problems.append(f"{name}={_shown(name, raw)} is not valid{detail}: {fix}")
            return default

    def secret(self, name: str) -> Secret | None:
        """``NAME``, or the contents of the file named by ``NAME_FILE``."""
        direct, path = self.raw(name), self.raw(f"{name}_FILE")
        if direct and path:
            self.problems.append(f"{name} and {name}_FILE are both set: keep only one of them.")
            return None
        if path:
            try:
                text = read_small_file(Path(path).expanduser()).decode("utf-8").strip()
            except NotARegularFile as exc:
                self.problems.append(
                    f"{name}_FILE={path} is {exc.what}, not a regular file, so it is not read: "
                    "point it at a regular file that holds only the secret."
                )
                return None
            except FileTooLarge as exc:
                self.problems.append(
                    f"{name}_FILE={path} is over {exc.limit / 2**20:g} MiB, so it is not read: "
                    "point it at a file that holds only the secret."
                )
                return None
            except (OSError, ValueError) as exc:
                # ValueError: the file is not UTF-8 text, or the path holds a NUL (.env).
                reason: object = exc.strerror if isinstance(exc, OSError) else None
                if isinstance(exc, UnicodeDecodeError):
                    reason = "not text"
                self.problems.append(
                    f"{name}_FILE={path} cannot be read ({reason or exc}): point it at a "
                    "readable file that holds only the secret."
                )
                return None
            if not text:
                self.problems.append(f"{name}_FILE={path} is empty: put the secret in it.")
                return None
            return Secret(text)
        return Secret(direct) if direct else None

    def settings(self, strict: Strictness) -> Settings:
        s = Settings(
            upstream=self.upstream(),
            alerts=self.alerts(),
            http=self.http(),
            slack=self.slack(),
            discord=self.discord(),
            log=self.log(),
            state=self.value(
                "USAGE_BOT_STATE",
                _state,
                DEFAULT_STATE,
                "use a file path or a sqlite:///path URL.",
            ),
        )
        self.check_combinations(s)
        if s.upstream.poll_seconds < 60 and "USAGE_BOT_POLL_SECONDS" in self.env:
            self.warnings.append(
                f"USAGE_BOT_POLL_SECONDS={s.upstream.poll_seconds} polls more often than once "
                "a minute; the usage endpoint is shared with your own Claude Code, so keep it "
                "at 60 or more outside tests and demos."
            )
        self.warnings.extend(self.unknown_names())
        stopping = {
            "all": self.problems,
            "core": [p for p in self.problems if not _is_chat(p)],
            "none": [],
        }[strict]
        if stopping:
            raise ConfigError(self.problems)  # stopped anyway: every problem, at once
        return replace(s, warnings=tuple(self.warnings), problems=tuple(self.problems))

    def unknown_names(self) -> list[str]:
        """Names that look like ours but are no setting: a typo is otherwise silent."""
        ours = ("USAGE_BOT_", *_CHAT_PREFIXES)
        found = []
        for name in sorted(self.env):
            if not name.startswith(ours) or name in self.known or name in _READ_ELSEWHERE:
                continue
            hint = f"did you mean {near}?" if (near := self.nearest(name)) else "it is ignored."
            found.append(f"{name}: no such setting; {hint}")
        return found

    def nearest(self, name: str) -> str | None:
        """The known name most like ``name``, judged on what follows the shared prefix
        (every USAGE_BOT_ name is alike in its first ten letters)."""
        prefix = next(p for p in ("USAGE_BOT_", *_CHAT_PREFIXES) if name.startswith(p))
        tails = {k.removeprefix(prefix): k for k in self.known if k.startswith(prefix)}
        near = difflib.get_close_matches(name.removeprefix(prefix), sorted(tails), n=1, cutoff=0.6)
        return tails[near[0]] if near else None

    def upstream(self) -> UpstreamConfig:
        d = UpstreamConfig()
        token_file = self.raw("CLAUDE_CODE_OAUTH_TOKEN_FILE")
        token = None if token_file else self.secret("CLAUDE_CODE_OAUTH_TOKEN")
        if token_file and self.raw("CLAUDE_CODE_OAUTH_TOKEN"):
            self.problems.append(
                "CLAUDE_CODE_OAUTH_TOKEN and CLAUDE_CODE_OAUTH_TOKEN_FILE are both set: keep "
                "only one of them."
            )
        config_dir = self.raw("CLAUDE_CONFIG_DIR")
        return UpstreamConfig(
            oauth_token=token,
            oauth_token_file=Path(token_file).expanduser() if token_file else None,
            claude_config_dir=Path(config_dir).expanduser() if config_dir else d.claude_config_dir,
            accounts=self.value(
                "USAGE_BOT_ACCOUNTS",
                _accounts,
                d.accounts,
                "write name=path pairs separated by commas, e.g. "
                "alice=/claude/alice,bob=/claude/bob.",
            ),
            api_base_url=self.value(
                "USAGE_BOT_API_BASE_URL",
                _http_url,
                d.api_base_url,
                f"use an http(s) URL such as {d.api_base_url}.",
            ).rstrip("/"),
            user_agent=self.raw("USAGE_BOT_USER_AGENT") or d.user_agent,
            poll_seconds=self.value(
                "USAGE_BOT_POLL_SECONDS",
                _poll_seconds,
                d.poll_seconds,
                f"use a whole number of seconds, at least 1 (default {d.poll_seconds}).",
            ),
            seats=self.seats(),
        )

    def seats(self) -> tuple[SeatSpec, ...]:
        secret = self.secret("USAGE_BOT_SEATS")
        if secret is None:
            return ()
        try:
            return _seats(secret.reveal())
        except ValueError as exc:
            self.problems.append(
                f"USAGE_BOT_SEATS is not valid ({exc}): write name=token pairs separated by "
                "commas; `usage-bot seat token` makes a token and prints the line to add."
            )
            return ()

    def alerts(self) -> AlertConfig:
        d = AlertConfig()
        return AlertConfig(
            thresholds=self.value(
                "USAGE_BOT_THRESHOLDS",
                _thresholds,
                d.thresholds,
                "use percentages over 0 and at most 100, separated by commas, e.g. 80,95.",
            ),
            reset_announce=self.value(
                "USAGE_BOT_RESET_ANNOUNCE",
                cast(Callable[[str], ResetAnnounce], _choice(("alerted", "always", "never"))),
                d.reset_announce,
                "use one of alerted, always, never.",
            ),
            expired_login_alert_after=self.value(
                "USAGE_BOT_EXPIRED_LOGIN_ALERT_AFTER",
                _duration_or_never,
                d.expired_login_alert_after,
                "use a duration such as 24h, 90m or 2d (plain numbers are seconds), 0 for at "
                "once, or never.",
            ),
            forecast=self.value("USAGE_BOT_FORECAST", _on_off, d.forecast, "use on or off."),
            forecast_min_span=self.value(
                "USAGE_BOT_FORECAST_MIN_SPAN",
                duration,
                d.forecast_min_span,
                "use a duration such as 30m or 2h (plain numbers are seconds).",
            ),
        )

    def http(self) -> HttpConfig:
        d = HttpConfig()
        return HttpConfig(
            host=self.raw("USAGE_BOT_HTTP_HOST") or d.host,
            port=self.value(
                "USAGE_BOT_HTTP_PORT",
                _port,
                d.port,
                "use a port number from 1 to 65535, or 0 to turn the HTTP server off.",
            ),
        )

    def log(self) -> LogConfig:
        d = LogConfig()
        return LogConfig(
            level=self.value(
                "USAGE_BOT_LOG_LEVEL",
                _choice(_LOG_LEVELS),
                d.level,
                "use one of DEBUG, INFO, WARNING, ERROR.",
            ),
            format=self.value(
                "USAGE_BOT_LOG_FORMAT",
                cast(Callable[[str], LogFormat], _choice(("text", "json"))),
                d.format,
                "use text or json.",
            ),
        )

    def slack(self) -> SlackConfig:
        d = SlackConfig()
        return SlackConfig(
            bot_token=self.token("SLACK_BOT_TOKEN", "xoxb-", "the Bot User OAuth Token"),
            app_token=self.token(
                "SLACK_APP_TOKEN", "xapp-", "an app-level token with connections:write"
            ),
            signing_secret=self.secret("SLACK_SIGNING_SECRET"),
            alert_channel=self.value(
                "SLACK_ALERT_CHANNEL",
                _pattern(_SLACK_CHANNEL),
                d.alert_channel,
                "use the channel ID (such as C0123456789, from the channel's details), not "
                "its name.",
            ),
            webhook_url=self.url_secret("SLACK_WEBHOOK_URL"),
            api_base_url=self.value(
                "SLACK_API_BASE_URL",
                _http_url,
                d.api_base_url,
                f"use an http(s) URL such as {d.api_base_url}.",
            ).rstrip("/")
            + "/",
            allowed_channels=self.value(
                "SLACK_ALLOWED_CHANNELS",
                _id_list(_SLACK_CHANNEL, str),
                d.allowed_channels,
                "use channel IDs such as C0123456789, separated by commas.",
            ),
            allowed_users=self.value(
                "SLACK_ALLOWED_USERS",
                _id_list(_SLACK_USER, str),
                d.allowed_users,
                "use user IDs such as U0123456789, separated by commas.",
            ),
            admin_users=self.value(
                "SLACK_ADMIN_USERS",
                _id_list(_SLACK_USER, str),
                d.admin_users,
                "use user IDs such as U0123456789, separated by commas.",
            ),
        )

    def discord(self) -> DiscordConfig:
        d = DiscordConfig()
        return DiscordConfig(
            bot_token=self.secret("DISCORD_BOT_TOKEN"),
            guild_id=self.value(
                "DISCORD_GUILD_ID",
                _snowflake,
                d.guild_id,
                "use the server's numeric ID (Developer Mode, right-click the server, Copy ID).",
            ),
            alert_channel_id=self.value(
                "DISCORD_ALERT_CHANNEL_ID",
                _snowflake,
                d.alert_channel_id,
                "use the channel's numeric ID (Developer Mode, right-click it, Copy ID).",
            ),
            webhook_url=self.url_secret("DISCORD_WEBHOOK_URL"),
            allowed_guilds=self.value(
                "DISCORD_ALLOWED_GUILDS",
                _id_list(_SNOWFLAKE, int),
                d.allowed_guilds,
                "use numeric server IDs separated by commas.",
            ),
            allowed_channels=self.value(
                "DISCORD_ALLOWED_CHANNELS",
                _id_list(_SNOWFLAKE, int),
                d.allowed_channels,
                "use numeric channel IDs separated by commas.",
            ),
            api_base_url=self.value(
                "DISCORD_API_BASE_URL",
                _http_url,
                d.api_base_url,
                f"use an http(s) URL such as {d.api_base_url}.",
            ).rstrip("/"),
            gateway_url=self.value(
                "DISCORD_GATEWAY_URL",
                _ws_url,
                d.gateway_url,
                f"use a ws(s) URL such as {d.gateway_url}.",
            ),
        )

    def token(self, name: str, prefix: str, what: str) -> Secret | None:
        secret = self.secret(name)
        if secret is not None and not secret.reveal().startswith(prefix):
            kind = secret.reveal()[:5] if secret.reveal()[:4] in ("xoxb", "xoxp", "xapp") else ""
            got = f" (this one starts with {kind})" if kind else ""
            self.problems.append(f"{name} must start with {prefix}{got}: use {what}.")
        return secret

    def url_secret(self, name: str) -> Secret | None:
        secret = self.secret(name)
        if secret is not None:
            try:
                _http_url(secret.reveal())
            except ValueError:
                self.problems.append(
                    f"{name} is not an http(s) URL: paste the whole webhook URL it was given."
                )
        return secret

    def check_combinations(self, s: Settings) -> None:
        p = self.problems
        if s.slack.bot_token is None:
            for name in ("SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_ALERT_CHANNEL"):
                if self.raw(name) or self.raw(f"{name}_FILE"):
                    p.append(f"{name} is set but SLACK_BOT_TOKEN is not: set the xoxb- bot token.")
        elif s.slack.app_token is None and s.slack.signing_secret is None:
            p.append(
                "SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN (Socket Mode) nor "
                "SLACK_SIGNING_SECRET (HTTP mode) is: set SLACK_APP_TOKEN for Socket Mode."
            )
        elif s.slack.app_token is None and s.http.port == 0:
            p.append(
                "SLACK_SIGNING_SECRET (HTTP mode) needs the HTTP server, but "
                "USAGE_BOT_HTTP_PORT=0 turns it off: set a port, or use SLACK_APP_TOKEN."
            )
        if s.discord.bot_token is None and self.raw("DISCORD_ALERT_CHANNEL_ID"):
            p.append(
                "DISCORD_ALERT_CHANNEL_ID is set but DISCORD_BOT_TOKEN is not: set the bot "
                "token, or use DISCORD_WEBHOOK_URL for alerts without a bot."
            )
        if s.discord.bot_token is None and self.raw("DISCORD_GUILD_ID"):
            p.append("DISCORD_GUILD_ID is set but DISCORD_BOT_TOKEN is not: set the bot token.")
        named = [a for a in s.upstream.accounts if a.path is not None]
        env_token = self.raw("CLAUDE_CODE_OAUTH_TOKEN") or self.raw("CLAUDE_CODE_OAUTH_TOKEN_FILE")
        if named and env_token:
            p.append(
                "CLAUDE_CODE_OAUTH_TOKEN applies to the single default account, but "
                "USAGE_BOT_ACCOUNTS names several: give each account its own path instead."
            )


def _shown(name: str, raw: str) -> str:
    """The value as it may be printed: secrets' values are never echoed."""
    return "…" if any(word in name for word in ("TOKEN", "SECRET", "WEBHOOK")) else repr(raw)


def _accounts(raw: str) -> tuple[AccountSpec, ...]:
    specs: list[AccountSpec] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name, sep, path = part.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not path:
            raise ValueError(f"{part!r} has no =path")
        if not _ACCOUNT_NAME.match(name):
            raise ValueError(f"{name!r} is not a name of letters, digits, '.', '_' or '-'")
        if any(s.name == name for s in specs):
            raise ValueError(f"{name!r} is named twice")
        specs.append(AccountSpec(name, Path(path).expanduser()))
    if not specs:
        raise ValueError("no account is named")
    return tuple(specs)


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("")
    return raw


def _ws_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError("")
    return raw


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("not a whole number") from None


def _poll_seconds(raw: str) -> int:
    value = _int(raw)
    if value < 1:
        raise ValueError("under 1")
    return value


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(raw: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d`` or plain seconds."""
    found = _DURATION.match(raw.strip().lower())
    if found is None:
        raise ValueError("not a duration")
    seconds = float(found[1]) * _UNIT_SECONDS[found[2]]
    if seconds > 366 * 86400:
        raise ValueError("over a year")
    return timedelta(seconds=seconds)


def _duration_or_never(raw: str) -> timedelta | None:
    return None if raw.strip().lower() == "never" else duration(raw)


def _thresholds(raw: str) -> tuple[float, ...]:
    values = set()
    for part in (p.strip().rstrip("%") for p in raw.split(",")):
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{part!r} is not a number") from None
        if not 0 < value <= 100:
            raise ValueError(f"{part} is not over 0 and at most 100")
        values.add(value)
    if not values:
        raise ValueError("no threshold given")
    return tuple(sorted(values))


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        for option in options:
            if raw.lower() == option.lower():
                return option
        raise ValueError("")

    return parse


def _state(raw: str) -> str:
    """A path, ``sqlite:///path``, ``:memory:``; the state back end checks the rest."""
    if "://" in raw and not raw.startswith("sqlite:///"):
        raise ValueError("only SQLite is supported")
    return raw.removeprefix("sqlite:///") if raw.startswith("sqlite:///") else raw


def _on_off(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("on", "true", "yes", "1"):
        return True
    if lowered in ("off", "false", "no", "0"):
        return False
    raise ValueError("")


def _seats(raw: str) -> tuple[SeatSpec, ...]:
    """``alice=TOKEN,bob=TOKEN``; the error names a seat, never a token."""
    seats: list[SeatSpec] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name, sep, token = part.partition("=")
        name, token = name.strip(), token.strip()
        if not sep or not token:
            raise ValueError(f"the seat {name or '?'!r} has no =token")
        if not _ACCOUNT_NAME.match(name):
            raise ValueError(f"{name!r} is not a name of letters, digits, '.', '_' or '-'")
        if any(seat.name == name for seat in seats):
            raise ValueError(f"{name!r} is named twice")
        if len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token:
            raise ValueError(f"the token of {name!r} is too short or not printable ASCII")
        if any(seat.token.reveal() == token for seat in seats):
            raise ValueError(f"{name!r} has the token of another seat")
        seats.append(SeatSpec(name, Secret(token)))
    if not seats:
        raise ValueError("no seat is named")
    return tuple(seats)


def _port(raw: str) -> int:
    value = _int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("out of range")
    return value


def _pattern(regex: re.Pattern[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not regex.match(raw):
            raise ValueError("")
        return raw

    return parse


def _snowflake(raw: str) -> int:
    if not _SNOWFLAKE.match(raw):
        raise ValueError("")
    return int(raw)


def _id_list(regex: re.Pattern[str], convert: Callable[[str], T]) -> Callable[[str], frozenset[T]]:
    def parse(raw: str) -> frozenset[T]:
        items = [p.strip() for p in raw.split(",") if p.strip()]
        bad = [item for item in items if not regex.match(item)]
        if bad:
            raise ValueError(f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not an ID")
        return frozenset(convert(item) for item in items)

    return parse
