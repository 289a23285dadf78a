"""The credential loader: the order, expiry, scopes, the macOS keychain, broken files."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import TOKEN, write_login
from usage_bot._clock import FakeClock
from usage_bot._config import AccountSpec, Secret, UpstreamConfig
from usage_bot._credentials import CredentialLoader
from usage_bot._exceptions import (
    CredentialsEmpty,
    CredentialsExpired,
    CredentialsMalformed,
    CredentialsMissing,
    CredentialsUnreadable,
    ScopeMissing,
)

KEYCHAIN_TOKEN = "sk-ant-oat01-from-the-keychain-CCCCCCCCCCCCCCCCCCCC"


def loader(settings: UpstreamConfig, *, name: str = "default", path: Path | None = None, **kw: str):  # type: ignore[no-untyped-def]
    return CredentialLoader(AccountSpec(name, path), settings, **kw)


@pytest.fixture
def fake_security(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``security`` command on PATH that prints a keychain item, as macOS's does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    item = tmp_path / "keychain-item.json"
    item.write_text(
        json.dumps(
            {
                "claudeAiOauth": {
                    "accessToken": KEYCHAIN_TOKEN,
                    "expiresAt": 4102444800000,
                    "scopes": ["user:inference", "user:profile"],
                }
            }
        )
    )
    script = bin_dir / "security"
    script.write_text(
        "#!/bin/sh\n"
        f'[ "$1 $2 $3" = "find-generic-password -s Claude Code-credentials" ] || exit 44\n'
        f'[ "$4" = "-w" ] || exit 45\n'
        f'cat "{item}"\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return item


def test_reads_the_claude_code_login_and_its_expiry(claude_dir: Path, clock: FakeClock) -> None:
    write_login(claude_dir, expires_at=clock.now() + timedelta(hours=8))
    credentials = loader(UpstreamConfig(claude_config_dir=claude_dir)).load(clock.now())
    assert credentials.token.reveal() == TOKEN
    assert credentials.expires_at == clock.now() + timedelta(hours=8)
    assert credentials.scopes == ("user:inference", "user:profile")
    assert credentials.subscription_type == "max"
    assert str(claude_dir) in credentials.source


def test_the_environment_token_comes_first(claude_dir: Path, clock: FakeClock) -> None:
    settings = UpstreamConfig(claude_config_dir=claude_dir, oauth_token=Secret("sk-ant-oat01-env"))
    credentials = loader(settings).load(clock.now())
    assert credentials.token.reveal() == "sk-ant-oat01-env"
    assert credentials.source == "CLAUDE_CODE_OAUTH_TOKEN"


def test_the_token_file_is_read_again_on_every_load(tmp_path: Path, clock: FakeClock) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("sk-ant-oat01-first\n")
    load = loader(UpstreamConfig(oauth_token_file=token_file)).load
    assert load(clock.now()).token.reveal() == "sk-ant-oat01-first"
    token_file.write_text("sk-ant-oat01-second\n")
    assert load(clock.now()).token.reveal() == "sk-ant-oat01-second"


def test_a_rewritten_login_is_picked_up(claude_dir: Path, clock: FakeClock) -> None:
    load = loader(UpstreamConfig(claude_config_dir=claude_dir)).load
    assert load(clock.now()).token.reveal() == TOKEN
    write_login(claude_dir, token="sk-ant-oat01-rotated", now=clock.now())
    assert load(clock.now()).token.reveal() == "sk-ant-oat01-rotated"


def test_an_expired_login_is_refused_before_anything_is_sent(
    claude_dir: Path, clock: FakeClock
) -> None:
    write_login(claude_dir, expires_at=clock.now() - timedelta(minutes=1))
    with pytest.raises(CredentialsExpired) as caught:
        loader(UpstreamConfig(claude_config_dir=claude_dir)).load(clock.now())
    assert "run `claude`" in caught.value.message
    assert caught.value.exit_code == 3
    assert TOKEN not in caught.value.message


def test_a_login_without_user_profile_scope_is_explained(
    claude_dir: Path, clock: FakeClock
) -> None:
    write_login(claude_dir, scopes=["user:inference"], now=clock.now())
    with pytest.raises(ScopeMissing) as caught:
        loader(UpstreamConfig(claude_config_dir=claude_dir)).load(clock.now())
    assert "user:profile" in caught.value.message
    assert "claude setup-token" in caught.value.message


def test_nothing_found_names_every_place_looked(tmp_path: Path, clock: FakeClock) -> None:
    settings = UpstreamConfig(claude_config_dir=tmp_path / "nothing")
    with pytest.raises(CredentialsMissing) as caught:
        loader(settings, platform="linux").load(clock.now())
    assert "CLAUDE_CODE_OAUTH_TOKEN" in caught.value.message
    assert str(tmp_path / "nothing" / ".credentials.json") in caught.value.message
    assert "keychain" not in caught.value.message


def test_macos_reads_the_keychain_when_there_is_no_file(
    tmp_path: Path, clock: FakeClock, fake_security: Path
) -> None:
    settings = UpstreamConfig(claude_config_dir=tmp_path / "nothing")
    credentials = loader(settings, platform="darwin").load(clock.now())
    assert credentials.token.reveal() == KEYCHAIN_TOKEN
    assert "keychain" in credentials.source


def test_macos_file_still_comes_before_the_keychain(
    claude_dir: Path, clock: FakeClock, fake_security: Path
) -> None:
    credentials = loader(UpstreamConfig(claude_config_dir=claude_dir), platform="darwin").load(
        clock.now()
    )
    assert credentials.token.reveal() == TOKEN


def test_macos_without_a_keychain_item_says_where_it_looked(
    tmp_path: Path, clock: FakeClock, fake_security: Path
) -> None:
    fake_security.write_text("")  # `security` prints nothing: the item is not there
    with pytest.raises(CredentialsMalformed):
        loader(UpstreamConfig(claude_config_dir=tmp_path / "x"), platform="darwin").load(
            clock.now()
        )
    fake_security.unlink()  # cat fails, security exits non-zero
    with pytest.raises(CredentialsMissing) as caught:
        loader(UpstreamConfig(claude_config_dir=tmp_path / "x"), platform="darwin").load(
            clock.now()
        )
    assert "keychain" in caught.value.message


@pytest.mark.parametrize(
    ("content", "error", "fragment"),
    [
        (
            '{"claudeAiOauth": {"accessToken": "sk-ant-oat01-x", "expi',
            CredentialsMalformed,
            "half-written",
        ),
        ("", CredentialsMalformed, "is empty"),
        ('{"other": {}}', CredentialsMalformed, "no claudeAiOauth"),
        ('{"claudeAiOauth": {}}', CredentialsMalformed, "no accessToken"),
        ('{"claudeAiOauth": {"accessToken": 5}}', CredentialsMalformed, "not a string"),
        ('{"claudeAiOauth": {"accessToken": "  "}}', CredentialsEmpty, "is empty"),
        (
            '{"claudeAiOauth": {"accessToken": "t", "expiresAt": "soon"}}',
            CredentialsMalformed,
            "expiresAt",
        ),
        (
            '{"claudeAiOauth": {"accessToken": "t", "scopes": "user:profile"}}',
            CredentialsMalformed,
            "scopes",
        ),
    ],
)
def test_each_broken_file_has_its_own_message(
    tmp_path: Path, clock: FakeClock, content: str, error: type[Exception], fragment: str
) -> None:
    (tmp_path / ".credentials.json").write_text(content)
    with pytest.raises(error) as caught:
        loader(UpstreamConfig(claude_config_dir=tmp_path)).load(clock.now())
    assert fragment in str(caught.value)
    assert str(tmp_path) in str(caught.value)


def test_a_file_that_is_not_text_is_unreadable(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / ".credentials.json").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(CredentialsUnreadable, match=r"not text.*log in again"):
        loader(UpstreamConfig(claude_config_dir=tmp_path)).load(clock.now())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_unreadable(claude_dir: Path, clock: FakeClock) -> None:
    file = claude_dir / ".credentials.json"
    file.chmod(0)
    try:
        with pytest.raises(CredentialsUnreadable) as caught:
            loader(UpstreamConfig(claude_config_dir=claude_dir)).load(clock.now())
        assert "readable" in caught.value.message
    finally:
        file.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_named_accounts_read_only_their_own_path(tmp_path: Path, clock: FakeClock) -> None:
    write_login(tmp_path / "alice", token="sk-ant-oat01-alice", now=clock.now())
    bob_file = write_login(tmp_path / "bob", token="sk-ant-oat01-bob", now=clock.now())
    settings = UpstreamConfig(oauth_token=Secret("sk-ant-oat01-env"))
    alice = loader(settings, name="alice", path=tmp_path / "alice").load(clock.now())
    bob = loader(settings, name="bob", path=bob_file).load(clock.now())
    assert (alice.token.reveal(), bob.token.reveal()) == ("sk-ant-oat01-alice", "sk-ant-oat01-bob")
    with pytest.raises(CredentialsMissing):
        loader(settings, name="carol", path=tmp_path / "carol").load(clock.now())


@pytest.mark.parametrize(
    ("expires_at", "expired"), [("-1e300", True), ("1e300", False), ("NaN", None)]
)
def test_an_expiry_off_the_calendar(
    tmp_path: Path, clock: FakeClock, expires_at: str, expired: bool | None
) -> None:
    (tmp_path / ".credentials.json").write_text(
        '{"claudeAiOauth": {"accessToken": "t", "expiresAt": ' + expires_at + "}}"
    )
    load = loader(UpstreamConfig(claude_config_dir=tmp_path)).load
    if expired is None:
        with pytest.raises(CredentialsMalformed, match="expiresAt"):
            load(clock.now())
    elif expired:
        with pytest.raises(CredentialsExpired):
            load(clock.now())
    else:
        assert load(clock.now()).token.reveal() == "t"


def test_the_loader_never_writes(claude_dir: Path, clock: FakeClock) -> None:
    file = claude_dir / ".credentials.json"
    write_login(claude_dir, expires_at=clock.now() - timedelta(hours=1))
    before = (file.read_bytes(), file.stat().st_mtime_ns)
    with pytest.raises(CredentialsExpired):
        loader(UpstreamConfig(claude_config_dir=claude_dir)).load(clock.now())
    assert (file.read_bytes(), file.stat().st_mtime_ns) == before
