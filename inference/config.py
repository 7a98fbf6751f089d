"""Settings of the analysis stage, validated once at start by the root's config loader."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

VAD_AGGRESSIVENESS = 2  # webrtcvad mode 0 (lenient) .. 3 (strict)
VAD_HANGOVER_MS = 200  # speech kept after the last voiced frame, so words are not clipped
MAX_BATCH = 32
MAX_WAIT_MS = 50.0
QUEUE_WINDOWS = 2000  # windows waiting for the model; past it the oldest is dropped


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VadConfig(_Frozen):
    """Voice activity detection (webrtcvad) per participant."""

    aggressiveness: int = Field(VAD_AGGRESSIVENESS, ge=0, le=3)
    hangover_ms: int = Field(VAD_HANGOVER_MS, ge=0, le=2000)
    start_frames: int = Field(3, ge=1, le=50, description="voiced 20 ms frames that start speech")


class ModelConfig(_Frozen):
    """The ONNX model and how it is run."""

    path: str = "onnx_models/clonewatch-detector.onnx"
    providers: tuple[str, ...] = ("CUDAExecutionProvider", "CPUExecutionProvider")
    intra_op_threads: int = Field(0, ge=0, le=256, description="0 = onnxruntime's default")
    max_batch: int = Field(MAX_BATCH, ge=1, le=1024)
    max_wait_ms: float = Field(MAX_WAIT_MS, ge=0.0, le=10_000.0)
    queue_windows: int = Field(QUEUE_WINDOWS, ge=1, le=1_000_000)
    window_s: float | None = Field(None, gt=0.0, le=30.0, description="override the manifest")
    hop_s: float | None = Field(None, gt=0.0, le=30.0, description="override the manifest")
