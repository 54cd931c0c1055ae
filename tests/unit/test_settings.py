"""Settings precedence: flags > environment > config.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from training_agent.config import load_settings
from training_agent.errors import ConfigError


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        'backend_url = "http://from-file:1"\ncancel_grace_seconds = 5\nlog_level = "debug"\n'
    )
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "API_KEY",
        "BACKEND_URL",
        "TRAINING_AGENT_CANCEL_GRACE_SECONDS",
        "TRAINING_AGENT_ALLOW_COMMAND_JOBS",
        "TRAINING_AGENT_API_KEY",
        "TRAINING_AGENT_BACKEND_URL",
        "TRAINING_AGENT_LOG_LEVEL",
        "TRAINING_AGENT_LABELS",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_without_any_source() -> None:
    settings = load_settings(config_file=None)
    assert settings.cancel_grace_seconds == 30.0
    assert settings.allow_command_jobs is False
    assert settings.backend_url is None and settings.api_key is None


def test_file_overrides_defaults(config_file: Path) -> None:
    settings = load_settings(config_file=config_file)
    assert settings.backend_url == "http://from-file:1"
    assert settings.cancel_grace_seconds == 5.0
    assert settings.log_level == "DEBUG"


def test_env_overrides_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_AGENT_CANCEL_GRACE_SECONDS", "7")
    monkeypatch.setenv("BACKEND_URL", "https://from-env/")
    settings = load_settings(config_file=config_file)
    assert settings.cancel_grace_seconds == 7.0
    assert settings.backend_url == "https://from-env"


def test_flags_override_env(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_AGENT_CANCEL_GRACE_SECONDS", "7")
    settings = load_settings(config_file=config_file, cancel_grace_seconds=9, max_jobs=None)
    assert settings.cancel_grace_seconds == 9.0
    assert settings.max_jobs is None  # a flag left unset does not hide lower sources


def test_boolean_env_and_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_AGENT_ALLOW_COMMAND_JOBS", "1")
    monkeypatch.setenv("API_KEY", "wak_" + "a" * 32)
    settings = load_settings(config_file=None)
    assert settings.allow_command_jobs is True
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "wak_" + "a" * 32
    assert "wak_" not in repr(settings)


def test_api_key_in_config_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('api_key = "wak_secret"\n')
    with pytest.raises(ConfigError, match=r"must not live in config\.toml"):
        load_settings(config_file=path)


def test_unknown_setting_names_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("cancel_grace = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'cancel_grace'"):
        load_settings(config_file=path)


def test_bad_value_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_AGENT_CANCEL_GRACE_SECONDS", "soon")
    with pytest.raises(ConfigError, match="invalid setting 'cancel_grace_seconds'"):
        load_settings(config_file=None)


def test_broken_toml_says_which_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("this is = = not toml\n")
    with pytest.raises(ConfigError, match=str(path)):
        load_settings(config_file=path)


def test_labels_come_comma_separated_from_the_env_or_as_a_list_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text('labels = ["a100", "eu-west"]\n')
    assert load_settings(config_file=path).labels == ("a100", "eu-west")
    monkeypatch.setenv("TRAINING_AGENT_LABELS", " a100, fast ,, cuda12.4 ")
    assert load_settings(config_file=path).labels == ("a100", "fast", "cuda12.4")


@pytest.mark.parametrize("labels", ["A100", "has space", "-lead", "x" * 41, ",".join(["l"] * 33)])
def test_a_label_that_is_not_a_short_slug_is_one_sentence(
    labels: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINING_AGENT_LABELS", labels)
    with pytest.raises(ConfigError, match="invalid setting 'labels'") as raised:
        load_settings(config_file=None)
    assert "\n" not in str(raised.value)


def test_the_update_trial_comes_from_the_environment_and_has_a_floor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRAINING_AGENT_UPDATE_TRIAL_SECONDS", raising=False)
    assert load_settings(config_file=None).update_trial_seconds == 120.0
    monkeypatch.setenv("TRAINING_AGENT_UPDATE_TRIAL_SECONDS", "300")
    assert load_settings(config_file=None).update_trial_seconds == 300.0
    monkeypatch.setenv("TRAINING_AGENT_UPDATE_TRIAL_SECONDS", "1")
    with pytest.raises(ConfigError, match="invalid setting 'update_trial_seconds'"):
        load_settings(config_file=None)
