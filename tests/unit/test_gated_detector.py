"""The two-head detector: the high-band gate, routing per window, saving and ONNX export."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import torch

from inference.channels import apply_channel
from training.export import export_onnx, parity
from training.model import LOG_EPS, Detector, GatedDetector, SpectrogramCnn, high_band_share_db
from training.ship import load_weights

pytestmark = pytest.mark.unit
M = TypeVar("M", bound=torch.nn.Module)


def _white_and_telephone(rows: int = 2) -> np.ndarray:
    """`rows` windows of white noise (wideband), then the same through the telephone band."""
    white = (np.random.default_rng(0).standard_normal((rows, 16000)) * 0.1).astype(np.float32)
    phone = np.stack([apply_channel(w, "telephone")[:16000] for w in white])
    return np.concatenate([white, phone.astype(np.float32)])


def constant_logit(model: M, value: float) -> M:
    """`model` (a head whose last layer is `head[-1]`) set to give `value` for any input."""
    last = list(model.get_submodule("head").children())[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(value)
    return model


def _constant_head(value: float) -> Detector:
    """A Detector whose logit is `value` whatever the input."""
    return constant_logit(Detector(width=4).eval(), value)


def test_high_band_share_tells_wideband_from_telephone_audio() -> None:
    x = torch.from_numpy(_white_and_telephone())
    share = high_band_share_db(Detector().eval().front(x).squeeze(1)).numpy()
    # White noise: about 76 of the 161 bins lie above 4.2 kHz (-3.3 dB).
    np.testing.assert_allclose(share[:2], -3.3, atol=0.5)
    assert (share[2:] < -40).all()


def test_each_window_goes_to_the_head_its_band_calls_for() -> None:
    gated = GatedDetector(_constant_head(-5.0), _constant_head(5.0)).eval()
    x = _white_and_telephone()
    # White noise at -100 dBFS: int16 rounding noise, as in a quiet resampled phone call.
    faint = np.random.default_rng(1).standard_normal((1, 16000)).astype(np.float32) * 1e-5
    with torch.no_grad():
        logits = gated(torch.from_numpy(np.concatenate([x, faint]))).numpy()
    np.testing.assert_allclose(logits, [5.0, 5.0, -5.0, -5.0, -5.0])


def test_saved_weights_load_as_the_same_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    single = Detector(width=8).eval()
    gated = GatedDetector(Detector(width=8), Detector(width=8), gate_db=-20.0).eval()
    x = torch.from_numpy(_white_and_telephone())
    for name, model, extra in (("one", single, {}), ("two", gated, {"gate_db": -20.0})):
        path = tmp_path / f"{name}.pt"
        torch.save({"state": model.state_dict(), "width": 8, "log_eps": LOG_EPS, **extra}, path)
        loaded = load_weights(path)
        assert type(loaded) is type(model)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), model(x))
    assert load_weights(tmp_path / "two.pt").gate_db == -20.0


def test_gated_export_parity_on_both_sides_of_the_gate(tmp_path: Path) -> None:
    torch.manual_seed(1)
    gated = GatedDetector(Detector(width=8), Detector(width=8)).eval()
    path = tmp_path / "gated.onnx"
    export_onnx(gated, path, 16000)
    audio = _white_and_telephone(3)
    assert parity(gated, path, audio) < 1e-4
    with torch.no_grad():
        heads = [head(torch.from_numpy(audio)).numpy() for head in gated.children()]
    assert np.abs(heads[0] - heads[1]).min() > 1e-3  # the heads differ, so routing is checked


def test_the_cnn_head_joins_both_sides_with_its_own_weights() -> None:
    gated = GatedDetector(
        _constant_head(-5.0), _constant_head(5.0), cnn=constant_logit(SpectrogramCnn(), 2.0)
    ).eval()
    # narrow: 1 * -5 + 3 * 2 - 1; wideband: 2 * 5 + 0.5 * 2 + 1
    gated.calibration = torch.tensor([1.0, 0.0, 3.0, -1.0, 2.0, 0.5, 1.0])
    with torch.no_grad():
        logits = gated(torch.from_numpy(_white_and_telephone())).numpy()
    np.testing.assert_allclose(logits, [12.0, 12.0, 0.0, 0.0], rtol=1e-6)


def test_saved_model_with_a_cnn_head_loads_and_exports(tmp_path: Path) -> None:
    torch.manual_seed(4)
    cnn = SpectrogramCnn(channels=16)  # not the default width: the saved one must be used
    gated = GatedDetector(Detector(width=8), Detector(width=8), cnn=cnn).eval()
    saved = {"width": 8, "log_eps": LOG_EPS, "gate_db": gated.gate_db, "cnn_head": True}
    saved["cnn_channels"] = 16
    torch.save({"state": gated.state_dict(), **saved}, tmp_path / "cnn.pt")
    loaded = load_weights(tmp_path / "cnn.pt")
    assert isinstance(loaded.cnn, SpectrogramCnn) and gated.cnn is not None
    x = torch.from_numpy(_white_and_telephone(2))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), gated(x))
        # inside the pair the CNN reads the shared spectrogram: the same logit as alone
        torch.testing.assert_close(gated.side_logits(x)[0][:, 2], gated.cnn(x))
    audio = x.numpy()
    export_onnx(loaded, tmp_path / "cnn.onnx", 16000)
    assert parity(loaded, tmp_path / "cnn.onnx", audio) < 1e-4
