"""The webhook secret comes only from the environment and never shows in messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.config import load_config
from streamer.errors import ConfigError

pytestmark = pytest.mark.unit

SECRET = "hunter2-but-longer"


def test_secret_written_in_a_config_file_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[webhook]\nurl = "http://127.0.0.1:9/hook"\nsecret = "{SECRET}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"CLONEWATCH_WEBHOOK__SECRET": "from-env-too"})
    message = str(info.value)
    assert "webhook.secret" in message and "CLONEWATCH_WEBHOOK__SECRET" in message
    assert str(path) in message
    assert SECRET not in message


def test_empty_secret_in_a_file_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[webhook]\nsecret = ""\n')
    assert load_config(path, env={}).webhook.secret.get_secret_value() == ""


@pytest.mark.parametrize("raw", [SECRET, f'"{SECRET}"', "123456", "[1, 2]"])
def test_secret_from_the_environment_is_taken_as_text(raw: str) -> None:
    config = load_config(env={"CLONEWATCH_WEBHOOK__SECRET": raw})
    assert config.webhook.secret.get_secret_value() == raw.strip('"')
    assert raw.strip('"') not in repr(config) and raw.strip('"') not in str(config.webhook)


def test_bad_webhook_section_error_hides_the_secret() -> None:
    env = {"CLONEWATCH_WEBHOOK__SECRET": SECRET, "CLONEWATCH_WEBHOOK__TIMEOUT_S": "-1"}
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    assert "webhook.timeout_s" in str(info.value) and SECRET not in str(info.value)
