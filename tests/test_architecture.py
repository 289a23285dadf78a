"""The layout's rules (docs/architecture.md), checked on the code itself: which module may
import what, and who reads the environment. Read with ``ast``, not by importing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import usage_bot

PACKAGE = Path(usage_bot.__file__).parent


def modules() -> dict[str, ast.Module]:
    return {
        path.relative_to(PACKAGE).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def imported(tree: ast.Module) -> set[str]:
    """The top-level names of every module imported anywhere in ``tree``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    ("library", "home"),
    [
        ("slack_bolt", "frontends/slack/"),
        ("slack_sdk", "frontends/slack/"),
        ("discord", "frontends/discord/"),
        ("sqlite3", "state/sqlite.py"),
        ("apscheduler", "_scheduler.py"),
        ("prometheus_client", "_metrics.py"),
    ],
)
def test_a_library_is_imported_only_in_its_own_place(library: str, home: str) -> None:
    strangers = [name for name, tree in modules().items() if library in imported(tree)]
    assert all(name.startswith(home) for name in strangers), strangers


def test_only_the_configuration_reads_the_environment() -> None:
    readers = []
    for name, tree in modules().items():
        readers.extend(
            name
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        )
    assert set(readers) <= {"_config.py"}, readers


@pytest.mark.parametrize(
    "module",
    [
        "usage_bot.frontends.slack",
        "usage_bot.frontends.discord",
        "usage_bot.frontends.slack.webhook",
        "usage_bot.frontends.discord.notify",
        "usage_bot.frontends.slack.doctor",
        "usage_bot.frontends.discord.doctor",
        "usage_bot._core",
        "usage_bot._cli",
    ],
)
def test_importing_these_loads_no_chat_sdk(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & "
        "{'slack_bolt', 'slack_sdk', 'discord', 'apscheduler', 'prometheus_client'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", (module, done.stdout)


def test_the_pure_modules_do_no_io_and_import_nothing_async() -> None:
    pure = ("_alerts.py", "_command.py", "_model.py", "_report.py", "_terminal.py", "_texts.py")
    forbidden = {"asyncio", "httpx", "aiohttp", "sqlite3", "socket", "subprocess"}
    trees = modules()
    for name in pure:
        assert not imported(trees[name]) & forbidden, name
        # And nothing that pulls the async shell in behind their back.
        inner = {
            node.module
            for node in ast.walk(trees[name])
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not inner & {"usage_bot._service", "usage_bot._client", "usage_bot._app"}, name


def said(tree: ast.Module) -> list[str]:
    """Every string in the code but the docstrings: what the bot may say to someone."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_sentence_points_to_a_file_of_the_repository() -> None:
    """A wheel or an image has no deploy/, README or .env.example beside it: a sentence
    says what is needed, or gives the online docs (``_texts.DOCS_URL`` and its kin)."""
    pointing = [
        (name, text)
        for name, tree in modules().items()
        for text in said(tree)
        if any(path in text for path in ("deploy/", "README", ".env.example", "docs/"))
        and "https://" not in text
    ]
    assert pointing == []
