"""The shipped model on the shared corpus's dev split (held-out speakers), telephone channel."""

from pathlib import Path

import pytest

from inference.evaldata import load_items
from inference.evaluate import evaluate
from inference.model import OnnxModel

pytestmark = pytest.mark.corpus

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = (Path("/work/shared/corpus"), ROOT.parent / "shared" / "corpus")
CORPUS = next((d for d in CANDIDATES if (d / "manifest.csv").is_file()), None)


@pytest.mark.skipif(CORPUS is None, reason="../shared/corpus (manifest.csv) is not present")
def test_dev_split_telephone_eer_below_ten_percent() -> None:
    assert CORPUS is not None
    items = load_items(CORPUS / "manifest.csv", "dev")
    assert len({i.label for i in items}) == 2
    model = OnnxModel.load(ROOT / "onnx_models" / "clonewatch-detector.onnx", intra_op_threads=2)
    report, _ = evaluate(items, model, ("telephone",))
    tel = report["channels"]["telephone"]
    assert tel["eer"] < 0.10, tel
