"""The files that run the bot elsewhere: docker-compose.yml, the systemd unit, the
Kubernetes manifest, the Dockerfile, .env.example and the packaging, each checked for
what it promises.

The container itself is proven with ``container-check`` (see docs/container.md); this
checks what can be checked without a container engine.
"""

from __future__ import annotations

import ast
import ctypes
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dotenv import dotenv_values

import usage_bot
from usage_bot._config import load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]

Json = dict[str, Any]

# The variables of PRODUCT.md ("Configuration", and the seat token of "Team seats"); the
# contract itself lives outside the repository, so it is checked against this list only
# where it can be found (test_the_product_variables_are_those_of_the_contract).
PRODUCT_VARIABLES = frozenset(
    {
        "CLAUDE_CODE_OAUTH_TOKEN",
        "CLAUDE_CONFIG_DIR",
        "USAGE_BOT_ACCOUNTS",
        "USAGE_BOT_API_BASE_URL",
        "USAGE_BOT_USER_AGENT",
        "USAGE_BOT_POLL_SECONDS",
        "USAGE_BOT_THRESHOLDS",
        "USAGE_BOT_RESET_ANNOUNCE",
        "USAGE_BOT_EXPIRED_LOGIN_ALERT_AFTER",
        "USAGE_BOT_FORECAST",
        "USAGE_BOT_FORECAST_MIN_SPAN",
        "USAGE_BOT_SEATS",
        "USAGE_BOT_STATE",
        "USAGE_BOT_HTTP_HOST",
        "USAGE_BOT_HTTP_PORT",
        "USAGE_BOT_LOG_LEVEL",
        "USAGE_BOT_LOG_FORMAT",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_ALERT_CHANNEL",
        "SLACK_WEBHOOK_URL",
        "SLACK_API_BASE_URL",
        "SLACK_ALLOWED_CHANNELS",
        "SLACK_ALLOWED_USERS",
        "SLACK_ADMIN_USERS",
        "DISCORD_BOT_TOKEN",
        "DISCORD_GUILD_ID",
        "DISCORD_ALERT_CHANNEL_ID",
        "DISCORD_WEBHOOK_URL",
        "DISCORD_ALLOWED_GUILDS",
        "DISCORD_ALLOWED_CHANNELS",
        "DISCORD_API_BASE_URL",
        "DISCORD_GATEWAY_URL",
    }
)
PRODUCT_PROSE_VARIABLES = frozenset({"USAGE_BOT_SEAT_TOKEN"})
# Read by deploy/docker-compose.yml, not by the bot.
COMPOSE_VARIABLES = frozenset({"USAGE_BOT_UID", "USAGE_BOT_GID"})


# -- docker-compose.yml ------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Json:
    document = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_compose_runs_the_image_with_the_settings_the_login_and_the_data(compose: Json) -> None:
    service = compose["services"]["usage-bot"]
    assert service["image"]
    assert (DEPLOY / service["build"] / "Dockerfile").is_file()
    volumes = service["volumes"]
    claude = [v for v in volumes if v.split(":")[1:] == ["/claude", "ro"]]
    assert claude, "the Claude login is mounted read-only at /claude"
    assert service["environment"]["CLAUDE_CONFIG_DIR"] == "/claude"
    data = [v for v in volumes if v.split(":")[1] == "/data"]
    assert data
    assert data[0].split(":")[0] in compose["volumes"], "the state is kept in a named volume"
    assert service["environment"]["USAGE_BOT_STATE"].startswith("/data/")
    assert service["restart"] in ("unless-stopped", "always", "on-failure")


def test_compose_reads_one_env_file_next_to_itself_for_substitution_and_the_container(
    compose: Json,
) -> None:
    # Run as `docker compose -f deploy/docker-compose.yml`, Compose takes this file's
    # directory as the project directory and reads its .env from there for ${...};
    # env_file paths are relative to this file as well. So both must name deploy/.env.
    env_files = compose["services"]["usage-bot"]["env_file"]
    env_files = [env_files] if isinstance(env_files, str) else env_files
    paths = [f if isinstance(f, str) else f["path"] for f in env_files]
    assert [(DEPLOY / path).resolve() for path in paths] == [DEPLOY / ".env"]
    text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    assert "cp .env.example deploy/.env" in text, "the header says where .env goes"
    # Every variable substituted here, but the shell's own HOME, is in .env.example.
    substituted = set(re.findall(r"\$\{([A-Z0-9_]+)", text)) - {"HOME"}
    assert substituted == COMPOSE_VARIABLES
    assert substituted <= env_example_assignments().keys()
    # Named for the project, not for the directory the file is in ("deploy").
    assert compose["name"] == "usage-bot"


