"""Settings of the decision stage, validated once at start by the root's config loader."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

MIN_WINDOWS = 2  # speech windows before a participant leaves `listening`
HISTORY_WINDOWS = 4  # recent windows the verdict is aggregated over
RELEASE_MARGIN = 0.1  # a verdict is left only when the score falls this far below its threshold


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LineThresholds(_Frozen):
    """Per-line override of the manifest's thresholds (scores in [0, 1])."""

    suspect_threshold: float | None = Field(None, ge=0.0, le=1.0)
    synthetic_threshold: float | None = Field(None, ge=0.0, le=1.0)


class VerdictConfig(_Frozen):
    """Hysteresis policy that turns window scores into verdicts.

    Thresholds left unset come from the model manifest: `suspect` from `thresholds.eer`,
    `synthetic` from `thresholds.fpr_1pct`.
    """

    min_windows: int = Field(MIN_WINDOWS, ge=1, le=100)
    history_windows: int = Field(HISTORY_WINDOWS, ge=1, le=100)
    release_margin: float = Field(RELEASE_MARGIN, ge=0.0, le=1.0)
    suspect_threshold: float | None = Field(None, ge=0.0, le=1.0)
    synthetic_threshold: float | None = Field(None, ge=0.0, le=1.0)
    score_interval_s: float = Field(1.0, ge=0.0, le=60.0, description="participant.score rate")
    lines: dict[str, LineThresholds] = Field(default_factory=dict)


class StoreConfig(_Frozen):
    """The embedded SQLite store."""

    path: str = "clonewatch.db"


class EventsConfig(_Frozen):
    """Where events are written besides the bus (the CLI's --events sets `jsonl_path`)."""

    jsonl_path: str = ""
    log: bool = True


ALERT_EVENT_TYPES = ("alert.raised", "alert.acknowledged", "alert.dismissed", "alert.escalated")


class ConsoleConfig(_Frozen):
    """The operator console (web pages, JSON API and live feed)."""

    session_cookie: str = Field("clonewatch_session", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    login_failures_allowed: int = Field(5, ge=1, le=1000, description="per client and name")
    login_window_s: float = Field(300.0, gt=0.0, le=86_400.0)
    live_queue_events: int = Field(5_000, ge=100, le=1_000_000, description="per browser")
    replay_events: int = Field(20_000, ge=100, le=1_000_000, description="kept for catch-up")
    action_store_timeout_s: float = Field(5.0, gt=0.0, le=60.0)


class WebhookConfig(_Frozen):
    """Alert delivery to an HTTP endpoint; no `url` means disabled.

    The HMAC secret comes only from the environment (`CLONEWATCH_WEBHOOK__SECRET`);
    it is a `SecretStr`, so it never shows in logs or reprs.
    """

    url: str = Field("", pattern=r"^(https?://\S+)?$")
    secret: SecretStr = SecretStr("")
    types: tuple[str, ...] = ALERT_EVENT_TYPES  # event types sent; () = all but scores
    timeout_s: float = Field(5.0, gt=0.0, le=120.0)
    max_attempts: int = Field(5, ge=1, le=50)
    backoff_s: float = Field(0.5, ge=0.0, le=600.0, description="first retry delay, doubled")
    backoff_max_s: float = Field(30.0, ge=0.0, le=3600.0)
    max_in_flight: int = Field(1_000, ge=1, le=100_000)
    dead_letter_path: str = "webhook-dead-letter.jsonl"


class SyslogConfig(_Frozen):
    """RFC 5424 syslog delivery; no `target` means disabled.

    `target` is `udp:HOST:PORT` or `unix:/PATH` (a datagram socket such as /dev/log).
    """

    target: str = Field("", pattern=r"^((udp:\S+:\d{1,5})|(unix:/\S*))?$")
    facility: int = Field(16, ge=0, le=23, description="16 = local0")
    app_name: str = Field("clonewatch", pattern=r"^[!-~]{1,48}$")
    types: tuple[str, ...] = ALERT_EVENT_TYPES  # event types sent; () = all but scores
