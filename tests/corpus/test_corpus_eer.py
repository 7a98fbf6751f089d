"""The shipped model on the shared corpus's dev split (held-out speakers).

Issue 8 sets the bar at an EER below 10 % on the telephone channel. The shipped model does
not reach it (about 16 % telephone and 13 % wideband, see onnx_models/MODEL_CARD.md), and
the issue stays open until a model does. Until then this test guards what the model does
achieve, so a broken export, a wrong front end or a swapped label fails here: both
channels must separate human from synthetic speech clearly better than chance.
"""

from pathlib import Path

import pytest

from inference.evaldata import load_items
from inference.evaluate import evaluate, read_audio
from inference.model import OnnxModel

pytestmark = pytest.mark.corpus

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
REGRESSION_BOUND_EER = 0.22  # chance is 0.50; the shipped model measures about 0.15


@pytest.mark.skipif(
    not (CORPUS / "manifest.csv").is_file(), reason="../shared/corpus (manifest.csv) is absent"
)
def test_dev_split_eer_stays_clearly_better_than_chance() -> None:
    items, audio, skipped = read_audio(load_items(CORPUS / "manifest.csv", "dev"))
    assert skipped == {}
    assert len({i.label for i in items}) == 2
    model = OnnxModel.load(ROOT / "onnx_models" / "clonewatch-detector.onnx", intra_op_threads=2)
    report, _ = evaluate(items, audio, model, ("telephone", "wideband"))
    for channel in ("telephone", "wideband"):
        eer = report["channels"][channel]["eer"]
        assert eer < REGRESSION_BOUND_EER, (channel, eer)
