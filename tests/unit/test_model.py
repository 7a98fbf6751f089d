"""Loading the ONNX detector and its manifest; scoring batches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference.errors import ManifestError, ModelMismatchError
from inference.model import ModelManifest, OnnxModel, choose_providers, to_scores
from tests.fakes.models import write_test_model

pytestmark = pytest.mark.unit
CPU = ("CPUExecutionProvider",)


def _load(path: Path) -> OnnxModel:
    return OnnxModel.load(path, CPU, 1)


def test_loads_manifest_and_runs_on_cpu(tmp_path: Path) -> None:
    model = _load(write_test_model(tmp_path, window_s=0.5, hop_s=0.25, threshold=0.6))
    assert model.provider == "CPUExecutionProvider"
    assert model.manifest.window_s == 0.5
    assert model.manifest.hop_s == 0.25
    assert model.manifest.thresholds["eer"] == pytest.approx(0.6)
    assert model.manifest.thresholds["fpr_1pct"] == pytest.approx(0.9)
    assert model.window_samples == 8000


def test_energy_model_scores_loud_above_quiet(tmp_path: Path) -> None:
    model = _load(write_test_model(tmp_path, ref_rms=0.1))
    x = np.stack(
        [
            np.full(16000, 0.5, np.float32),  # rms 0.5 -> logit ln(25) -> ~0.96
            np.full(16000, 0.01, np.float32),  # rms 0.01 -> logit ln(0.01) -> ~0.0099
            np.full(16000, 0.1, np.float32),  # at the reference -> 0.5
        ]
    )
    scores = model.score_batch(x)
    assert scores.dtype == np.float32
    assert scores.shape == (3,)
    assert scores == pytest.approx([25 / 26, 1 / 101, 0.5], abs=1e-4)


def test_probability_output_is_used_as_is(tmp_path: Path) -> None:
    path = write_test_model(tmp_path, kind="constant", output_kind="probability", value=2.0)
    scores = _load(path).score_batch(np.zeros((2, 16000), np.float32))
    assert scores == pytest.approx([0.8807971] * 2, abs=1e-5)


def test_score_batch_rejects_wrong_dtype_and_shape(tmp_path: Path) -> None:
    model = _load(write_test_model(tmp_path))
    with pytest.raises(ValueError, match="float32"):
        model.score_batch(np.zeros((1, 16000), np.float64))
    with pytest.raises(ValueError, match=r"\[batch >= 1, 16000\]"):
        model.score_batch(np.zeros((1, 8000), np.float32))
    with pytest.raises(ValueError, match=r"\[batch >= 1, 16000\]"):
        model.score_batch(np.zeros(16000, np.float32))


def test_window_override_changes_expected_length(tmp_path: Path) -> None:
    model = OnnxModel.load(write_test_model(tmp_path), CPU, 1, window_s=0.5)
    assert model.score_batch(np.zeros((1, 8000), np.float32)).shape == (1,)


def test_missing_onnx_file_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.onnx"):
        _load(tmp_path / "absent.onnx")


def test_missing_manifest_fails_fast(tmp_path: Path) -> None:
    path = write_test_model(tmp_path)
    path.with_suffix(".json").unlink()
    with pytest.raises(FileNotFoundError, match="test-model.json"):
        _load(path)


def test_wrong_input_name_is_rejected(tmp_path: Path) -> None:
    path = write_test_model(tmp_path, graph_input="audio")
    with pytest.raises(ModelMismatchError, match="'waveform'"):
        _load(path)


def test_wrong_output_name_is_rejected(tmp_path: Path) -> None:
    path = write_test_model(tmp_path, graph_output="score")
    with pytest.raises(ModelMismatchError, match="'logit'"):
        _load(path)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sample_rate": None}, "sample_rate"),
        ({"sample_rate": "16k"}, "sample_rate"),
        ({"window_s": -1.0}, "window_s"),
        ({"hop_s": 5.0}, "hop_s"),
        ({"output_kind": "softmax"}, "output_kind"),
        ({"threshold": 1.5}, "threshold"),
        ({"thresholds": None}, "thresholds"),
        ({"thresholds": {"eer": 0.5}}, "thresholds.fpr_1pct"),
        ({"input": None}, "input"),
    ],
)
def test_bad_manifest_names_the_field(
    tmp_path: Path, overrides: dict[str, object], field: str
) -> None:
    path = write_test_model(tmp_path, manifest_overrides=overrides)
    with pytest.raises(ManifestError, match=f"'{field}'"):
        _load(path)


def test_manifest_that_is_not_json(tmp_path: Path) -> None:
    path = write_test_model(tmp_path)
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        _load(path)


def test_manifest_roundtrip_keeps_optional_fields(tmp_path: Path) -> None:
    path = write_test_model(tmp_path, manifest_overrides={"metrics": {"eer": 0.03}})
    manifest = ModelManifest.from_file(path.with_suffix(".json"))
    assert manifest.metrics == {"eer": 0.03}
    assert json.loads(path.with_suffix(".json").read_text())["name"] == manifest.name


def test_providers_filtered_cpu_last_resort() -> None:
    assert choose_providers(
        ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]
    ) == ["CPUExecutionProvider"]
    assert choose_providers(
        ["CUDAExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]
    ) == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_to_scores_is_stable_and_finite() -> None:
    raw = np.array([-1000.0, 0.0, 1000.0, np.nan], np.float32)
    assert to_scores(raw, "logit") == pytest.approx([0.0, 0.5, 1.0, 0.5])
    assert to_scores(np.array([-0.2, 1.3], np.float32), "probability") == pytest.approx([0.0, 1.0])
