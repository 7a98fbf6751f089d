"""Settings of the decision stage, validated once at start by the root's config loader."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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