def test_compose_checks_health_with_usage_bot_health_and_stops_with_sigterm(
    compose: Json,
) -> None:
    service = compose["services"]["usage-bot"]
    test = service["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    assert "usage-bot health" in " ".join(test[1:])
    assert service["stop_signal"] == "SIGTERM"
    # The bot stops within 10 s; the grace period must not cut it short.
    assert _seconds(service["stop_grace_period"]) >= 10
    # Listening on all interfaces inside the container; published on loopback only.
    assert service["environment"]["USAGE_BOT_HTTP_HOST"] == "0.0.0.0"
    port = str(service["environment"]["USAGE_BOT_HTTP_PORT"])
    assert f"127.0.0.1:{port}:{port}" in service["ports"]


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


# -- the systemd unit --------------------------------------------------------------------

UNIT = DEPLOY / "usage-bot@.service"
# What `systemd-analyze security` listed as still open and the bot does not need.
HARDENING = {
    "RemoveIPC": "yes",
    "PrivateMounts": "yes",
    "MemoryDenyWriteExecute": "yes",
    "ProcSubset": "pid",
    "DevicePolicy": "closed",
}


def _unit_for_analysis(tmp_path: Path) -> Path:
    """The unit as an instance, with an ExecStart that exists here (verify checks it)."""
    unit = UNIT.read_text(encoding="utf-8")
    assert re.search(r"^ExecStart=/opt/usage-bot/bin/usage-bot run$", unit, re.MULTILINE)
    existing = shutil.which("true") or "/bin/true"
    instance = tmp_path / "usage-bot@alice.service"
    instance.write_text(
        re.sub(r"^ExecStart=\S+", f"ExecStart={existing}", unit, flags=re.MULTILINE),
        encoding="utf-8",
    )
    return instance


def _systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args],  # noqa: S607 - found on PATH by the tests' skipif
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    instance = _unit_for_analysis(tmp_path)

    result = _systemd_analyze("verify", str(instance))

    # It warns about unknown keys and bad values but exits 0: its output must be silent
    # about our unit too.
    about_ours = [line for line in result.stderr.splitlines() if instance.name in line]
    assert result.returncode == 0, result.stderr
    assert about_ours == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_security_finds_the_cheap_hardening_in_place(tmp_path: Path) -> None:
    instance = _unit_for_analysis(tmp_path)

    result = _systemd_analyze("security", "--offline=true", "--no-pager", str(instance))

    if result.returncode != 0 and "offline" in result.stderr:
        pytest.skip(f"this systemd-analyze cannot analyse a unit file: {result.stderr}")
    assert result.returncode == 0, result.stderr
    verdicts = {
        match[2]: match[1] for match in re.finditer(r"^([✓✗]) (\w+)=", result.stdout, re.MULTILINE)
    }
    # DevicePolicy has no line of its own (DeviceAllow's stays open for ProtectClock's
    # read access to the RTC); PrivateDevices is the line that covers it.
    for name in ("RemoveIPC", "PrivateMounts", "MemoryDenyWriteExecute", "ProcSubset"):
        assert verdicts.get(name) == "✓", f"{name}: {verdicts.get(name)}\n{result.stdout}"
    assert verdicts.get("PrivateDevices") == "✓"


def test_the_systemd_unit_stops_with_sigterm_and_keeps_instances_apart() -> None:
    unit = _unit_settings(UNIT.read_text(encoding="utf-8"))
    assert unit["KillSignal"] == ["SIGTERM"]
    assert int(unit["TimeoutStopSec"][0]) >= 10
    assert unit["User"] == ["%i"]
    # Each instance its own state directory: systemd hands a StateDirectory to the user
    # of the unit that starts, so a shared one would change hands between instances.
    assert "%i" in unit["StateDirectory"][0]
    state = next(e for e in unit["Environment"] if e.startswith("USAGE_BOT_STATE="))
    assert state.startswith(f"USAGE_BOT_STATE=/var/lib/{unit['StateDirectory'][0]}/")
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ProtectHome"] == ["read-only"]
    for name, value in HARDENING.items():
        assert unit.get(name) == [value], name


