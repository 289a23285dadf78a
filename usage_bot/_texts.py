"""What the bot says to people, in one place: the command's help, its notices and
refusals, and the sentences around them. Each platform lays them out (Slack's mrkdwn,
Discord's markdown, plain text on the console); none writes its own.

Error sentences live with their errors (:mod:`usage_bot._exceptions`), and announcements
with the alert engine's events (:mod:`usage_bot._alerts`), each built from its values.
"""

from __future__ import annotations

from collections.abc import Sequence

from usage_bot._command import COMMAND, RefusalReason

SLASH = f"/{COMMAND}"
# Where a user finds every setting and each platform's set-up, wherever usage-bot came
# from (a wheel or an image has no README or .env.example beside it).
DOCS_URL = "https://github.com/usage-bot/usage-bot#readme"
# Each platform's set-up, step by step (docs/slack.md and docs/discord.md, online).
SLACK_DOCS_URL = "https://github.com/usage-bot/usage-bot/blob/main/docs/slack.md"
DISCORD_DOCS_URL = "https://github.com/usage-bot/usage-bot/blob/main/docs/discord.md"

# -- the command's help --------------------------------------------------------------------

HELP_INTRO = (
    "shows how much of the team's Claude subscription quota is used, and when each limit resets."
)
# (what to type after the command, what it does); the front end shows each as one line.
HELP_LINES: tuple[tuple[str, str], ...] = (
    ("", "the report, only for you"),
    ("share", "the report, posted in this channel"),
    ("NAME", "one account in full (also `share NAME`)"),
    ("help", "this help"),
)


def not_understood(text: str) -> str:
    return f"I don't understand `{text}`."


def accounts_line(accounts: Sequence[str]) -> str | None:
    """``Accounts: alice, bob.`` when there is more than one to choose from."""
    if len(accounts) < 2:
        return None
    return "Accounts: " + ", ".join(f"`{name}`" for name in accounts) + "."


# -- notices -------------------------------------------------------------------------------

FETCHING = "Asking Anthropic for the latest usage…"
FETCHING_SHARED = "Asking Anthropic for the latest usage; the report follows in this channel."
PENDING_NOTE = "newer values follow as soon as Anthropic answers."
FAILED = (
    "Sorry, something went wrong while answering; the bot logged the details. Try again in "
    "a minute, and if it keeps failing, check the bot's log."
)
STOPPING = "usage-bot is restarting; try again in a minute."

# -- refusals ------------------------------------------------------------------------------

_ALLOW_LISTS: dict[str, dict[RefusalReason, str]] = {
    "slack": {"user": "SLACK_ALLOWED_USERS", "channel": "SLACK_ALLOWED_CHANNELS"},
    "discord": {"server": "DISCORD_ALLOWED_GUILDS", "channel": "DISCORD_ALLOWED_CHANNELS"},
}


def refused(reason: RefusalReason, platform: str) -> str:
    """Why the command is not available here, and who can change that."""
    variable = _ALLOW_LISTS.get(platform, {}).get(reason, "the allow list")
    if reason == "user":
        return (
            f"Sorry, {SLASH} is not available to you. Ask whoever runs usage-bot to add your "
            f"user ID to {variable}."
        )
    if reason == "direct_message":
        return (
            f"Sorry, {SLASH} is not available in direct messages here; use it in one of the "
            "team's servers."
        )
    if reason == "server":
        return (
            f"Sorry, {SLASH} is not available in this server. Ask whoever runs usage-bot to "
            f"add this server's ID to {variable}."
        )
    return (
        f"Sorry, {SLASH} is not available in this channel. Ask whoever runs usage-bot to add "
        f"this channel's ID to {variable}, or try it in an allowed channel."
    )


# -- Discord's command, as its client shows it ------------------------------------------------

COMMAND_DESCRIPTION = "Show the team's Claude quota: each limit, how much is used, when it resets"
SHARE_DESCRIPTION = "Post the report in this channel for everyone (otherwise only you see it)"
ACCOUNT_DESCRIPTION = "Show only this account (otherwise all of them)"


# -- the first run -------------------------------------------------------------------------

NOTHING_CONFIGURED = (
    "usage-bot: nothing is configured yet, so here is the demo (the bot against a simulated "
    "account, offline). To use your own account, log in with `claude` on this machine or "
    "set CLAUDE_CODE_OAUTH_TOKEN; to post to a chat, set SLACK_BOT_TOKEN or "
    f"DISCORD_BOT_TOKEN (every setting: {DOCS_URL}). `usage-bot doctor` checks what you set."
)
