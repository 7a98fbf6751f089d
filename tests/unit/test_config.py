from pathlib import Path

import pytest

from streamer.config import AppConfig, load_config
from streamer.errors import ConfigError

pytestmark = pytest.mark.unit


def test_embedded_default_loads_with_design_values() -> None:
    config = load_config(env={})
    assert config.sip.port == 5060
    assert (config.rtp.port_min, config.rtp.port_max) == (20000, 20999)
    assert config.http.port == 8080
    assert config.model.providers[0] == "CUDAExecutionProvider"
    assert config.whip.tokens == ()
    assert config.audio.keep is False


def test_file_overrides_defaults_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[sip]\nport = 5070\n")
    config = load_config(path, env={})
    assert config.sip.port == 5070
    assert config.sip.max_calls == 250


def test_environment_overrides_single_keys() -> None:
    env = {
        "CLONEWATCH_SIP__PORT": "5071",
        "CLONEWATCH_WHIP__TOKENS": '["t1", "t2"]',
        "CLONEWATCH_STORE__PATH": "/tmp/x.db",
        "CLONEWATCH_SIP__SIPREC_IGNORE_AORS": '["sip:ivr@bank.example"]',
        "OTHER": "1",
    }
    config = load_config(env=env)
    assert config.sip.port == 5071
    assert config.whip.tokens == ("t1", "t2")
    assert config.store.path == "/tmp/x.db"
    assert config.sip.siprec_ignore_aors == ("sip:ivr@bank.example",)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"CLONEWATCH_SIP__PORT": "70000"}, "sip.port"),
        ({"CLONEWATCH_SIP__PORTT": "5"}, "sip.portt"),
        ({"CLONEWATCH_RTP__PORT_MIN": "30000"}, "rtp"),
        ({"CLONEWATCH_VAD__AGGRESSIVENESS": "9"}, "vad.aggressiveness"),
        ({"CLONEWATCH_HTTP__TLS_CERT": '"/x.pem"'}, "http"),
        ({"CLONEWATCH_SIP__SIPREC_IGNORE_AORS": '["sip:ivr@bank.example", "<>"]'}, "sip"),
    ],
)
def test_bad_value_names_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    assert key in str(info.value)


def test_missing_and_malformed_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[sip\nport=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


def test_settings_are_frozen() -> None:
    config = AppConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.sip.port = 1  # type: ignore[misc]
