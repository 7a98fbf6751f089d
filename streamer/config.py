"""Configuration: one TOML file, validated once at start into frozen typed settings.

`configs/default.toml` is the embedded default (a copy ships inside the package).
Single keys are overridden by environment variables `CLONEWATCH_SECTION__KEY`, e.g.
`CLONEWATCH_SIP__PORT=5070`; values are read as TOML values (`5070`, `true`, `["a"]`)
and otherwise as plain strings. A bad value raises `ConfigError` naming the key.
Secrets (`ENV_ONLY_KEYS`) are taken only from the environment: a config file that
writes one is refused, so a secret never lands in a file that gets copied or committed.
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
from streamer.siprec import aor_key

ENV_PREFIX = "CLONEWATCH_"
DEFAULT_CONFIG = Path(__file__).with_name("default.toml")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SIP_PORT = 5060
RTP_TIMEOUT_S = 30.0
MAX_CALLS = 250  # concurrent calls, from the capacity benchmark (BENCHMARKS.md)
ENV_ONLY_KEYS = (("webhook", "secret"),)  # (section, key) pairs a file may not set
MAX_SIP_TRANSACTIONS = 10_000
MAX_TCP_CONNECTIONS = 1_000
SHUTDOWN_BYE_TIMEOUT_S = 2.0


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
    max_transactions: int = Field(
        MAX_SIP_TRANSACTIONS, ge=16, le=1_000_000, description="past it the oldest is expired"
    )
    max_tcp_connections: int = Field(
        MAX_TCP_CONNECTIONS, ge=1, le=100_000, description="past it new ones are refused"
    )
    shutdown_bye_timeout_s: float = Field(
        SHUTDOWN_BYE_TIMEOUT_S, ge=0.0, le=60.0, description="wait for BYE answers at shutdown"
    )
    siprec_ignore_aors: tuple[str, ...] = Field(
        (), description="SIPREC participants (AORs) whose streams are declined, not scored"
    )

    @model_validator(mode="after")
    def _aors(self) -> SipConfig:
        if any(not aor_key(aor) for aor in self.siprec_ignore_aors):
            raise ValueError("siprec_ignore_aors holds an empty AOR")
        return self


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
    max_sessions: int = Field(20, ge=1, le=10_000)  # measured capacity, BENCHMARKS.md
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
    _refuse_file_secrets(data, path or DEFAULT_CONFIG)
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


def _refuse_file_secrets(data: Mapping[str, Any], path: str | Path) -> None:
    for section, key in ENV_ONLY_KEYS:
        values = data.get(section)
        if isinstance(values, Mapping) and values.get(key):
            env_name = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            raise ConfigError(
                f"{path}: {section}.{key} must not be written in a config file; "
                f"set it in the environment as {env_name}"
            )


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
        value = _parse_env_value(raw)
        if (section, key) in ENV_ONLY_KEYS and not isinstance(value, str):
            value = raw  # a secret is text as given, even when it looks like a number
        data[section][key] = value


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        given = "<hidden>" if tuple(err["loc"][:2]) in ENV_ONLY_KEYS else err.get("input")
        lines.append(f"{key}: {err['msg']} (got {given!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)
