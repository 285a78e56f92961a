"""The deployment files: docker-compose.yml's structure, .env.example, docker/Dockerfile.

No Docker engine is needed. When a `docker-compose` (1.x) or `docker compose` (v2) binary is
on PATH, `config` is run too, since it validates the file offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from storage.settings import Settings

pytestmark = pytest.mark.unit

yaml = pytest.importorskip("yaml")  # PyYAML: a transformers/huggingface_hub dependency

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "docker" / "Dockerfile"

# Read by docker-compose.yml only (for the containers' URLs), not Settings fields.
COMPOSE_ONLY_VARS = {
    "STYLEBOT_POSTGRES_PASSWORD",
    "STYLEBOT_REDIS_PASSWORD",
    "STYLEBOT_IMAGE",
    "STYLEBOT_SLIM_IMAGE",
}
PROFILES = ("gpu", "cpu", "telegram", "discord", "monitoring")
REQUIRED_VAR = re.compile(r"^\$\{(STYLEBOT_[A-Z_]+):\?[^}]+\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # safe_load resolves the `<<: *anchor` merge keys the file relies on.
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "use the mapping form of `environment` (merged from anchors)"
    return env


def _strings(node: Any) -> list[str]:
    """Every string in a YAML tree, keys included."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


# --- structure -------------------------------------------------------------------------------


def test_expected_services(services: dict[str, Any]) -> None:
    assert {"redis", "postgres", "migrate", "worker", "flower"} <= set(services)
    # One service per chat platform, each in its own profile (tested below).
    assert [name for name in services if "discord" in name] == ["bot-discord"]
    for name, svc in services.items():
        command = svc.get("command") or []
        if name not in ("bot-telegram", "bot-discord"):
            assert not any(word in ("telegram", "discord", "bot") for word in command)


