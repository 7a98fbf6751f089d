"""Export parity: the shipped graph's front end against numpy; a fresh export against PyTorch."""

from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnx.utils
import onnxruntime as ort
import pytest

pytestmark = pytest.mark.unit

ONNX = Path(__file__).resolve().parents[2] / "onnx_models" / "clonewatch-detector.onnx"
N_FFT, HOP, RMS_FLOOR = 320, 160, 1e-3


def numpy_front_end(x: np.ndarray, eps: float) -> np.ndarray:
    """Reference: unit-RMS rows, Hann frames, |rfft|^2, log(+eps): [B, F, T]."""
    x = x.astype(np.float64)
    rms = np.sqrt(np.mean(x**2, axis=1, keepdims=True))
    x = x / np.maximum(rms, RMS_FLOOR)
    frames = 1 + (x.shape[1] - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    spec = np.fft.rfft(x[:, idx] * window, axis=2)
    return np.log(np.abs(spec) ** 2 + eps).transpose(0, 2, 1)


def _constant(model: onnx.ModelProto, name: str) -> float:
    for init in model.graph.initializer:
        if init.name == name:
            return float(onnx.numpy_helper.to_array(init).reshape(-1)[0])
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return float(onnx.numpy_helper.to_array(node.attribute[0].t).reshape(-1)[0])
    raise KeyError(name)


def _log_spectrogram_graph(tmp_path: Path) -> tuple[str, str, float]:
    """The shipped graph cut after its Log node, and the floor added before the log."""
    model = onnx.load(str(ONNX))
    floored_logs = []  # log(x + eps): the spectrogram's eps, and the gate's 1e-12 on the level
    for log_node in (n for n in model.graph.node if n.op_type == "Log"):
        (add_node,) = [n for n in model.graph.node if log_node.input[0] in n.output]
        assert add_node.op_type == "Add"
        floored_logs.append((log_node, _constant(model, add_node.input[1])))
    ((log_node, eps),) = [(n, eps) for n, eps in floored_logs if eps > 1e-9]
    sub = tmp_path / "front.onnx"
    onnx.utils.extract_model(str(ONNX), str(sub), ["waveform"], [log_node.output[0]])
    return str(sub), log_node.output[0], eps


def test_shipped_front_end_matches_numpy_reference(tmp_path: Path) -> None:
    path, out, eps = _log_spectrogram_graph(tmp_path)
    assert 1e-8 <= eps <= 1e-2
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    t = np.arange(16000) / 16000.0
    x = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.01 * rng.standard_normal(16000)])
    (got,) = session.run([out], {"waveform": x.astype(np.float32)})
    ref = numpy_front_end(x, eps)
    got = np.asarray(got).reshape(ref.shape)
    strong = ref > np.log(1e-2)  # compare where float32 rounding is far below the value
    np.testing.assert_allclose(got[strong], ref[strong], atol=2e-3)
    peak_bin = int(np.argmax(got[0].mean(axis=1)))
    assert peak_bin == round(440 / (16000 / N_FFT))


def test_pytorch_export_parity(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="parity with PyTorch needs the [train] extra")
    from training.export import export_onnx, parity
    from training.model import Detector

    torch.manual_seed(0)
    model = Detector(width=8).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, so folding is exercised
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    path = tmp_path / "d.onnx"
    export_onnx(model, path, 16000)
    audio = (np.random.default_rng(0).standard_normal((5, 16000)) * 0.1).astype(np.float32)
    assert parity(model, path, audio) < 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (two_s,) = session.run(["logit"], {"waveform": np.zeros((3, 32000), np.float32)})
    assert two_s.shape == (3,)


def test_training_front_end_computes_what_the_exported_one_does() -> None:
    torch = pytest.importorskip("torch", reason="needs the [train] extra")
    from training.model import FrontEnd

    front = FrontEnd()
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 8000)).astype(np.float32))
    by_fft = front.train()(x)  # torch.stft, used while training
    by_conv = front.eval()(x)  # the Conv1d DFT, exported
    assert by_fft.shape == by_conv.shape == (2, 1, N_FFT // 2 + 1, 1 + (8000 - N_FFT) // HOP)
    assert float((by_fft - by_conv).abs().max()) < 1e-3
