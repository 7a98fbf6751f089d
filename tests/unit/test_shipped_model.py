"""The shipped default detector: loads, matches its manifest, takes any batch, stays in budget."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort
import pytest

from inference.channels import mulaw_roundtrip, resample
from inference.model import ModelManifest, OnnxModel
from streamer.resample import Resampler

pytestmark = pytest.mark.unit

ONNX = Path(__file__).resolve().parents[2] / "onnx_models" / "clonewatch-detector.onnx"
MAX_BYTES = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def model() -> OnnxModel:
    return OnnxModel.load(ONNX, intra_op_threads=1)


def _speechlike(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000.0
    f0 = 120 + 30 * np.sin(2 * np.pi * 3 * t)
    voiced = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000.0) / k for k in range(1, 20))
    return (0.1 * voiced + 0.01 * rng.standard_normal(n)).astype(np.float32)


def test_manifest_matches_the_contract() -> None:
    manifest = ModelManifest.from_file(ONNX.with_suffix(".json"))
    raw = json.loads(ONNX.with_suffix(".json").read_text())
    assert manifest.name == "clonewatch-detector"
    assert manifest.sample_rate == 16000
    assert (manifest.input, manifest.output, manifest.output_kind) == ("waveform", "logit", "logit")
    assert 0.0 < manifest.hop_s <= manifest.window_s <= 4.0
    eer, fpr_1pct = manifest.thresholds["eer"], manifest.thresholds["fpr_1pct"]
    assert 0.0 < eer <= fpr_1pct < 1.0
    assert manifest.threshold in (eer, fpr_1pct)
    assert raw["trained_on"]
    metrics = raw["metrics"]
    assert metrics["onnx_parity_max_abs_diff"] < 1e-3
    assert metrics["size_bytes"] == ONNX.stat().st_size <= MAX_BYTES


def test_graph_has_dynamic_batch() -> None:
    graph = onnx.load(str(ONNX)).graph
    (inp,) = graph.input
    dims = inp.type.tensor_type.shape.dim
    assert len(dims) == 2
    assert dims[0].dim_param and not dims[0].dim_value


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_scores_any_batch_row_by_row(model: OnnxModel, batch: int) -> None:
    n = model.window_samples
    x = np.stack([_speechlike(n, seed) for seed in range(batch)])
    scores = model.score_batch(x)
    assert scores.shape == (batch,)
    assert np.all((scores >= 0) & (scores <= 1))
    alone = np.array([model.score_batch(x[i : i + 1])[0] for i in range(batch)])
    np.testing.assert_allclose(scores, alone, atol=1e-5)


def test_level_does_not_change_the_logit(model: OnnxModel) -> None:
    session = ort.InferenceSession(str(ONNX), providers=["CPUExecutionProvider"])
    x = _speechlike(model.window_samples, 7)[None, :]
    (loud,) = session.run(["logit"], {"waveform": x})
    (quiet,) = session.run(["logit"], {"waveform": (x * 0.05).astype(np.float32)})
    assert abs(float(loud[0]) - float(quiet[0])) < 0.05


def test_silence_gives_a_finite_score(model: OnnxModel) -> None:
    scores = model.score_batch(np.zeros((2, model.window_samples), np.float32))
    assert np.all(np.isfinite(scores))


def test_wrong_window_length_is_refused(model: OnnxModel) -> None:
    with pytest.raises(ValueError, match="expected shape"):
        model.score_batch(np.zeros((1, model.window_samples + 1), np.float32))


def _gate_session(tmp_path: Path) -> tuple[ort.InferenceSession, str]:
    """The shipped graph cut at the condition of its Where: True = the wideband head."""
    (where,) = [n for n in onnx.load(str(ONNX)).graph.node if n.op_type == "Where"]
    sub = tmp_path / "gate.onnx"
    onnx.utils.extract_model(str(ONNX), str(sub), ["waveform"], [where.input[0]])
    return ort.InferenceSession(str(sub), providers=["CPUExecutionProvider"]), where.input[0]


def _through_the_sip_path(x: np.ndarray, level_dbfs: float) -> np.ndarray:
    """16 kHz audio at `level_dbfs` -> 8 kHz G.711 mu-law -> the service's int16 resampler."""
    x = x * 10 ** (level_dbfs / 20) / np.sqrt(np.mean(x**2))
    phone = mulaw_roundtrip(resample(x, 16000, 8000))
    pcm = np.round(np.clip(phone, -1, 1) * 32767).astype(np.int16)
    up = Resampler(8000).process(pcm, last=True)
    return (up[:16000].astype(np.float32) / 32768)[None, :]


@pytest.mark.parametrize("level_dbfs", [-20.0, -45.0, -70.0])  # -70: the floor decides
def test_the_gate_sends_sip_audio_to_the_all_channel_head(
    tmp_path: Path, level_dbfs: float
) -> None:
    session, gate = _gate_session(tmp_path)
    x = _speechlike(32000, 11)
    (wide,) = session.run([gate], {"waveform": x[None, :16000]})
    assert bool(wide[0])  # the same audio unfiltered has energy above 4.2 kHz
    (wide,) = session.run([gate], {"waveform": _through_the_sip_path(x, level_dbfs)})
    assert not bool(wide[0])
