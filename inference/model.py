"""The ONNX detector: its manifest (NAME.json) and one shared inference session.

`OnnxModel.load` is blocking and meant to run once per process at start (STYLE.md 14);
`OnnxModel.score_batch` is blocking too and runs on the runtime's executor thread, never on
the event loop. The model contract is in DESIGN.md ("Model contract").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from inference.errors import ManifestError, ModelMismatchError

logger = logging.getLogger(__name__)

OUTPUT_KINDS = ("logit", "probability")
CPU_PROVIDER = "CPUExecutionProvider"
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "sample_rate": int,
    "window_s": (int, float),
    "hop_s": (int, float),
    "input": str,
    "output": str,
    "output_kind": str,
    "threshold": (int, float),
}


def _field(data: Mapping[str, Any], key: str) -> Any:
    if key not in data:
        raise ManifestError(f"manifest field {key!r} is missing")
    value = data[key]
    expected = _FIELD_TYPES[key]
    if isinstance(value, bool) or not isinstance(value, expected):
        raise ManifestError(f"manifest field {key!r} has the wrong type: {value!r}")
    return value


def _probability(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ManifestError(f"manifest field {key!r} must be a number in [0, 1], not {value!r}")
    return float(value)


REQUIRED_THRESHOLDS = ("eer", "fpr_1pct")  # score thresholds at the EER and at 1% FPR


def _thresholds(raw: object) -> Mapping[str, float]:
    if not isinstance(raw, Mapping):
        raise ManifestError("manifest field 'thresholds' must be an object {eer, fpr_1pct}")
    values = {key: _probability(f"thresholds.{key}", raw.get(key)) for key in REQUIRED_THRESHOLDS}
    for key, value in raw.items():  # further operating points are kept when well-formed
        if key not in values:
            values[str(key)] = _probability(f"thresholds.{key}", value)
    return MappingProxyType(values)


@dataclass(frozen=True, slots=True)
class ModelManifest:
    """The validated content of a model's NAME.json (see DESIGN.md, "Model contract")."""

    name: str
    version: str
    sample_rate: int
    window_s: float
    hop_s: float
    input: str
    output: str
    output_kind: str
    threshold: float
    thresholds: Mapping[str, float]  # read-only; at least "eer" and "fpr_1pct"
    trained_on: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def window_samples(self) -> int:
        """Samples in one window at `sample_rate`."""
        return round(self.window_s * self.sample_rate)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelManifest:
        """Validate a parsed manifest; raises `ManifestError` (a `ValueError`) naming the field."""
        sample_rate = _field(data, "sample_rate")
        window_s, hop_s = float(_field(data, "window_s")), float(_field(data, "hop_s"))
        if not 1000 <= sample_rate <= 192_000:
            raise ManifestError(f"manifest field 'sample_rate' out of range: {sample_rate}")
        if not 0.0 < window_s <= 60.0:
            raise ManifestError(f"manifest field 'window_s' must be in (0, 60], not {window_s}")
        if not 0.0 < hop_s <= window_s:
            raise ManifestError(f"manifest field 'hop_s' must be in (0, window_s], not {hop_s}")
        output_kind = _field(data, "output_kind")
        if output_kind not in OUTPUT_KINDS:
            raise ManifestError(
                f"manifest field 'output_kind' must be one of {OUTPUT_KINDS}, not {output_kind!r}"
            )
        metrics = data.get("metrics", {})
        return cls(
            name=_field(data, "name"),
            version=str(data.get("version", "")),
            sample_rate=sample_rate,
            window_s=window_s,
            hop_s=hop_s,
            input=_field(data, "input"),
            output=_field(data, "output"),
            output_kind=output_kind,
            threshold=_probability("threshold", _field(data, "threshold")),
            thresholds=_thresholds(data.get("thresholds")),
            trained_on=str(data.get("trained_on", "")),
            metrics=dict(metrics) if isinstance(metrics, Mapping) else {},
        )

    @classmethod
    def from_file(cls, path: Path) -> ModelManifest:
        """Read and validate NAME.json; `FileNotFoundError(path)` when it does not exist."""
        if not path.is_file():
            raise FileNotFoundError(str(path))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ManifestError(f"{path}: a manifest is a JSON object")
        try:
            return cls.from_dict(data)
        except ManifestError as exc:
            raise ManifestError(f"{path}: {exc}") from exc