def test_the_systemd_unit_reads_the_settings_file_its_header_installs() -> None:
    text = UNIT.read_text(encoding="utf-8")
    unit = _unit_settings(text)
    assert unit["EnvironmentFile"] == ["-/etc/usage-bot/env"]
    assert re.search(r"^#\s+sudo install .*\.env\.example /etc/usage-bot/env$", text, re.M)
    # Only what the unit must fix; the login's default, ~/.claude, is the user's own
    # home (systemd sets HOME for User=), wherever that is.
    names = {e.split("=", 1)[0] for e in unit["Environment"]}
    assert names == {"USAGE_BOT_STATE"}


def test_the_systemd_unit_documents_itself_with_the_project_url() -> None:
    # A file: URL into /opt/usage-bot would name nothing that `pip install` puts there
    # (the README is only in the metadata); the project's URL is what stays true.
    documentation = _unit_settings(UNIT.read_text(encoding="utf-8"))["Documentation"]
    urls = PYPROJECT["project"]["urls"].values()
    for uri in " ".join(documentation).split():
        assert uri.startswith("https://"), uri
        assert uri in urls, f"{uri} is not one of pyproject's [project.urls]"


# prctl(2): the kernel's own form of MemoryDenyWriteExecute= (systemd uses it where the
# kernel has it, Linux 6.3 and later; a seccomp filter otherwise).
_PR_SET_MDWE = 65
_PR_MDWE_REFUSE_EXEC_GAIN = 1
_NO_MDWE = 77


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_the_bot_runs_without_memory_that_is_writable_and_executable(tmp_path: Path) -> None:
    """MemoryDenyWriteExecute=yes breaks a JIT and ctypes or cffi callbacks that need W+X
    pages. Every module of the bot is imported, and the demo runs it whole, with the
    kernel refusing such memory."""
    libc = ctypes.CDLL(None, use_errno=True)

    def refuse_writable_executable_memory() -> None:
        if libc.prctl(_PR_SET_MDWE, _PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            os._exit(_NO_MDWE)

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=tmp_path,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            preexec_fn=refuse_writable_executable_memory,
        )

    probe = run(
        sys.executable,
        "-c",
        "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)",
    )
    if probe.returncode == _NO_MDWE:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 and later)")
    assert "PermissionError" in probe.stderr, "the guard refuses W+X memory"

    imports = run(
        sys.executable,
        "-c",
        "import importlib, pkgutil, usage_bot\n"
        "for m in pkgutil.walk_packages(usage_bot.__path__, 'usage_bot.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n",
    )
    assert imports.returncode == 0, imports.stderr

    demo = run(*_usage_bot(), "demo", "--speed", "3000", "--hours", "2")
    assert demo.returncode == 0, demo.stderr
    assert "That was the demo" in demo.stdout


