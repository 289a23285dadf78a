"""Configuration: defaults, every problem at once, NAME_FILE secrets, .env files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from usage_bot._config import AccountSpec, Secret, load_settings
from usage_bot._exceptions import ConfigError


def load(**env: str):  # type: ignore[no-untyped-def]
    return load_settings(env, dotenv_path=None)


def test_defaults_match_the_product_contract() -> None:
    s = load()
    assert s.upstream.accounts == (AccountSpec("default"),)
    assert s.upstream.api_base_url == "https://api.anthropic.com"
    assert s.upstream.user_agent.startswith("claude-code/")
    assert (s.upstream.poll_seconds, s.alerts.thresholds, s.alerts.reset_announce) == (
        180,
        (80.0, 95.0),
        "alerted",
    )
    assert (s.http.host, s.http.port, s.log.level, s.log.format) == (
        "127.0.0.1",
        8080,
        "INFO",
        "text",
    )
    assert s.slack.api_base_url == "https://slack.com/api/"
    assert s.discord.api_base_url == "https://discord.com/api/v10"
    assert s.discord.gateway_url == "wss://gateway.discord.gg/"
    assert s.upstream.min_fetch_interval == 30
    assert not s.chat_configured


def test_every_problem_is_listed_at_once_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load(
            USAGE_BOT_THRESHOLDS="80,120",
            USAGE_BOT_RESET_ANNOUNCE="sometimes",
            USAGE_BOT_POLL_SECONDS="0",
            USAGE_BOT_API_BASE_URL="api.anthropic.com",
            USAGE_BOT_LOG_FORMAT="xml",
            USAGE_BOT_HTTP_PORT="99999",
            SLACK_BOT_TOKEN="xapp-1-wrong-kind",
            SLACK_APP_TOKEN="xapp-1-A-1-abc",
            SLACK_ALERT_CHANNEL="#general",
            DISCORD_GUILD_ID="abc",
            DISCORD_BOT_TOKEN="token",
            USAGE_BOT_ACCOUNTS="alice",
        )
    problems = caught.value.problems
    for name in (
        "USAGE_BOT_THRESHOLDS",
        "USAGE_BOT_RESET_ANNOUNCE",
        "USAGE_BOT_POLL_SECONDS",
        "USAGE_BOT_API_BASE_URL",
        "USAGE_BOT_LOG_FORMAT",
        "USAGE_BOT_HTTP_PORT",
        "SLACK_BOT_TOKEN",
        "SLACK_ALERT_CHANNEL",
        "DISCORD_GUILD_ID",
        "USAGE_BOT_ACCOUNTS",
    ):
        assert any(p.startswith(name) for p in problems), name
    assert caught.value.exit_code == 2
    assert "xapp-1-wrong-kind" not in caught.value.message
    slack = next(p for p in problems if p.startswith("SLACK_BOT_TOKEN"))
    assert "xoxb-" in slack  # says what the right kind looks like


def test_slack_needs_a_connection_mode() -> None:
    with pytest.raises(ConfigError) as caught:
        load(SLACK_BOT_TOKEN="xoxb-1-2-3")
    assert "SLACK_APP_TOKEN" in caught.value.message
    with pytest.raises(ConfigError) as caught:
        load(SLACK_BOT_TOKEN="xoxb-1-2-3", SLACK_SIGNING_SECRET="abc", USAGE_BOT_HTTP_PORT="0")
    assert "USAGE_BOT_HTTP_PORT=0" in caught.value.message
    with pytest.raises(ConfigError) as caught:
        load(SLACK_ALERT_CHANNEL="C0123456789")
    assert "SLACK_BOT_TOKEN is not" in caught.value.message


def test_secrets_come_from_files_and_never_show_themselves(tmp_path: Path) -> None:
    token_file = tmp_path / "bot-token"
    token_file.write_text("xoxb-111-222-secretvalue\n")
    s = load(
        SLACK_BOT_TOKEN_FILE=str(token_file),
        SLACK_APP_TOKEN="xapp-1-A1-secretapp",
        DISCORD_WEBHOOK_URL="https://discord.com/api/webhooks/1/abc",
    )
    assert s.slack.bot_token == Secret("xoxb-111-222-secretvalue")
    assert "secretvalue" not in repr(s)
    assert "secretapp" not in str(s)
    assert set(s.secrets()) == {
        "xoxb-111-222-secretvalue",
        "xapp-1-A1-secretapp",
        "https://discord.com/api/webhooks/1/abc",
    }


def test_a_missing_secret_file_and_a_doubly_set_secret_are_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(
            DISCORD_BOT_TOKEN_FILE=str(tmp_path / "nope"),
            SLACK_BOT_TOKEN="xoxb-1",
            SLACK_BOT_TOKEN_FILE=str(tmp_path / "nope"),
            SLACK_APP_TOKEN="xapp-1",
        )
    message = caught.value.message
    assert "DISCORD_BOT_TOKEN_FILE" in message
    assert "SLACK_BOT_TOKEN and SLACK_BOT_TOKEN_FILE are both set" in message


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("USAGE_BOT_POLL_SECONDS=240\nUSAGE_BOT_THRESHOLDS=50,90\n")
    s = load_settings({"USAGE_BOT_THRESHOLDS": "70"}, dotenv_path=dotenv)
    assert s.upstream.poll_seconds == 240
    assert s.alerts.thresholds == (70.0,)


def test_accounts_thresholds_and_lists_are_parsed() -> None:
    s = load(
        USAGE_BOT_ACCOUNTS="alice=/claude/alice, bob=/claude/bob/.credentials.json",
        USAGE_BOT_THRESHOLDS="95, 80%,80",
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_APP_TOKEN="xapp-1",
        SLACK_ALLOWED_CHANNELS="C0123456789,C9876543210",
        DISCORD_BOT_TOKEN="t",
        DISCORD_ALLOWED_GUILDS="123456789012345678",
        USAGE_BOT_STATE="sqlite:////data/state.db",
        USAGE_BOT_LOG_LEVEL="debug",
    )
    assert [a.name for a in s.upstream.accounts] == ["alice", "bob"]
    assert s.upstream.accounts[1].path == Path("/claude/bob/.credentials.json")
    assert s.alerts.thresholds == (80.0, 95.0)
    assert s.slack.allowed_channels == {"C0123456789", "C9876543210"}
    assert s.discord.allowed_guilds == {123456789012345678}
    assert s.state == "/data/state.db"
    assert s.log.level == "DEBUG"


def test_duplicate_account_names_and_other_databases_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load(USAGE_BOT_ACCOUNTS="a=/x,a=/y", USAGE_BOT_STATE="postgres://db/x")
    assert "named twice" in caught.value.message
    assert "only SQLite" in caught.value.message


def test_a_short_poll_interval_warns_and_shortens_the_spacing() -> None:
    s = load(USAGE_BOT_POLL_SECONDS="5")
    assert s.upstream.min_fetch_interval == 5
    assert any("USAGE_BOT_POLL_SECONDS" in w for w in s.warnings)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("90m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("45s", timedelta(seconds=45)),
        ("3600", timedelta(hours=1)),
        ("0", timedelta(0)),
        ("never", None),
        ("NEVER", None),
    ],
)
def test_the_expired_login_alert_delay_is_a_duration_or_never(
    raw: str, expected: timedelta | None
) -> None:
    settings = load_settings({"USAGE_BOT_EXPIRED_LOGIN_ALERT_AFTER": raw}, dotenv_path=None)
    assert settings.alerts.expired_login_alert_after == expected


def test_the_expired_login_alert_delay_defaults_to_a_day() -> None:
    assert load_settings({}, dotenv_path=None).alerts.expired_login_alert_after == timedelta(
        hours=24
    )


@pytest.mark.parametrize("raw", ["soon", "-1h", "1w", "24 hours", "9999d"])
def test_a_bad_expired_login_alert_delay_names_the_variable_and_the_fix(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"USAGE_BOT_EXPIRED_LOGIN_ALERT_AFTER": raw}, dotenv_path=None)
    assert "USAGE_BOT_EXPIRED_LOGIN_ALERT_AFTER" in caught.value.message
    assert "24h" in caught.value.message


def test_names_of_ours_that_are_no_setting_are_warned_with_the_nearest_one() -> None:
    settings = load_settings(
        {
            "SLACK_BOT_TOKN": "xoxb-1",
            "DISCORD_GUILD": "1",
            "USAGE_BOT_POL_SECONDS": "60",
            "USAGE_BOT_SOMETHING_ELSE": "1",
            "USAGE_BOT_UID": "1000",  # Compose's, not ours to judge
            "HOME": "/home/alice",  # not ours at all
        },
        dotenv_path=None,
    )
    assert settings.warnings == (
        "DISCORD_GUILD: no such setting; did you mean DISCORD_GUILD_ID?",
        "SLACK_BOT_TOKN: no such setting; did you mean SLACK_BOT_TOKEN?",
        "USAGE_BOT_POL_SECONDS: no such setting; did you mean USAGE_BOT_POLL_SECONDS?",
        "USAGE_BOT_SOMETHING_ELSE: no such setting; it is ignored.",
    )


def test_a_misspelled_variable_in_the_dotenv_file_is_warned_too(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("SLACK_ALERT_CHANEL=C0123456789\n", encoding="utf-8")
    settings = load_settings({}, dotenv_path=dotenv)
    assert settings.warnings == (
        "SLACK_ALERT_CHANEL: no such setting; did you mean SLACK_ALERT_CHANNEL?",
    )


@pytest.mark.parametrize(("strict", "raises"), [("all", True), ("core", False), ("none", False)])
def test_a_chat_problem_stops_only_what_needs_the_chat(strict: str, raises: bool) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-1-2-3"}
    if raises:
        with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
            load_settings(env, dotenv_path=None, strict=strict)  # type: ignore[arg-type]
        return
    settings = load_settings(env, dotenv_path=None, strict=strict)  # type: ignore[arg-type]
    assert len(settings.problems) == 1
    assert "SLACK_APP_TOKEN" in settings.problems[0]


def test_a_core_problem_stops_check_but_not_doctor() -> None:
    env = {"USAGE_BOT_POLL_SECONDS": "often"}
    with pytest.raises(ConfigError, match="USAGE_BOT_POLL_SECONDS"):
        load_settings(env, dotenv_path=None, strict="core")
    settings = load_settings(env, dotenv_path=None, strict="none")
    assert settings.upstream.poll_seconds == 180  # its default, while doctor says what is wrong
    assert "USAGE_BOT_POLL_SECONDS" in settings.problems[0]


def test_a_threshold_over_0_is_accepted_and_150_says_what_is() -> None:
    assert load_settings({"USAGE_BOT_THRESHOLDS": "0.5"}, dotenv_path=None).alerts.thresholds == (
        0.5,
    )
    with pytest.raises(ConfigError, match="150 is not over 0 and at most 100"):
        load_settings({"USAGE_BOT_THRESHOLDS": "80,150"}, dotenv_path=None)