def choose_providers(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """Requested providers that this onnxruntime build offers, in the requested order.

    The CPU provider is always appended as the last resort, so a GPU-less machine still runs.
    """
    chosen = [p for p in requested if p in available]
    if CPU_PROVIDER not in chosen:
        chosen.append(CPU_PROVIDER)
    return chosen


ORT_LOG_WARNINGS = 2
ORT_LOG_ERRORS_ONLY = 4  # "fatal" in onnxruntime's scale: its CUDA probe logs at error


def _no_gpu() -> bool:
    """Whether this machine shows no NVIDIA device (then CUDA load errors are expected)."""
    return not Path("/dev/nvidiactl").exists()


def _session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads  # 0 = onnxruntime's default
    options.inter_op_num_threads = 1  # one graph at a time: batches are serialised anyway
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle worker threads must sleep, not spin: the event loop shares these cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def _check_signature(session: ort.InferenceSession, manifest: ModelManifest, path: Path) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    input_names = [i.name for i in inputs]
    output_names = [o.name for o in outputs]
    if input_names != [manifest.input]:
        raise ModelMismatchError(
            f"{path}: graph inputs {input_names}, the manifest expects [{manifest.input!r}]"
        )
    if manifest.output not in output_names:
        raise ModelMismatchError(
            f"{path}: graph outputs {output_names}, the manifest expects {manifest.output!r}"
        )
    if len(inputs[0].shape) != 2:
        raise ModelMismatchError(
            f"{path}: input {manifest.input!r} has shape {inputs[0].shape}, "
            "expected [batch, samples]"
        )
    out_shape = next(o.shape for o in outputs if o.name == manifest.output)
    if len(out_shape) not in (1, 2) or (len(out_shape) == 2 and out_shape[1] not in (1, None)):
        raise ModelMismatchError(
            f"{path}: output {manifest.output!r} has shape {out_shape}, expected [batch]"
        )


class OnnxModel:
    """One loaded detector, shared by every call (the session is thread-safe for `run`)."""

    def __init__(
        self, session: ort.InferenceSession, manifest: ModelManifest, window_samples: int
    ) -> None:
        self._session = session
        self.manifest = manifest
        self.window_samples = window_samples
        self.provider: str = session.get_providers()[0]

    @classmethod
    def load(
        cls,
        path: Path | str,
        providers: Sequence[str] = (CPU_PROVIDER,),
        intra_op_threads: int = 0,
        *,
        window_s: float | None = None,
    ) -> OnnxModel:
        """Load NAME.onnx and NAME.json once; blocking, call at start-up.

        Args:
            path: The .onnx file; its manifest is the .json beside it.
            providers: Execution providers in order of preference (from the config);
                those this onnxruntime build lacks are skipped, the CPU is the last resort.
            intra_op_threads: Threads inside one model run; 0 lets onnxruntime choose.
            window_s: Overrides the manifest's window length (config `model.window_s`).

        Raises:
            FileNotFoundError: The .onnx or .json file does not exist.
            ManifestError: The manifest is invalid (names the field).
            ModelMismatchError: The graph's inputs/outputs disagree with the manifest.
        """
        onnx_path = Path(path)
        if not onnx_path.is_file():
            raise FileNotFoundError(str(onnx_path))
        manifest = ModelManifest.from_file(onnx_path.with_suffix(".json"))
        chosen = choose_providers(providers, ort.get_available_providers())
        # The GPU build lists CUDA even where its libraries are missing; onnxruntime then
        # prints library-load errors and falls back by itself. The fallback is reported
        # below in one clear line, so its own noise is kept to errors that matter.
        ort.set_default_logger_severity(ORT_LOG_ERRORS_ONLY if _no_gpu() else ORT_LOG_WARNINGS)
        session = ort.InferenceSession(
            str(onnx_path), _session_options(intra_op_threads), providers=chosen
        )
        _check_signature(session, manifest, onnx_path)
        window = manifest.window_s if window_s is None else window_s
        model = cls(session, manifest, round(window * manifest.sample_rate))
        level = logging.INFO if model.provider == chosen[0] else logging.WARNING
        logger.log(
            level,
            "model %s %s loaded from %s, runs on %s (requested %s)",
            manifest.name,
            manifest.version,
            onnx_path,
            model.provider,
            list(providers),
            extra={"stage": "model"},
        )
        return model

    def score_batch(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Score a batch of windows; blocking, run it on the runtime's executor.

        Args:
            x: float32 audio in [-1, 1], shape [batch, window_samples], at the manifest's rate.

        Returns:
            float32 scores in [0, 1], shape [batch]: higher means more likely synthetic.

        Raises:
            ValueError: `x` has the wrong dtype or shape (the message states the expected).
        """
        if x.dtype != np.float32:
            raise ValueError(f"expected float32 audio, got {x.dtype}")
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != self.window_samples:
            raise ValueError(
                f"expected shape [batch >= 1, {self.window_samples}] "
                f"({self.manifest.sample_rate} Hz), got {list(x.shape)}"
            )
        (raw,) = self._session.run([self.manifest.output], {self.manifest.input: x})
        values = np.asarray(raw, dtype=np.float32).reshape(x.shape[0], -1)[:, 0]
        return to_scores(values, self.manifest.output_kind)


def to_scores(values: npt.NDArray[np.float32], output_kind: str) -> npt.NDArray[np.float32]:
    """Turn the model's raw outputs into scores in [0, 1].

    Logits go through a sigmoid written as 0.5 * (1 + tanh(x / 2)), which never overflows;
    probabilities are clipped. A non-finite output becomes 0.5 (undecided) rather than
    poisoning the verdict downstream.
    """
    if output_kind == "logit":
        scores = 0.5 * (1.0 + np.tanh(values.astype(np.float64) / 2.0))
    else:
        scores = np.clip(values.astype(np.float64), 0.0, 1.0)
    if not np.all(np.isfinite(scores)):
        logger.warning("model produced non-finite outputs", extra={"stage": "model"})
        scores = np.nan_to_num(scores, nan=0.5, posinf=1.0, neginf=0.0)
    return scores.astype(np.float32)