def test_bot_telegram_is_opt_in_and_shares_the_stack(services: dict[str, Any]) -> None:
    bot = services["bot-telegram"]
    assert bot["command"] == ["telegram"] and bot["profiles"] == ["telegram"]
    assert bot["build"]["dockerfile"] == "docker/Dockerfile"
    assert bot["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert bot["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "data:/data" in bot["volumes"]
    env, shared = _env(bot), _env(services["migrate"])
    assert all(env[key] == value for key, value in shared.items())
    assert env["STYLEBOT_TELEGRAM_TOKEN"] is None  # passed through from .env, never written here
    assert env["STYLEBOT_TELEGRAM_WEBHOOK_LISTEN"] == "0.0.0.0"
    fields = {f"STYLEBOT_{name.upper()}" for name in Settings.model_fields}
    assert {key for key in env if key.startswith("STYLEBOT_")} <= fields


def test_bot_discord_is_opt_in_and_shares_the_stack(services: dict[str, Any]) -> None:
    bot = services["bot-discord"]
    assert bot["command"] == ["discord"] and bot["profiles"] == ["discord"]
    assert bot["build"]["dockerfile"] == "docker/Dockerfile"
    assert bot["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "data:/data" in bot["volumes"]
    assert bot["ports"] == ["127.0.0.1:8081:8080"]  # only the status page, on loopback
    env, shared = _env(bot), _env(services["migrate"])
    assert all(env[key] == value for key, value in shared.items())
    assert env["STYLEBOT_DISCORD_TOKEN"] is None  # passed through from .env, never written here
    fields = {f"STYLEBOT_{name.upper()}" for name in Settings.model_fields}
    assert {key for key in env if key.startswith("STYLEBOT_")} <= fields


def test_app_services_run_the_stylebot_image(services: dict[str, Any]) -> None:
    for name in ("migrate", "worker"):
        svc = services[name]
        assert svc["build"]["dockerfile"] == "docker/Dockerfile"
        assert svc["build"]["context"] == "."
        assert "stylebot" in svc["image"]


def test_only_gpu_workers_run_the_gpu_image(services: dict[str, Any]) -> None:
    """The bots, migrations and the CPU worker run the slim image: no torch, no CUDA."""
    flavors = {
        name: svc["build"]["args"]["FLAVOR"] for name, svc in services.items() if "build" in svc
    }
    assert flavors == {
        "migrate": "cpu",
        "worker": "gpu",
        "worker-cpu": "cpu",
        "bot-telegram": "cpu",
        "bot-discord": "cpu",
    }
    assert services["worker"]["image"] == "${STYLEBOT_IMAGE:-stylebot:latest}"
    slim = {services[name]["image"] for name, flavor in flavors.items() if flavor == "cpu"}
    assert slim == {"${STYLEBOT_SLIM_IMAGE:-stylebot-slim:latest}"}


def test_workers_come_in_a_gpu_and_a_cpu_profile(services: dict[str, Any]) -> None:
    gpu, cpu = services["worker"], services["worker-cpu"]
    assert (gpu["profiles"], cpu["profiles"]) == (["gpu"], ["cpu"])
    assert _env(cpu)["STYLEBOT_BACKEND"] == "classic" and "deploy" not in cpu
    assert cpu["command"] == gpu["command"] == ["worker", "--concurrency", "1"]
    assert cpu["depends_on"] == gpu["depends_on"]
    env_example = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert re.search(r"^COMPOSE_PROFILES=gpu$", env_example, re.M)  # `compose up` as before


def test_migrate_is_one_shot_after_postgres(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no"


def test_worker_waits_for_migrations_and_redis(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker["command"][0] == "worker"
    deps = worker["depends_on"]
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert deps["redis"]["condition"] == "service_healthy"


def test_worker_replicas_see_every_gpu_and_claim_one(services: dict[str, Any]) -> None:
    """`--scale worker=N`: Docker gives every replica all GPUs; each claims a free index through
    a lock in a volume the replicas share (tasks/gpus.py, tests/unit/test_gpu_claim.py)."""
    worker = services["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    claim_dir = _env(worker)["STYLEBOT_GPU_CLAIM_DIR"]
    assert f"gpu-claims:{claim_dir}" in worker["volumes"]
    assert worker["command"] == ["worker", "--concurrency", "1"]  # one process per GPU


def test_worker_env_and_volumes(services: dict[str, Any]) -> None:
    worker = services["worker"]
    env = _env(worker)
    assert "diffusers" in env["STYLEBOT_BACKEND"]
    assert env["STYLEBOT_DATA_DIR"] == "/data"
    assert env["STYLEBOT_DATABASE_URL"].startswith("postgresql+psycopg://stylebot:")
    assert env["STYLEBOT_DATABASE_URL"].endswith("@postgres:5432/stylebot")
    assert env["STYLEBOT_BROKER_URL"].startswith("redis://:")
    assert env["STYLEBOT_BROKER_URL"].endswith("@redis:6379/0")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in worker["volumes"]}
    assert mounts["/data"] == "data"
    assert "/cache/huggingface" in mounts  # HF_HOME in docker/Dockerfile


def test_app_services_share_one_env(services: dict[str, Any]) -> None:
    migrate, worker = _env(services["migrate"]), _env(services["worker"])
    for key, value in migrate.items():
        assert worker[key] == value, key


def test_compose_env_names_real_settings(services: dict[str, Any]) -> None:
    fields = {f"STYLEBOT_{name.upper()}" for name in Settings.model_fields}
    for name in ("migrate", "worker"):
        for key in _env(services[name]):
            if key.startswith("STYLEBOT_"):
                assert key in fields, f"{name}: {key} is not a Settings field (typo?)"


def test_redis_is_a_durable_broker(services: dict[str, Any]) -> None:
    redis = services["redis"]
    assert str(redis["image"]).startswith("redis:7")
    cmd = redis["command"]
    assert cmd[0] == "redis-server"
    args = {cmd[i]: cmd[i + 1] for i in range(1, len(cmd) - 1, 2)}
    assert args["--appendonly"] == "yes"
    assert args["--maxmemory-policy"] == "noeviction"
    assert REQUIRED_VAR.match(args["--requirepass"])
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])


def test_postgres_health_and_volume(services: dict[str, Any]) -> None:
    pg = services["postgres"]
    assert str(pg["image"]).startswith("postgres:16")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    assert _env(pg)["POSTGRES_USER"] == "stylebot"
    assert _env(pg)["POSTGRES_DB"] == "stylebot"


def test_flower_is_optional_and_local(services: dict[str, Any]) -> None:
    flower = services["flower"]
    assert flower["profiles"] == ["monitoring"]
    assert any(str(p).endswith(":5555") for p in flower["ports"])
    # Unauthenticated dashboard: published on loopback only.
    assert all(str(p).startswith("127.0.0.1:") for p in flower["ports"])


def test_named_volumes_declared(compose: dict[str, Any]) -> None:
    assert {
        "postgres-data",
        "redis-data",
        "data",
        "hf-cache",
        "compile-cache",
        "gpu-claims",
    } <= set(compose["volumes"])


def test_bots_serve_the_status_page_on_loopback(services: dict[str, Any]) -> None:
    for name in ("bot-telegram", "bot-discord"):
        bot = services[name]
        assert _env(bot)["STYLEBOT_STATUS_PORT"] == "8080"
        assert _env(bot)["STYLEBOT_STATUS_URL"] is None  # from .env: the proxy's address
        assert all(str(port).startswith("127.0.0.1:") for port in bot["ports"])


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    checks = {name: svc.get("healthcheck", {}).get("test") for name, svc in services.items()}
    one_shot = {"migrate"}
    missing = [name for name, test in checks.items() if not test and name not in one_shot]
    assert missing == []
    for name in ("bot-telegram", "bot-discord"):
        assert checks[name] == ["CMD", "stylebot", "health", "bot"]
    for name in ("worker", "worker-cpu"):
        assert checks[name] == ["CMD", "stylebot", "health", "worker"]
        # Warm-up (model load, compile) is "starting", not unhealthy: a long start period.
        start = services[name]["healthcheck"]["start_period"]
        assert start.endswith("s") and int(start[:-1]) >= 1200


def test_stylebot_services_wait_for_healthy_databases(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        if "stylebot" not in str(svc.get("image")):
            continue
        deps = svc["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        if name != "migrate":
            assert deps["redis"]["condition"] == "service_healthy", name
            assert deps["migrate"]["condition"] == "service_completed_successfully", name


def active_services(services: dict[str, Any], profiles: set[str]) -> set[str]:
    """What `docker compose up` starts with these profiles on (the compose spec's rule)."""
    return {
        name
        for name, svc in services.items()
        if not svc.get("profiles") or profiles & set(svc["profiles"])
    }


def test_profiles_start_what_they_say(services: dict[str, Any]) -> None:
    base = {"redis", "postgres", "migrate"}
    assert active_services(services, set()) == base
    assert active_services(services, {"gpu"}) == base | {"worker"}
    assert active_services(services, {"cpu"}) == base | {"worker-cpu"}
    assert active_services(services, {"cpu", "telegram"}) == base | {"worker-cpu", "bot-telegram"}
    assert {"prometheus", "grafana", "flower"} <= active_services(services, {"monitoring"})


def test_no_literal_secrets(compose: dict[str, Any]) -> None:
    # Credentials in URLs come from required variables.
    url_passwords = [
        (text, password)
        for text in _strings(compose)
        for password in re.findall(r"://[^/\s:@]*:(\$\{[^}]*\}|[^@\s/]*)@", text)
    ]
    assert len(url_passwords) >= 3  # database, broker, flower's broker
    for text, password in url_passwords:
        assert REQUIRED_VAR.match(password), f"literal password in {text!r}"
    for name, svc in compose["services"].items():
        for key, value in _env(svc).items():
            if re.search(r"PASSWORD|TOKEN|SECRET|AUTH", key) and value is not None:
                assert REQUIRED_VAR.match(str(value)), f"{name}: {key} must be ${{VAR:?...}}"
    # Every password reference fails clearly when unset (`:?`), never defaults to something.
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    refs = re.findall(r"\$\{(STYLEBOT_[A-Z_]*PASSWORD)([^}]*)\}", text)
    assert refs
    for var, rest in refs:
        assert rest.startswith(":?"), f"${{{var}{rest}}} should be ${{{var}:?message}}"


# --- docker-compose config (offline validation) ----------------------------------------------


def _compose_commands() -> list[list[str]]:
    found: list[list[str]] = []
    if exe := shutil.which("docker-compose"):
        found.append([exe])
    if exe := shutil.which("docker"):  # the CLI alone has no compose; the v2 plugin adds it
        try:
            probe = subprocess.run(
                [exe, "compose", "version"], capture_output=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return found
        if probe.returncode == 0:
            found.append([exe, "compose"])
    return found


COMPOSE_COMMANDS = _compose_commands()


@pytest.fixture(scope="module", autouse=True)
def _compose_cli_in_ci() -> None:
    """CI installs Debian's docker-compose (scripts/ci_deps.sh): there, its absence fails."""
    if os.environ.get("CI") == "true" and not COMPOSE_COMMANDS:
        pytest.fail("no docker-compose on PATH: run scripts/ci_deps.sh (apt-get docker-compose)")


def _run_config(cmd: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # An empty --env-file keeps a developer's own .env out of it; no STYLEBOT_* from the shell.
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("", encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    return subprocess.run(
        [*cmd, "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(not COMPOSE_COMMANDS, reason="no docker-compose / docker compose on PATH")
@pytest.mark.parametrize("cmd", COMPOSE_COMMANDS, ids=lambda c: " ".join([Path(c[0]).name, *c[1:]]))
@pytest.mark.parametrize("profile", ["", *PROFILES, ",".join(PROFILES)])
def test_compose_config_is_valid(cmd: list[str], tmp_path: Path, profile: str) -> None:
    result = _run_config(
        cmd,
        tmp_path,
        STYLEBOT_POSTGRES_PASSWORD="dummy-pg",
        STYLEBOT_REDIS_PASSWORD="dummy-redis",
        COMPOSE_PROFILES=profile,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not COMPOSE_COMMANDS, reason="no docker-compose / docker compose on PATH")
@pytest.mark.parametrize("cmd", COMPOSE_COMMANDS, ids=lambda c: " ".join([Path(c[0]).name, *c[1:]]))
def test_compose_config_refuses_missing_password(cmd: list[str], tmp_path: Path) -> None:
    result = _run_config(cmd, tmp_path, STYLEBOT_REDIS_PASSWORD="dummy-redis")
    assert result.returncode != 0
    assert "STYLEBOT_POSTGRES_PASSWORD" in result.stderr


# --- .env.example ----------------------------------------------------------------------------


def _example_lines() -> dict[str, str]:
    """`STYLEBOT_X` -> value, for each `STYLEBOT_X=value` line, commented out or not."""
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^#?\s*(STYLEBOT_[A-Z0-9_]+)=(.*)$", line):
            assert m.group(1) not in found, f"{m.group(1)} is listed twice"
            found[m.group(1)] = m.group(2)
    return found


def test_env_example_documents_every_setting() -> None:
    lines = _example_lines()
    fields = {f"STYLEBOT_{name.upper()}" for name in Settings.model_fields}
    assert fields - set(lines) == set(), "settings missing from .env.example"
    assert set(lines) - fields - COMPOSE_ONLY_VARS == set(), "unknown variables in .env.example"
    assert {"STYLEBOT_POSTGRES_PASSWORD", "STYLEBOT_REDIS_PASSWORD"} <= set(lines)


def test_env_example_sets_no_secret() -> None:
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^(STYLEBOT_[A-Z0-9_]+)=(.*)$", line):  # active (uncommented) lines
            assert m.group(2) == "", f"{m.group(1)} must be left empty in the example"


def test_env_example_defaults_are_the_real_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("STYLEBOT_"):
            monkeypatch.delenv(key)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    documented = {
        key: value
        for key, value in _example_lines().items()
        if key not in COMPOSE_ONLY_VARS
        # A field whose default is None (unset) shows an example value instead.
        and getattr(defaults, key.removeprefix("STYLEBOT_").lower()) is not None
    }
    env_file = tmp_path / "documented.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in documented.items()), encoding="utf-8")
    from_example = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert from_example.model_dump() == defaults.model_dump()


# --- docker/Dockerfile -----------------------------------------------------------------------


def test_dockerfile_basics() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    assert re.search(r"^ARG FLAVOR=gpu$", text, re.M)
    assert '".[diffusers,quantize,provenance]"' in text
    assert '".[provenance]"' in text  # C2PA signing in the CPU flavour's workers too
    assert "download.pytorch.org/whl/cu" in text
    assert re.search(r'^ENTRYPOINT \["stylebot"\]$', text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0", "0:0")
    # No `COPY . .`: the local .venv, data/ and .env must not end up in the image.
    assert not re.search(r"^COPY \.\s", text, re.M)
