"""Calibration of the gated detector's sides: the fit, and the fitted maps in saved models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.calibrate import fit_calibration, fit_logistic
from training.export import export_onnx, parity
from training.model import LOG_EPS, NO_CALIBRATION, Detector, GatedDetector
from training.ship import load_weights

pytestmark = pytest.mark.unit


def _log_odds_and_labels(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True log-odds z ~ N(0, 2) and labels drawn with probability sigmoid(z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, n)
    return z, (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)


def test_logistic_fit_recovers_known_weights() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 2))
    z = 2.0 * x[:, 0] - 1.0 * x[:, 1]
    labels = (rng.random(len(z)) < 1 / (1 + np.exp(-z))).astype(int)
    np.testing.assert_allclose(fit_logistic(x, labels, l2=0.0), [2.0, -1.0, 0.0], atol=0.1)


def test_logistic_fit_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        fit_logistic(np.zeros((4, 1)), np.ones(4, int))


class _KnownSides(GatedDetector):
    """A GatedDetector whose raw side logits are read from the input: [statistics, wideband,
    gate] in the first three samples. The narrow side is 10 times too confident, the
    wideband side half as confident and shifted by 3. No speaker or CNN head."""

    def side_logits(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros_like(waveform[:, 0])
        sides = torch.stack([waveform[:, 0], zeros, zeros, waveform[:, 1]], dim=1)
        return sides, waveform[:, 2] > 0


def test_both_sides_are_mapped_to_the_same_log_odds() -> None:
    z, labels = _log_odds_and_labels(20000, seed=1)
    wide = np.arange(len(z)) % 2 == 1
    audio = np.stack([10 * z, 0.5 * z + 3, wide], axis=1).astype(np.float32)
    model = _KnownSides(Detector(width=4), Detector(width=4))
    calibration = fit_calibration(model, audio, labels).numpy()
    np.testing.assert_allclose(calibration[[0, 3, 4, 6]], [0.1, 0.0, 2.0, -6.0], atol=0.3)
    assert calibration[0] == pytest.approx(0.1, rel=0.1)
    # no speaker or CNN head: their weights stay 0
    assert calibration[1] == 0.0 and calibration[2] == 0.0 and calibration[5] == 0.0
    with torch.no_grad():
        calibrated = model(torch.from_numpy(audio[:200])).numpy()
    np.testing.assert_allclose(calibrated, z[:200], atol=0.6)


def test_saved_calibration_loads_and_exports(tmp_path: Path) -> None:
    torch.manual_seed(3)
    gated = GatedDetector(Detector(width=8), Detector(width=8)).eval()
    gated.calibration = torch.tensor([0.5, 0.0, 0.0, -1.0, 2.0, 0.0, 1.0])
    saved = {"width": 8, "log_eps": LOG_EPS, "gate_db": gated.gate_db}
    torch.save({"state": gated.state_dict(), **saved}, tmp_path / "cal.pt")
    loaded = load_weights(tmp_path / "cal.pt")
    torch.testing.assert_close(loaded.calibration, gated.calibration)
    audio = (np.random.default_rng(0).standard_normal((3, 16000)) * 0.1).astype(np.float32)
    export_onnx(loaded, tmp_path / "cal.onnx", 16000)
    assert parity(loaded, tmp_path / "cal.onnx", audio) < 1e-4


def test_weights_saved_before_calibration_load_uncalibrated(tmp_path: Path) -> None:
    gated = GatedDetector(Detector(width=8), Detector(width=8)).eval()
    state = {k: v for k, v in gated.state_dict().items() if k != "calibration"}
    saved = {"width": 8, "log_eps": LOG_EPS, "gate_db": gated.gate_db}
    torch.save({"state": state, **saved}, tmp_path / "old.pt")
    loaded = load_weights(tmp_path / "old.pt")
    assert loaded.calibration.tolist() == list(NO_CALIBRATION)
