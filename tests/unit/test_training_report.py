"""Time-to-alert simulation (with the service's verdict policy) and shortcut cues."""

import json
from pathlib import Path

import numpy as np
import pytest

from training.report import first_alert_s, shortcut_features, unseen_generators
from training.validate import EvalSet, summarise

pytestmark = pytest.mark.unit
SHIPPED = Path(__file__).resolve().parents[2] / "onnx_models" / "clonewatch-detector.onnx"

MANIFEST = {
    "window_s": 1.0,
    "hop_s": 0.5,
    "threshold": 0.8,
    "thresholds": {"eer": 0.5, "fpr_1pct": 0.8},
}


def test_alert_comes_when_the_policy_says_synthetic() -> None:
    # policy defaults: at least 2 windows, median of the last 4 >= fpr_1pct threshold
    assert first_alert_s(np.array([0.9, 0.9, 0.9]), MANIFEST) == 1.5
    assert first_alert_s(np.array([0.1, 0.1, 0.95, 0.95, 0.95]), MANIFEST) == 3.0


def test_one_odd_window_does_not_alert() -> None:
    assert first_alert_s(np.array([0.1, 0.99, 0.1, 0.1, 0.2]), MANIFEST) is None
    assert first_alert_s(np.array([0.7, 0.7, 0.7]), MANIFEST) is None  # suspect only


def test_shortcut_features_of_known_signals() -> None:
    t = np.arange(16000) / 16000.0
    tone = (0.1 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    x = np.concatenate([np.zeros(8000, np.float32), tone])
    f = shortcut_features(x)
    assert f["level_dbfs"] == pytest.approx(10 * np.log10(0.005 * 2 / 3), abs=0.2)
    assert f["leading_silence_s"] == pytest.approx(0.5, abs=0.03)
    assert f["zero_fraction"] == pytest.approx(1 / 3, abs=0.01)


def test_high_band_share_of_white_and_low_band_noise() -> None:
    white = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    low = np.fft.irfft(np.fft.rfft(white) * (np.fft.rfftfreq(16000, 1 / 16000) < 3400), 16000)
    # 122 of the 257 bins of a 512-point frame lie above 4.2 kHz.
    assert shortcut_features(white)["high_band_share_db"] == pytest.approx(-3.3, abs=0.5)
    assert shortcut_features(low.astype(np.float32))["high_band_share_db"] < -40


def test_unseen_generators_of_copies_of_the_human_clips_are_at_chance() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(32000) / 16000.0
    humans = [
        (
            3000 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
            + 300 * rng.standard_normal(len(t))
        ).astype(np.int16)
        for f in (150, 220, 310)
    ]
    manifest = json.loads(SHIPPED.with_suffix(".json").read_text())
    out = unseen_generators(str(SHIPPED), manifest, humans, {"copies": list(humans)})
    assert out["copies"]["files"] == 3
    for channel in ("telephone", "wideband"):
        # the same windows on both sides: no threshold separates them
        assert out["copies"][channel]["window_eer"] == pytest.approx(0.5, abs=0.01)
        assert 0.0 <= out["copies"][channel]["files_alerted"] <= 1.0


def test_summarise_resamples_speakers_for_the_interval() -> None:
    logits = np.array([-1.0, 0.2, -0.5, 0.9, -2.0, 0.1, 0.0, 1.2, -0.3, 2.0, 0.8, 1.5])
    labels = np.repeat([0, 1], 6)
    ev = EvalSet(np.zeros((12, 4), np.float32), labels, np.arange(12))
    one_each = summarise(logits, ev, speakers=np.repeat(["ann", "cy"], 6))
    # one speaker a class: every resample draws the same windows, so no spread
    assert one_each["eer_95_by_speaker"] == [one_each["eer"]] * 2
    low, high = summarise(logits, ev, speakers=np.arange(12))["eer_95_by_speaker"]
    assert low < one_each["eer"] < high