def _usage_bot() -> list[str]:
    script = Path(sys.executable).with_name("usage-bot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "usage_bot"]


def _unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


# -- kubernetes.yaml ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[Json]]:
    text = (DEPLOY / "kubernetes.yaml").read_text(encoding="utf-8")
    by_kind: dict[str, list[Json]] = {}
    for document in yaml.safe_load_all(text):
        if document is not None:
            assert document["apiVersion"]
            assert document["metadata"]["name"]
            by_kind.setdefault(document["kind"], []).append(document)
    return by_kind


def _pod(manifests: dict[str, list[Json]]) -> Json:
    pod: Json = manifests["Deployment"][0]["spec"]["template"]["spec"]
    return pod


def _secrets(manifests: dict[str, list[Json]]) -> dict[str, Json]:
    return {s["metadata"]["name"]: s for s in manifests["Secret"]}


@pytest.mark.parametrize(
    "version",
    [
        # The oldest Kubernetes release a cluster in use may still run, and the newest
        # that kubernetes-validate knows.
        "1.30.0",
        kubernetes_validate.latest_version(),
    ],
)
def test_kubernetes_is_valid_against_the_api_schemas(
    manifests: dict[str, list[Json]], version: str
) -> None:
    """Strict: a misspelt or misplaced field is an error, as the API server would have it."""
    for documents in manifests.values():
        for document in documents:
            kubernetes_validate.validate(document, version, strict=True)


def test_kubernetes_has_a_deployment_its_settings_secrets_and_a_volume_claim(
    manifests: dict[str, list[Json]],
) -> None:
    assert len(manifests["Deployment"]) == 1
    assert manifests["Secret"]
    assert len(manifests["PersistentVolumeClaim"]) == 1
    deployment = manifests["Deployment"][0]
    assert deployment["apiVersion"] == "apps/v1"
    spec = deployment["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    # Everything the pod names exists in the file.
    pod = _pod(manifests)
    secrets = _secrets(manifests)
    config_maps = {c["metadata"]["name"] for c in manifests["ConfigMap"]}
    claim = manifests["PersistentVolumeClaim"][0]["metadata"]["name"]
    for volume in pod["volumes"]:
        if "secret" in volume:
            assert volume["secret"]["secretName"] in secrets
        if "persistentVolumeClaim" in volume:
            assert volume["persistentVolumeClaim"]["claimName"] == claim
    (container,) = pod["containers"]
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] in config_maps
    # The settings are the bot's own variables, none of them a secret.
    known = env_example_assignments().keys()
    for config_map in manifests["ConfigMap"]:
        for name in config_map["data"]:
            assert name in known, f"the ConfigMap sets {name}, which is no setting"
            assert not re.search(r"TOKEN|SECRET|WEBHOOK|SEATS", name), f"{name} is a secret"


def test_kubernetes_runs_one_replica_replaced_not_rolled(
    manifests: dict[str, list[Json]],
) -> None:
    # Two pods would share one SQLite file (and a rolling update briefly runs two).
    spec = manifests["Deployment"][0]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    claim = manifests["PersistentVolumeClaim"][0]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_kubernetes_keeps_everything_in_its_own_namespace(
    manifests: dict[str, list[Json]],
) -> None:
    (namespace,) = manifests["Namespace"]
    name = namespace["metadata"]["name"]
    for kind, documents in manifests.items():
        if kind != "Namespace":
            for document in documents:
                assert document["metadata"].get("namespace") == name, kind


def test_kubernetes_runs_the_locally_built_image_by_its_version(
    manifests: dict[str, list[Json]],
) -> None:
    # ":latest" (or no tag) makes the default pull policy Always, which fails for an
    # image built on the node and loaded into it; the release's tag with IfNotPresent
    # uses the node's copy.
    (container,) = _pod(manifests)["containers"]
    assert container["image"] == f"usage-bot:{VERSION}"
    assert container["imagePullPolicy"] == "IfNotPresent"
    text = (DEPLOY / "kubernetes.yaml").read_text(encoding="utf-8")
    assert f"docker build -t usage-bot:{VERSION} ." in text, "the header says how to build it"
    assert "kind load docker-image" in text, "and how to load it into a local cluster"


def test_kubernetes_passes_secrets_as_files_not_as_environment_values(
    manifests: dict[str, list[Json]],
) -> None:
    pod = _pod(manifests)
    (container,) = pod["containers"]
    secrets = _secrets(manifests)
    assert all("secretRef" not in source for source in container.get("envFrom", []))
    assert all("valueFrom" not in entry for entry in container["env"])
    # Each NAME_FILE names a file of a mounted Secret: the mount's path and a key of it.
    mounted: dict[str, set[str]] = {}
    for volume in pod["volumes"]:
        if "secret" in volume:
            (mount,) = (m for m in container["volumeMounts"] if m["name"] == volume["name"])
            assert mount["readOnly"] is True
            secret = secrets[volume["secret"]["secretName"]]
            keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
            items = volume["secret"].get("items")
            files = {i["path"] for i in items} if items else keys
            mounted.update({f"{mount['mountPath']}/{file}": {file} for file in files})
    file_settings = {e["name"]: e["value"] for e in container["env"] if e["name"].endswith("_FILE")}
    assert file_settings, "the tokens come as NAME_FILE"
    known = env_example_assignments().keys()
    for name, path in file_settings.items():
        assert name.removesuffix("_FILE") in known, f"{name}: no such secret setting"
        assert path in mounted, f"{name}={path} is no file of a mounted Secret"
        assert path.startswith("/run/secrets/")
    # And nothing in the settings Secret goes unused.
    settings = secrets["usage-bot"]
    for key in settings["stringData"]:
        assert f"{key}_FILE" in file_settings, f"the Secret's {key} reaches no NAME_FILE"


def test_kubernetes_gives_the_pod_no_api_token_and_no_service_links(
    manifests: dict[str, list[Json]],
) -> None:
    pod = _pod(manifests)
    assert pod["automountServiceAccountToken"] is False
    # Service links would add USAGE_BOT_PORT=tcp://... for a Service named usage-bot.
    assert pod["enableServiceLinks"] is False


def test_kubernetes_probes_healthz_on_the_port_the_bot_listens_on(
    manifests: dict[str, list[Json]],
) -> None:
    (container,) = _pod(manifests)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["USAGE_BOT_HTTP_HOST"] == "0.0.0.0"
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz", probe
        port = get["port"]
        assert port in ports, f"{probe} names port {port!r}, which the container lacks"
        assert ports[port] == int(env["USAGE_BOT_HTTP_PORT"])


def test_kubernetes_runs_as_non_root_with_the_login_read_only(
    manifests: dict[str, list[Json]],
) -> None:
    pod = _pod(manifests)
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/claude"]["readOnly"] is True
    assert "/data" in mounts
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CLAUDE_CONFIG_DIR"] == "/claude"
    assert env["USAGE_BOT_STATE"].startswith("/data/")


# -- Dockerfile --------------------------------------------------------------------------


def _final_stage() -> list[tuple[str, str]]:
    """The last stage's instructions, as (INSTRUCTION, arguments), continuations joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    instructions = [
        (word.upper(), rest.strip())
        for word, _, rest in (
            line.strip().partition(" ")
            for line in joined.splitlines()
            if line.strip() and not line.strip().startswith("#")
        )
    ]
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    assert last_from > 0, "a multi-stage build: the final stage starts from a slim base"
    return instructions[last_from:]


def test_dockerfile_runs_as_non_root_and_stops_and_checks_itself_properly() -> None:
    stage = _final_stage()
    found = dict(stage)
    user = found["USER"].split(":")[0]
    assert user not in ("", "0", "root")
    entrypoint = found["ENTRYPOINT"]
    assert entrypoint.startswith("["), "exec form, so that the bot gets the signals itself"
    assert entrypoint.startswith('["usage-bot"')
    assert found["STOPSIGNAL"] in ("SIGTERM", "15")
    healthcheck = found["HEALTHCHECK"]
    assert re.search(r'CMD \["usage-bot",\s*"health"\]', healthcheck)
    assert found["VOLUME"] in ('["/data"]', "/data")
    env = " ".join(args for word, args in stage if word == "ENV")
    assert re.search(r"\bUSAGE_BOT_HTTP_HOST=0\.0\.0\.0\b", env)
    assert re.search(r"\bCLAUDE_CONFIG_DIR=/claude\b", env)
    assert re.search(r"\bUSAGE_BOT_STATE=/data/", env)
    port = re.search(r"\bUSAGE_BOT_HTTP_PORT=(\d+)", env)
    assert port
    assert found["EXPOSE"] == port[1]


def test_no_local_secret_or_state_goes_into_the_build_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for pattern in (".env", ".venv", "*.sqlite3*", ".git"):
        assert pattern in ignored


# -- .env.example ------------------------------------------------------------------------

_VARIABLE = re.compile(r"^(?:CLAUDE|USAGE_BOT|SLACK|DISCORD)_[A-Z0-9_]+$")
_ASSIGNMENT = re.compile(r"^# ((?:CLAUDE|USAGE_BOT|SLACK|DISCORD)_[A-Z0-9_]+)=(.*)$")
ENV_EXAMPLE = ROOT / ".env.example"


def env_example_assignments() -> dict[str, tuple[int, str]]:
    """Each ``# NAME=value`` line of .env.example: its line number and its value."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return {
        match[1]: (number, match[2])
        for number, line in enumerate(lines)
        if (match := _ASSIGNMENT.match(line))
    }


