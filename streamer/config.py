"""Configuration: one TOML file, validated once at start into frozen typed settings.

`configs/default.toml` is the embedded default (a copy ships inside the package).
Single keys are overridden by environment variables `CLONEWATCH_SECTION__KEY`, e.g.
`CLONEWATCH_SIP__PORT=5070`; values are read as TOML values (`5070`, `true`, `["a"]`)
and otherwise as plain strings. A bad value raises `ConfigError` naming the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alerts.config import (
    ConsoleConfig,
    EventsConfig,
    StoreConfig,
    SyslogConfig,
    VerdictConfig,
    WebhookConfig,
)
from inference.config import ModelConfig, VadConfig
from streamer.errors import ConfigError

ENV_PREFIX = "CLONEWATCH_"
DEFAULT_CONFIG = Path(__file__).with_name("default.toml")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SIP_PORT = 5060
RTP_TIMEOUT_S = 30.0
MAX_CALLS = 500


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SipConfig(_Frozen):
    """The SIP user agent server (UDP and TCP)."""

    host: str = "0.0.0.0"
    port: int = Field(SIP_PORT, ge=0, le=65535)
    max_calls: int = Field(MAX_CALLS, ge=1, le=100_000)
    rtp_timeout_s: float = Field(RTP_TIMEOUT_S, gt=0.0, le=3600.0)
    retry_after_s: int = Field(30, ge=1, le=3600)
    advertised_host: str = Field("", description="address put in SDP/Contact; '' = auto")
    max_message_bytes: int = Field(65_535, ge=1024, le=1_048_576)
    answer_delay_ms: int = Field(0, ge=0, le=60_000, description="ring before answering")


class RtpConfig(_Frozen):
    """RTP receive ports and jitter buffer."""

    port_min: int = Field(20000, ge=1024, le=65535)
    port_max: int = Field(20999, ge=1024, le=65535)
    jitter_packets: int = Field(16, ge=2, le=1024, description="reorder window, 20 ms each")

    @model_validator(mode="after")
    def _range(self) -> RtpConfig:
        if self.port_max < self.port_min:
            raise ValueError("port_max must be >= port_min")
        return self


class HttpConfig(_Frozen):
    """The HTTP server (console, WHIP, metrics, health)."""

    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535)
    tls_cert: str = ""
    tls_key: str = ""

    @model_validator(mode="after")
    def _tls_pair(self) -> HttpConfig:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be set together")
        return self


class WhipConfig(_Frozen):
    """WebRTC ingest over WHIP; no tokens means WHIP is disabled."""

    tokens: tuple[str, ...] = ()
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_username: str = ""
    turn_password: str = ""
    max_sessions: int = Field(100, ge=1, le=10_000)
    media_timeout_s: float = Field(
        10.0, gt=0.0, le=3600.0, description="no audio this long ends it"
    )


class AudioConfig(_Frozen):
    """Audio retention; nothing is kept unless configured."""

    keep: bool = False
    dir: str = "recordings"


class AppConfig(_Frozen):
    """All settings, one section per stage."""

    sip: SipConfig = SipConfig()
    rtp: RtpConfig = RtpConfig()
    http: HttpConfig = HttpConfig()
    model: ModelConfig = ModelConfig()
    vad: VadConfig = VadConfig()
    verdict: VerdictConfig = VerdictConfig()
    whip: WhipConfig = WhipConfig()
    store: StoreConfig = StoreConfig()
    events: EventsConfig = EventsConfig()
    audio: AudioConfig = AudioConfig()
    console: ConsoleConfig = ConsoleConfig()
    webhook: WebhookConfig = WebhookConfig()
    syslog: SyslogConfig = SyslogConfig()

    def model_path(self) -> Path:
        """The model file; a relative path is taken from the working directory, else the project."""
        path = Path(self.model.path)
        if path.is_absolute() or path.exists():
            return path
        return PROJECT_ROOT / path


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> AppConfig:
    """Read the default config, then `path` over it, then environment overrides.

    Raises:
        ConfigError: the file is unreadable, not TOML, or a value is invalid.
    """
    data = _read_toml(DEFAULT_CONFIG)
    if path is not None:
        _merge(data, _read_toml(Path(path)))
    _apply_env(data, os.environ if env is None else env)
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"{name}: [{section}] is not a section")
        data[section][key] = _parse_env_value(raw)


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        given = err.get("input")
        lines.append(f"{key}: {err['msg']} (got {given!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)
