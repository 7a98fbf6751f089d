"""Training data plumbing: class-balanced sampling and the held-out groupings."""

from pathlib import Path

import numpy as np
import pytest

from training.data import Clip
from training.train import sample_weights

pytestmark = pytest.mark.unit


def _clip(label: int, source: str) -> Clip:
    return Clip(Path(f"{source}.flac"), label, source, source, "spk", "train")


def test_sample_weights_give_each_class_half_the_mass() -> None:
    clips = [_clip(0, "librispeech")] * 9 + [_clip(1, "edge")] * 3 + [_clip(1, "demo")]
    rows = np.arange(len(clips))
    w = sample_weights(clips, rows)
    labels = np.array([c.label for c in clips])
    assert w.sum() == pytest.approx(1.0)
    assert w[labels == 0].sum() == pytest.approx(0.5)
    assert w[labels == 1].sum() == pytest.approx(0.5)
    # within a class every row is equally likely, whatever its source
    assert np.allclose(w[labels == 1], w[labels == 1][0])


def test_human_sources_group_recordings_and_skip_spoofs() -> None:
    assert _clip(0, "pyannote").human_source == _clip(0, "pyannote_windows").human_source
    assert _clip(0, "resemblyzer").human_source == "librispeech"
    assert _clip(0, "vosk").human_source == "vosk"
    assert _clip(1, "resemblyzer").human_source == ""
    assert _clip(1, "edge_tts_samples").family == "commercial-tts"