def variables_the_config_reads() -> set[str]:
    """Every variable name written out in usage_bot/_config.py (the only module that
    reads the environment), from its source."""
    tree = ast.parse((ROOT / "usage_bot" / "_config.py").read_text(encoding="utf-8"))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _VARIABLE.match(node.value)
    }


def test_the_config_scan_finds_what_it_should() -> None:
    found = variables_the_config_reads()
    assert {"SLACK_BOT_TOKEN", "USAGE_BOT_HTTP_PORT", "DISCORD_GATEWAY_URL"} <= found
    assert len(found) >= 30


def test_a_copy_of_env_example_sets_nothing() -> None:
    """`cp .env.example .env` changes nothing, read by python-dotenv, `docker run
    --env-file`, Compose's env_file or systemd's EnvironmentFile=: an empty NAME= there
    would override the image's and the unit's own defaults (CLAUDE_CONFIG_DIR=/claude,
    the HTTP host, the state path) with "unset"."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()

    set_here = [line for line in lines if line.strip() and not line.startswith("#")]

    assert set_here == []
    assert dotenv_values(ENV_EXAMPLE) == {}


def test_env_example_lists_every_variable_with_a_comment_and_its_default() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    listed = env_example_assignments()
    wanted = (
        variables_the_config_reads()
        | PRODUCT_VARIABLES
        | PRODUCT_PROSE_VARIABLES
        | COMPOSE_VARIABLES
    )

    missing = wanted - listed.keys()

    assert not missing, f".env.example lacks {sorted(missing)}"
    for name, (number, value) in listed.items():
        # The comment above it (a group of variables may share one).
        above = number - 1
        while above >= 0 and _ASSIGNMENT.match(lines[above]):
            above -= 1
        comment: list[str] = []
        while above >= 0 and lines[above].startswith("# ") and not lines[above].startswith("# ---"):
            comment.insert(0, lines[above])
            above -= 1
        text = " ".join(comment)
        assert comment, f"{name} has no comment"
        assert "default" in text.lower(), f"{name}'s comment gives no default"
        # The value shown is the default the comment states.
        assert value in text, f"{name}={value}, but its comment says otherwise"


def test_uncommenting_a_default_of_env_example_changes_nothing() -> None:
    defaults = load_settings({}, dotenv_path=None)
    for name, (_, value) in env_example_assignments().items():
        if value and name not in COMPOSE_VARIABLES:
            assert load_settings({name: value}, dotenv_path=None) == defaults, name


def _product_md() -> Path | None:
    for parent in ROOT.parents:
        if (candidate := parent / "shared" / "PRODUCT.md").is_file():
            return candidate
    return None


@pytest.mark.skipif(_product_md() is None, reason="PRODUCT.md is not beside this checkout")
def test_the_product_variables_are_those_of_the_contract() -> None:
    contract = _product_md()
    assert contract is not None
    text = contract.read_text(encoding="utf-8")
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    in_table = {name.strip().strip("`") for row in rows for name in row.split("|")[1].split("/")}
    assert in_table == PRODUCT_VARIABLES
    for name in PRODUCT_PROSE_VARIABLES:
        assert f"`{name}`" in text


# -- each recipe says where its settings go ----------------------------------------------


def test_every_recipe_says_where_its_env_file_goes() -> None:
    def text(path: str) -> str:
        return (ROOT / path).read_text(encoding="utf-8")

    example = text(".env.example")
    for place in ("deploy/.env", "/etc/usage-bot/env", "--env-file", "deploy/kubernetes.yaml"):
        assert place in example, f".env.example does not name {place}"
    assert "deploy/.env" in text("deploy/docker-compose.yml")
    assert "/etc/usage-bot/env" in text("deploy/usage-bot@.service")
    assert "no .env file here" in text("deploy/kubernetes.yaml").lower()
    doc = text("docs/container.md")
    for place in ("cp .env.example deploy/.env", "--env-file"):
        assert place in doc, f"docs/container.md does not name {place}"


def test_the_container_doc_says_which_health_check_each_runner_uses() -> None:
    doc = (ROOT / "docs" / "container.md").read_text(encoding="utf-8")
    assert "--format docker" in doc, "podman and buildah drop HEALTHCHECK without it"
    assert "usage-bot health" in doc
    assert "/healthz" in doc


# -- packaging ---------------------------------------------------------------------------


def test_the_license_is_mit_declared_as_setuptools_will_require_it() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the usage-bot authors" in text
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    (setuptools,) = (r for r in PYPROJECT["build-system"]["requires"] if "setuptools" in r)
    match = re.fullmatch(r"setuptools>=(\d+)\.(\d+)\.(\d+)", setuptools)
    assert match
    assert tuple(map(int, match.groups())) >= (77, 0, 0), "the SPDX form needs setuptools 77"


def test_the_version_is_the_same_everywhere() -> None:
    assert usage_bot.__version__ == VERSION
    assert importlib.metadata.version("usage-bot") == VERSION


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_package_the_bot_imports_is_a_declared_dependency() -> None:
    """Not one that happens to come with another (yarl with aiohttp): a dependency that
    drops it would break the bot."""
    imported: set[str] = set()
    for path in (ROOT / "usage_bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"usage_bot", "__future__"}
    declared = {
        _normal(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])
        for requirement in PYPROJECT["project"]["dependencies"]
    }
    providers = importlib.metadata.packages_distributions()

    for module in sorted(third_party):
        distributions = {_normal(d) for d in providers.get(module, [])}
        assert distributions & declared, f"{module} ({distributions}) is not a dependency"


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, and the wheel built from it, as a release builds them (isolated)."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(  # as the README's and a release's `python -m build`
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def _tracked(*folders: str) -> list[str]:
    """The files of these folders that the checkout tracks (all of them, outside git)."""
    git = shutil.which("git")
    if git and (ROOT / ".git").exists():
        listing = subprocess.run(
            [git, "ls-files", "-z", *folders], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return [name for name in listing.stdout.split("\0") if name]
    return [
        path.relative_to(ROOT).as_posix()
        for folder in folders
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]


def test_the_sdist_ships_the_whole_test_suite_and_no_local_secret(dists: Path) -> None:
    (sdist,) = dists.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        info = archive.extractfile(f"usage_bot-{VERSION}/PKG-INFO")
        assert info is not None
        metadata = info.read().decode()
    prefix = f"usage_bot-{VERSION}/"
    shipped = {name.removeprefix(prefix) for name in names}

    # All of it or none of it: tests/ with its conftest, fakes and soak, and what the
    # tests run or read (the benchmarks, the deploy files, docs/reliability.md).
    wanted = set(_tracked("tests", "bench", "deploy", "docs", "usage_bot"))
    wanted |= {"LICENSE", "README.md", "CHANGELOG.md", "Dockerfile", ".dockerignore"}
    wanted |= {".env.example", "pyproject.toml"}
    assert {"tests/conftest.py", "tests/fakes/slack.py", "tests/soak.py"} <= wanted
    assert not wanted - shipped, f"the sdist lacks {sorted(wanted - shipped)}"
    for name in shipped:
        path = Path(name)
        assert path.name != ".env", f"{name}: a local settings file"
        assert "__pycache__" not in path.parts, name
        assert not re.search(r"\.sqlite3", path.name), name
    assert "License-Expression: MIT" in metadata
    assert "License-File: LICENSE" in metadata


def test_the_sdist_test_suite_is_whole_enough_to_collect(dists: Path, tmp_path: Path) -> None:
    (sdist,) = dists.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    unpacked = tmp_path / f"usage_bot-{VERSION}"

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-p", "no:cacheprovider"],
        cwd=unpacked,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^\d+ tests collected", result.stdout, re.MULTILINE), result.stdout[-500:]


def test_the_wheel_installs_the_package_and_its_license_only(dists: Path) -> None:
    (wheel,) = dists.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    dist_info = f"usage_bot-{VERSION}.dist-info/"
    assert f"{dist_info}licenses/LICENSE" in names
    assert all(name.startswith(("usage_bot/", dist_info)) for name in names), names
