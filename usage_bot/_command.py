"""``/claude-usage``: the one grammar, the access policy and the answer plan, for every
front end. Pure: a function of the words typed, who typed them where, and the accounts.

A front end only translates: it builds a :class:`Caller` from its platform's request and
hands :func:`plan` the text typed (Discord's options become words too), then turns the
:class:`Plan` into its platform's answer. So ``/claude-usage`` means the same in Slack,
Discord, the console and the test front end, and a new word is added in one place:

- a word that starts a command of its own (``help``) goes in :data:`_VERBS`, with the
  function that reads the words after it;
- a word that modifies the report (``share``) goes in :data:`_MODIFIERS`;
- anything else must be an account's name (any case); a word that is none of these gets
  the help, saying what was not understood.

The access policy (``SLACK_ALLOWED_*``, ``DISCORD_ALLOWED_*``) is checked before the words
are read at all: a refused caller learns nothing about the accounts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

COMMAND = "claude-usage"

Visibility = Literal["private", "channel"]
RefusalReason = Literal["user", "channel", "server", "direct_message"]


# -- what a command asks for ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShowUsage:
    """The report: ``accounts`` in that order, or every account when empty; ``shared``:
    posted for the channel rather than shown to the caller alone."""

    accounts: tuple[str, ...] = ()
    shared: bool = False


@dataclass(frozen=True, slots=True)
class ShowHelp:
    """The help; ``not_understood`` is the text that was not understood, when that is why."""

    not_understood: str | None = None


Request = ShowUsage | ShowHelp


def parse(text: str, accounts: Sequence[str]) -> Request:
    """What ``/claude-usage TEXT`` asks for, given the configured accounts."""
    words = text.split()
    if any(word.lower() in _HELP_WORDS for word in words):
        return ShowHelp()
    if words and (verb := _VERBS.get(words[0].lower())) is not None:
        return verb(words[1:], accounts)
    request = ShowUsage()
    by_lower = {name.lower(): name for name in accounts}
    for word in words:
        modifier = _MODIFIERS.get(word.lower())
        if modifier is not None:
            request = modifier(request)
            continue
        name = word if word in accounts else by_lower.get(word.lower())
        if name is None:
            return ShowHelp(not_understood=text.strip())
        if name not in request.accounts:
            request = replace(request, accounts=(*request.accounts, name))
    return request


def _help(_: Sequence[str], __: Sequence[str]) -> Request:
    return ShowHelp()


_HELP_WORDS = frozenset({"help", "-h", "--help", "?"})
_VERBS: Mapping[str, Callable[[Sequence[str], Sequence[str]], Request]] = {"help": _help}
_MODIFIERS: Mapping[str, Callable[[ShowUsage], ShowUsage]] = {
    "share": lambda request: replace(request, shared=True),
}


# -- who asks, and whether they may --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """Who typed the command, and where, in the platform's own IDs.

    ``server`` is a Discord server (None in a direct message, and in Slack);
    ``parent_channel`` the channel of a thread, which counts as that channel.
    """

    platform: str
    user: str = ""
    channel: str | None = None
    server: str | None = None
    parent_channel: str | None = None


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Who may use the command: each set empty means everyone (PRODUCT.md's defaults).
    ``servers`` set means direct messages are refused (they belong to no server)."""

    users: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    servers: frozenset[str] = frozenset()


def refusal(policy: AccessPolicy, caller: Caller) -> RefusalReason | None:
    """Why ``caller`` may not use the command, or None when they may."""
    if policy.users and caller.user not in policy.users:
        return "user"
    if policy.servers and caller.server is None:
        return "direct_message"
    if policy.servers and caller.server not in policy.servers:
        return "server"
    channels = policy.channels
    if channels and caller.channel not in channels and caller.parent_channel not in channels:
        return "channel"
    return None


# -- the answer plan -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refused:
    """The caller may not use the command here: say why, privately, and ask nothing."""

    reason: RefusalReason


@dataclass(frozen=True, slots=True)
class Plan:
    """What to answer: ``request``; which accounts to read for it; who sees the answer."""

    request: Request
    accounts: tuple[str, ...]
    visibility: Visibility


def plan(
    text: str, *, caller: Caller, accounts: Sequence[str], policy: AccessPolicy
) -> Plan | Refused:
    """The whole decision for one ``/claude-usage TEXT``, before anything is fetched."""
    reason = refusal(policy, caller)
    if reason is not None:
        return Refused(reason)
    request = parse(text, accounts)
    if isinstance(request, ShowHelp):
        return Plan(request, (), "private")
    chosen = request.accounts or tuple(accounts)
    return Plan(request, chosen, "channel" if request.shared else "private")


def words_of(*, share: bool = False, account: str | None = None) -> str:
    """Options of a platform's own (Discord's ``share`` and ``account``) as the words of
    the grammar, so that they mean exactly what the typed words mean."""
    words = ["share"] if share else []
    if account is not None and account.strip():
        words.append(account.strip())
    return " ".join(words)
