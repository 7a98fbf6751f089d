"""A pretrained speaker encoder as a second view of the voice, and a head on its features.

The encoder is GE2E (Wan et al., 2018) as trained for Resemblyzer (Apache-2.0): 40 mel
bands, three LSTM layers of 256, trained to tell thousands of speakers apart (LibriSpeech,
VoxCeleb 1 and 2). It was never trained on synthetic speech, but a representation learnt
from that many voices and recording conditions describes a voice in ways the corpus alone
cannot teach; a small head on its pooled outputs picks up what separates cloned voices.
The encoder stays frozen: only the head is trained.

The weights come from the PyPI wheel `Resemblyzer` (install it without its dependencies;
only `--speaker-head` runs need it) and end up inside the exported ONNX graph; nothing here
is needed to serve. Off by default since the CNN head came (docs/detector-development.md).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.model import dft_weights, mlp_head

SAMPLE_RATE = 16_000
N_FFT = 400  # 25 ms
# 20 ms: Resemblyzer's frames are 10 ms apart, but at 20 ms the LSTMs cost half, which the
# service needs (with 10 ms frames it fell behind at 300 calls on 2 cores), and held-out
# speakers at 1 s scored the same (MODEL_CARD.md).
HOP = 320
N_MELS = 40
HIDDEN = 256
LAYERS = 3
LEVEL_DBFS = -30.0  # Resemblyzer normalises its input to this RMS level
N_FEATURES = 2 * LAYERS * HIDDEN + HIDDEN  # mean and spread per layer, and the embedding

ENCODER_DIST = "Resemblyzer"
ENCODER_FILE = "pretrained.pt"
ENCODER_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"


def slaney_mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT) -> np.ndarray:
    """Triangular mel filters [n_mels, n_fft // 2 + 1], Slaney's scale and area norm.

    The filter bank the encoder was trained with (librosa's default), 0 Hz to Nyquist.
    """
    f_sp = 200.0 / 3  # linear part: 3 mels per 200 Hz up to 1 kHz, logarithmic above
    log_step = np.log(6.4) / 27.0

    def to_mel(hz: np.ndarray) -> np.ndarray:
        safe = np.maximum(hz, 1e-9)
        return np.where(hz >= 1000, 15.0 + np.log(safe / 1000) / log_step, hz / f_sp)

    def to_hz(mel: np.ndarray) -> np.ndarray:
        return np.where(mel >= 15, 1000 * np.exp(log_step * (mel - 15)), mel * f_sp)

    bins = np.linspace(0, SAMPLE_RATE / 2, n_fft // 2 + 1)
    edges = to_hz(np.linspace(0, to_mel(np.array(SAMPLE_RATE / 2)), n_mels + 2))
    rising = (bins[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - bins[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    filters: np.ndarray = weights.astype(np.float32)
    return filters


class SpeakerEncoder(nn.Module):
    """Waveform [B, N] at 16 kHz -> pooled encoder outputs [B, N_FEATURES].

    Per LSTM layer the mean and spread over time of its outputs, then the speaker
    embedding (last layer's final state through the linear layer, ReLU, unit length).
    Fresh instances have random weights; `pretrained()` loads Resemblyzer's.
    """

    dft: torch.Tensor
    mel: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("dft", torch.from_numpy(dft_weights(N_FFT)))
        self.register_buffer("mel", torch.from_numpy(slaney_mel_filters()))
        self.lstm = nn.ModuleList(
            nn.LSTM(N_MELS if i == 0 else HIDDEN, HIDDEN, batch_first=True) for i in range(LAYERS)
        )
        self.linear = nn.Linear(HIDDEN, HIDDEN)

    @classmethod
    def pretrained(cls) -> SpeakerEncoder:
        """The encoder with Resemblyzer's weights (the installed wheel's file, hash-checked)."""
        encoder = cls()
        encoder.load_resemblyzer(_weights_file())
        for p in encoder.parameters():
            p.requires_grad_(False)
        return encoder.eval()

    def load_resemblyzer(self, path: Path) -> None:
        """Copy a Resemblyzer checkpoint's weights (one 3-layer LSTM) into the layers."""
        state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
        for i, layer in enumerate(self.lstm):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(layer, f"{name}_l0").data.copy_(state[f"lstm.{name}_l{i}"])
        self.linear.weight.data.copy_(state["linear.weight"])
        self.linear.bias.data.copy_(state["linear.bias"])

    def mels(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram [B, T, N_MELS] of each row at LEVEL_DBFS."""
        rms = torch.sqrt(torch.mean(waveform * waveform, dim=1, keepdim=True))
        x = waveform * (10 ** (LEVEL_DBFS / 20) / torch.clamp(rms, min=1e-5))
        x = nn.functional.pad(x.unsqueeze(1), (N_FFT // 2, N_FFT // 2), mode="reflect")
        spec = nn.functional.conv1d(x, self.dft, stride=HOP)
        bins = N_FFT // 2 + 1
        power = spec[:, :bins] ** 2 + spec[:, bins:] ** 2
        return torch.matmul(self.mel, power).transpose(1, 2)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Pooled outputs [B, N_FEATURES]."""
        h = self.mels(waveform)
        pooled = []
        last = h
        for layer in self.lstm:
            h, (last, _) = layer(h)
            pooled += [h.mean(dim=1), h.std(dim=1)]
        embedding = torch.relu(self.linear(last[-1]))
        embedding = embedding / torch.clamp(embedding.norm(dim=1, keepdim=True), min=1e-6)
        return torch.cat([*pooled, embedding], dim=1)


class SpeakerDetector(nn.Module):
    """A frozen SpeakerEncoder and a trained MLP head: waveform [B, N] -> logits [B]."""

    def __init__(self, encoder: SpeakerEncoder, width: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        self.encoder = encoder
        self.norm = nn.BatchNorm1d(N_FEATURES)
        self.head = mlp_head(N_FEATURES, width, dropout)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Logits [B]."""
        return self.classify(self.features(waveform))

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """The encoder's pooled outputs; the encoder is never trained here."""
        self.encoder.eval()
        out: torch.Tensor = self.encoder(waveform)
        return out

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits [B] from the pooled outputs."""
        logits: torch.Tensor = self.head(self.norm(feats)).squeeze(1)
        return logits


def _weights_file() -> Path:
    """Resemblyzer's pretrained.pt from the installed wheel, after checking its SHA-256."""
    import hashlib

    try:
        files = importlib.metadata.files(ENCODER_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    found = [Path(str(f.locate())) for f in files if f.name == ENCODER_FILE]
    if not found:
        raise FileNotFoundError(
            f"{ENCODER_FILE} of {ENCODER_DIST} not found: pip install --no-deps "
            f"{ENCODER_DIST}==0.1.4 (only --speaker-head runs need it)"
        )
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != ENCODER_SHA256:
        raise ValueError(f"{found[0]}: SHA-256 {digest}, expected {ENCODER_SHA256}")
    return found[0]
