"""The speaker-encoder head: mel filters, encoder features, weight loading, gate and export."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.unit.test_gated_detector import _constant_head, _white_and_telephone, constant_logit
from training import speaker
from training.export import export_onnx, parity
from training.model import LOG_EPS, Detector, GatedDetector
from training.ship import load_weights
from training.speaker import N_FEATURES, SpeakerDetector, SpeakerEncoder, slaney_mel_filters

pytestmark = pytest.mark.unit


def test_mel_filters_are_triangles_of_unit_area() -> None:
    filters = slaney_mel_filters()
    assert filters.shape == (40, 201)
    assert (filters >= 0).all()
    peaks = filters.argmax(axis=1)
    assert (np.diff(peaks) > 0).all()  # band centres rise with the band index
    # Slaney's norm gives each triangle unit area in Hz; 40 Hz per bin samples it well
    # once a band is ten bins wide.
    wide = (filters > 0).sum(axis=1) >= 10
    np.testing.assert_allclose(filters[wide].sum(axis=1) * 40.0, 1.0, rtol=0.05)


def test_encoder_features_ignore_the_level() -> None:
    torch.manual_seed(0)
    encoder = SpeakerEncoder().eval()
    x = torch.from_numpy(_white_and_telephone())
    with torch.no_grad():
        quiet, loud = encoder(x * 0.01), encoder(x)
    assert quiet.shape == (4, N_FEATURES)
    torch.testing.assert_close(quiet, loud, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loud[:, -256:].norm(dim=1).numpy(), 1.0, rtol=1e-5)


def test_resemblyzer_checkpoint_loads_into_the_layers(tmp_path: Path) -> None:
    torch.manual_seed(1)
    lstm, linear = torch.nn.LSTM(40, 256, 3, batch_first=True), torch.nn.Linear(256, 256)
    state = {f"lstm.{k}": v for k, v in lstm.state_dict().items()}
    state |= {f"linear.{k}": v for k, v in linear.state_dict().items()}
    torch.save({"model_state": state, "step": 1}, tmp_path / "pretrained.pt")
    encoder = SpeakerEncoder()
    encoder.load_resemblyzer(tmp_path / "pretrained.pt")
    x = torch.from_numpy(_white_and_telephone(1))
    with torch.no_grad():
        _, (hidden, _) = lstm(encoder.mels(x))  # Resemblyzer's own forward pass
        expected = torch.relu(linear(hidden[-1]))
        expected = expected / expected.norm(dim=1, keepdim=True)
        torch.testing.assert_close(encoder.eval()(x)[:, -256:], expected)


def test_weights_with_another_hash_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "pretrained.pt"
    fake.write_bytes(b"not the published weights")

    class _File:
        name = "pretrained.pt"

        def locate(self) -> Path:
            return fake

    monkeypatch.setattr(importlib.metadata, "files", lambda dist: [_File()])
    with pytest.raises(ValueError, match="SHA-256"):
        speaker._weights_file()


def test_the_speaker_head_joins_the_all_channel_side_only() -> None:
    gated = GatedDetector(
        _constant_head(-5.0),
        _constant_head(5.0),
        speaker=constant_logit(SpeakerDetector(SpeakerEncoder(), 4).eval(), 2.0),
    )
    with torch.no_grad():
        logits = gated.eval()(torch.from_numpy(_white_and_telephone())).numpy()
    np.testing.assert_allclose(logits, [5.0, 5.0, -3.0, -3.0], rtol=1e-6)


def test_saved_three_head_model_loads_and_exports(tmp_path: Path) -> None:
    torch.manual_seed(2)
    gated = GatedDetector(
        Detector(width=8), Detector(width=8), speaker=SpeakerDetector(SpeakerEncoder(), width=8)
    ).eval()
    saved = {"width": 8, "log_eps": LOG_EPS, "gate_db": gated.gate_db, "speaker_head": True}
    torch.save({"state": gated.state_dict(), **saved}, tmp_path / "three.pt")
    loaded = load_weights(tmp_path / "three.pt")
    audio = _white_and_telephone(2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(torch.from_numpy(audio)), gated(torch.from_numpy(audio)))
    export_onnx(loaded, tmp_path / "three.onnx", 16000)
    assert parity(loaded, tmp_path / "three.onnx", audio) < 1e-4
