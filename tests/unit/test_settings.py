"""Settings from the environment and .env: typed, strict, naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.errors import ConfigurationError
from gateway.settings import TIER_DEFAULTS, Settings, load_settings


def settings(**environ: str) -> Settings:
    return load_settings(environ=environ, dotenv=None)


def test_nothing_set_gives_the_defaults() -> None:
    loaded = settings()

    assert loaded == Settings()
    assert loaded.port == 9000
    assert loaded.env == "development"
    assert not loaded.production
    assert loaded.model_map == {}
    assert loaded.embedded_inference


def test_seed_names_are_read_as_they_are() -> None:
    loaded = settings(
        API_KEYS="sk-a:admin",
        MAX_SERVE_URL="http://a:8000, http://b:8000/v1",
        MAX_SERVE_API_KEY="upstream-secret",
        QDRANT_URL="http://qdrant:6333",
        REDIS_URL="redis://redis:6379",
    )

    assert loaded.api_keys == "sk-a:admin"
    assert loaded.upstream_urls == ["http://a:8000", "http://b:8000/v1"]
    assert loaded.max_serve_api_key == "upstream-secret"
    assert loaded.qdrant_url == "http://qdrant:6333"
    assert loaded.redis_url == "redis://redis:6379"


def test_gateway_variables_are_converted_to_their_types() -> None:
    loaded = settings(
        GATEWAY_PORT="8080", GATEWAY_UPSTREAM_TIMEOUT_S="2.5", GATEWAY_ENV="production"
    )

    assert loaded.port == 8080
    assert loaded.upstream_timeout_s == 2.5
    assert loaded.production


def test_variables_of_other_programs_are_ignored() -> None:
    assert settings(PATH="/bin", HOME="/root", PORT="1") == Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_PORT", "abc"),
        ("GATEWAY_PORT", "70000"),
        ("GATEWAY_WORKERS", "0"),
        ("GATEWAY_UPSTREAM_TIMEOUT_S", "0"),
        ("GATEWAY_ENV", "staging"),
        ("GATEWAY_LOG_FORMAT", "xml"),
    ],
)
def test_a_malformed_value_is_refused_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        settings(**{name: value})


@pytest.mark.parametrize("name", ["GATEWAY_NOPE", "GATEWAY_API_KEYS", "GATEWAY_MAX_SERVE_URL"])
def test_an_unknown_gateway_variable_is_refused_naming_it(name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        settings(**{name: "x"})


def test_the_clients_gateway_variables_are_ignored() -> None:
    loaded = settings(GATEWAY_URL="http://localhost:9000", GATEWAY_API_KEY="sk-client")

    assert loaded == Settings()


def test_model_map_is_parsed_as_json() -> None:
    loaded = settings(GATEWAY_MODEL_MAP='{"m1": ["http://a:8000"], "m2": ["http://b"]}')

    assert loaded.model_map == {"m1": ["http://a:8000"], "m2": ["http://b"]}
    assert not loaded.embedded_inference


def test_model_aliases_are_parsed_as_json() -> None:
    assert settings(GATEWAY_MODEL_ALIASES='{"gpt-4o": "m1"}').model_aliases == {"gpt-4o": "m1"}


@pytest.mark.parametrize("value", ["{not json", '["m1"]', '{"m1": "http://a"}'])
def test_a_malformed_model_map_is_refused_naming_it(value: str) -> None:
    with pytest.raises(ConfigurationError, match="GATEWAY_MODEL_MAP"):
        settings(GATEWAY_MODEL_MAP=value)


def test_a_model_map_entry_without_upstreams_is_refused_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="GATEWAY_MODEL_MAP"):
        settings(GATEWAY_MODEL_MAP='{"m1": []}')


def test_an_empty_model_map_means_discovery() -> None:
    assert settings(GATEWAY_MODEL_MAP="  ").model_map == {}


def test_dotenv_is_read(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# a comment\n"
        "\n"
        "GATEWAY_PORT=8123\n"
        "export GATEWAY_LOG_LEVEL=debug\n"
        'API_KEYS="sk-a:admin"\n'
        "GATEWAY_DEFAULT_MODEL='m1'\n"
    )

    loaded = load_settings(environ={}, dotenv=dotenv)

    assert loaded.port == 8123
    assert loaded.log_level == "debug"
    assert loaded.api_keys == "sk-a:admin"
    assert loaded.default_model == "m1"


def test_the_environment_overrides_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("GATEWAY_PORT=8123\nGATEWAY_HOST=10.0.0.1\n")

    loaded = load_settings(environ={"GATEWAY_PORT": "9999"}, dotenv=dotenv)

    assert loaded.port == 9999
    assert loaded.host == "10.0.0.1"


def test_a_missing_dotenv_is_not_an_error(tmp_path: Path) -> None:
    assert load_settings(environ={}, dotenv=tmp_path / "absent.env") == Settings()


def test_a_dotenv_line_without_equals_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("GATEWAY_PORT=8123\nGATEWAY_HOST\n")

    with pytest.raises(ConfigurationError, match=r"\.env:2"):
        load_settings(environ={}, dotenv=dotenv)


def test_an_unknown_variable_in_dotenv_is_refused_too(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("GATEWAY_NOPE=1\n")

    with pytest.raises(ConfigurationError, match="GATEWAY_NOPE"):
        load_settings(environ={}, dotenv=dotenv)


def test_embedded_parts_name_the_embedded_model_without_an_upstream() -> None:
    parts = settings().embedded_parts()

    assert parts
    assert any("MAX_SERVE_URL" in part for part in parts)


def test_embedded_parts_name_what_moves_each_out() -> None:
    parts = settings(MAX_SERVE_URL="http://max:8000").embedded_parts()
    assert not any("MAX_SERVE_URL" in part for part in parts)
    assert any("QDRANT_URL" in part for part in parts)
    assert any("REDIS_URL" in part for part in parts)


def test_embedded_parts_are_empty_with_every_server() -> None:
    configured = settings(
        MAX_SERVE_URL="http://max:8000", QDRANT_URL="http://qdrant:6333", REDIS_URL="redis://r"
    )
    assert configured.embedded_parts() == []


def test_tier_limits_overlay_the_defaults_field_by_field() -> None:
    settings = load_settings({"GATEWAY_TIER_LIMITS": '{"standard": {"max_n": 2}}'}, dotenv=None)
    tiers = settings.tiers()
    assert tiers["standard"].max_n == 2
    assert tiers["standard"].requests_per_minute == TIER_DEFAULTS["standard"].requests_per_minute
    assert tiers["admin"] == TIER_DEFAULTS["admin"]


@pytest.mark.parametrize(
    "value",
    ['{"standard": {"max_tokenz": 5}}', '{"standard": {"max_n": 0}}', '{"root": {"max_n": 1}}'],
)
def test_a_wrong_tier_limit_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError, match="GATEWAY_TIER_LIMITS"):
        load_settings({"GATEWAY_TIER_LIMITS": value}, dotenv=None)
