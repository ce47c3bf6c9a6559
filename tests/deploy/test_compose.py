"""docker-compose.yaml, checked without Docker: its services, ports, health checks and
start order, and that the gateway's environment names settings the gateway reads (with
values it accepts), so the file cannot silently rot."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from domain.errors import ConfigurationError
from gateway.settings import FIELDS, Settings, env_name, load_settings
from tests.deploy.npm_tools import npm_tool
from tests.deploy.test_dockerfile import stages

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
GATEWAYS = {"gateway": "gpu", "gateway-cpu": "cpu"}
SETTING_NAMES = {env_name(field) for field in FIELDS}
# ${NAME}, ${NAME:-default} or ${NAME-default}: Compose interpolation.
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def resolved(value: object) -> str:
    """A value as Compose sees it with nothing set: every ``${X:-d}`` becomes ``d``."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: resolved(value) for name, value in env.items()}


def test_the_services(services: dict[str, Any]) -> None:
    assert set(services) == {
        "gateway", "gateway-cpu", "max-serve", "max-embeddings", "qdrant", "redis",
    }  # fmt: skip


def test_every_service_has_a_health_check(services: dict[str, Any]) -> None:
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert isinstance(test, list), f"{name} has no health check"
        assert test[0] in ("CMD", "CMD-SHELL"), name
        # Compose interpolates `$x` in the command: a shell variable must be written `$$x`.
        command = " ".join(test[1:])
        assert not re.search(r"(?<!\$)\$(?![${])", command.replace("$$", "")), name


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_gateway_starts_after_healthy_dependencies(services: dict[str, Any], gateway: str) -> None:
    depends_on = services[gateway]["depends_on"]
    assert {"qdrant", "redis"} <= set(depends_on)
    profile = GATEWAYS[gateway]
    for dependency, condition in depends_on.items():
        assert condition == {"condition": "service_healthy"}, dependency
        assert "healthcheck" in services[dependency]
        # Compose refuses a dependency hidden behind a profile that is not active.
        assert services[dependency].get("profiles", [profile]) == [profile], dependency


def test_profiles_gpu_and_cpu(services: dict[str, Any]) -> None:
    assert services["gateway"]["profiles"] == ["gpu"]
    assert services["max-serve"]["profiles"] == ["gpu"]
    assert services["max-embeddings"]["profiles"] == ["gpu"]
    assert services["gateway-cpu"]["profiles"] == ["cpu"]
    assert "profiles" not in services["redis"]
    assert "profiles" not in services["qdrant"]


def test_ports(services: dict[str, Any]) -> None:
    assert services["gateway"]["ports"] == ["9000:9000"]
    assert services["gateway-cpu"]["ports"] == ["9000:9000"]
    assert services["max-serve"]["ports"] == ["127.0.0.1:8000:8000"]
    assert services["qdrant"]["ports"] == ["127.0.0.1:6333:6333"]
    assert services["redis"]["ports"] == ["127.0.0.1:6379:6379"]


def test_images(services: dict[str, Any]) -> None:
    assert resolved(services["max-serve"]["image"]).startswith("modular/max-nvidia-full:")
    assert services["redis"]["image"] == "redis:7-alpine"
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:")


def test_max_serve_has_a_gpu_and_keeps_its_models(services: dict[str, Any]) -> None:
    max_serve = services["max-serve"]
    devices = max_serve["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    assert any(v.endswith(":/root/.cache/huggingface") for v in max_serve["volumes"])
    assert "--model-path" in max_serve["command"]
    assert "8000" in max_serve["command"]
    assert "127.0.0.1:8000/health" in " ".join(max_serve["healthcheck"]["test"])


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_gateway_environment_names_settings_the_gateway_reads(
    services: dict[str, Any], gateway: str
) -> None:
    unknown = set(environment(services[gateway])) - SETTING_NAMES
    assert not unknown, f"{gateway} sets variables no setting reads: {sorted(unknown)}"


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_gateway_environment_is_accepted_by_the_settings(
    services: dict[str, Any], gateway: str
) -> None:
    try:
        settings = load_settings(environment(services[gateway]), dotenv=None)
    except ConfigurationError as exc:
        pytest.fail(f"{gateway}: the gateway would refuse to start: {exc.message}")
    assert settings.data_dir == "/data"
    assert any(v.endswith(":/data") for v in services[gateway]["volumes"])


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_gateway_urls_point_at_services_of_the_file(services: dict[str, Any], gateway: str) -> None:
    for name, value in environment(services[gateway]).items():
        if name.endswith("_URL") and value:
            host = urlparse(value).hostname
            assert host in services, f"{gateway}: {name}={value} names no service"


def settings_of(services: dict[str, Any], gateway: str) -> Settings:
    return load_settings(environment(services[gateway]), dotenv=None)


def test_gpu_gateway_uses_max_serve_qdrant_and_redis(services: dict[str, Any]) -> None:
    settings = settings_of(services, "gateway")
    assert urlparse(settings.max_serve_url).hostname == "max-serve"
    assert urlparse(settings.qdrant_url).hostname == "qdrant"
    assert urlparse(settings.redis_url).hostname == "redis"
    assert not settings.embedded_parts()
    # The production image has no embedded embedder: it needs an embeddings server.
    assert urlparse(settings.embeddings_url).hostname == "max-embeddings"
    assert settings.embeddings_model


def test_cpu_gateway_runs_the_embedded_model(services: dict[str, Any]) -> None:
    settings = settings_of(services, "gateway-cpu")
    assert settings.embedded_inference
    assert not settings.embeddings_url
    assert urlparse(settings.qdrant_url).hostname == "qdrant"
    assert urlparse(settings.redis_url).hostname == "redis"


def test_gateways_build_the_right_dockerfile_targets(services: dict[str, Any]) -> None:
    targets = {s.name for s in stages()}
    for gateway, target in (("gateway", "production"), ("gateway-cpu", "demo")):
        build = services[gateway]["build"]
        assert build["dockerfile"] == "Dockerfile.gateway"
        assert build["target"] == target
        assert target in targets


def test_env_file_is_optional(services: dict[str, Any]) -> None:
    for gateway in GATEWAYS:
        for entry in services[gateway].get("env_file", []):
            assert isinstance(entry, dict), "a plain env_file entry must exist to start"
            assert entry["required"] is False


def test_matches_the_compose_schema() -> None:
    """The Compose specification's JSON schema, by dclint (style rules left out)."""
    dclint = npm_tool("dclint", "3.1.0", "dclint")
    done = subprocess.run(
        [str(dclint), str(COMPOSE), "--quiet", "--formatter", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.stdout.lstrip().startswith("["), f"dclint failed: {done.stderr}"
    reports = json.loads(done.stdout)
    errors = [m["message"] for r in reports for m in r["messages"] if m["rule"] == "invalid-schema"]
    assert not errors, errors
