"""The detector: a fixed DFT front end (inside the graph) and a small CNN, in PyTorch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

N_FFT = 320  # 20 ms at 16 kHz
HOP = 160  # 10 ms
N_BINS = N_FFT // 2 + 1
# Floor added to the power of a unit-RMS window before the log, about 51 dB below the mean
# bin power: digital silence (exact zeros) then looks like a quiet noise floor instead of
# an out-of-range -inf-like value, and cues below the floor (noise floors) cannot matter.
LOG_EPS = 1e-3
RMS_FLOOR = 1e-3  # windows quieter than -60 dBFS are not amplified further


def dft_weights(n_fft: int = N_FFT) -> np.ndarray:
    """Hann-windowed DFT as conv weights: rows 0..F-1 cosine, F..2F-1 sine; [2F, 1, n_fft]."""
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    angle = 2 * np.pi * k * n / n_fft
    w = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])
    return w[:, None, :].astype(np.float32)


class FrontEnd(nn.Module):
    """Waveform [B, N] -> log power spectrogram [B, 1, F, T], level-normalised per row.

    The row is scaled to unit RMS first, so the absolute level (gain, loudness) cannot
    separate the classes; then a strided Conv1d with fixed DFT weights gives the STFT.
    """

    def __init__(self, log_eps: float = LOG_EPS) -> None:
        super().__init__()
        self.log_eps = log_eps
        self.dft = nn.Conv1d(1, 2 * N_BINS, N_FFT, stride=HOP, bias=False)
        self.dft.weight.data.copy_(torch.from_numpy(dft_weights()))
        self.dft.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log power spectrogram of each row."""
        rms = torch.sqrt(torch.mean(x * x, dim=1, keepdim=True))
        x = x / torch.clamp(rms, min=RMS_FLOOR)
        spec = self.dft(x.unsqueeze(1))
        power = spec[:, :N_BINS] ** 2 + spec[:, N_BINS:] ** 2
        return torch.log(power + self.log_eps).unsqueeze(1)


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Detector(nn.Module):
    """Raw 16 kHz waveform [B, N] -> one logit per row (higher = more likely synthetic)."""

    def __init__(self, width: int = 16, dropout: float = 0.3, log_eps: float = LOG_EPS) -> None:
        super().__init__()
        w = width
        self.front = FrontEnd(log_eps)
        self.norm = nn.BatchNorm2d(1)
        self.body = nn.Sequential(
            _block(1, w, 2),
            _block(w, 2 * w, 2),
            _block(2 * w, 3 * w, 2),
            _block(3 * w, 4 * w, 2),
            _block(4 * w, 4 * w, 1),
        )
        freq = N_BINS
        for _ in range(4):
            freq = (freq + 1) // 2
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * 4 * w * freq, 64),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(64, 1),
        )

    def classify(self, spec: torch.Tensor) -> torch.Tensor:
        """Logits [B] of log spectrograms [B, 1, F, T]."""
        h = self.body(self.norm(spec))  # [B, C, F', T']
        pooled = torch.cat([h.mean(dim=3), h.amax(dim=3)], dim=1).flatten(1)
        return self.head(pooled).squeeze(1)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Logits [B]."""
        return self.classify(self.front(waveform))


def _tdnn(c_in: int, c_out: int, kernel: int, dilation: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
    )


class TdnnDetector(nn.Module):
    """Frequency bins as channels: 1-D convolutions over time, mean+std pooling.

    The first layer halves the frame rate (20 ms); three dilated residual layers follow.
    """

    def __init__(self, width: int = 96, dropout: float = 0.2, log_eps: float = LOG_EPS) -> None:
        super().__init__()
        self.front = FrontEnd(log_eps)
        self.norm = nn.BatchNorm1d(N_BINS)
        self.stem = nn.Sequential(
            nn.Conv1d(N_BINS, width, 5, stride=2, padding=2),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
        )
        self.body = nn.ModuleList([_tdnn(width, width, 3, d) for d in (2, 3, 4)])
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(2 * width, 64), nn.ReLU(inplace=True), nn.Linear(64, 1)
        )

    def classify(self, spec: torch.Tensor) -> torch.Tensor:
        """Logits [B] of log spectrograms [B, 1, F, T]."""
        h = self.stem(self.norm(spec.squeeze(1)))  # [B, C, T/2]
        for layer in self.body:
            h = h + layer(h)
        mean = h.mean(dim=2)
        std = torch.sqrt(torch.clamp(h.var(dim=2, unbiased=False), min=1e-6))
        return self.head(torch.cat([mean, std], dim=1)).squeeze(1)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Logits [B]."""
        return self.classify(self.front(waveform))


ARCHS: dict[str, type[nn.Module]] = {"cnn": Detector, "tdnn": TdnnDetector}


def build(arch: str, width: int, log_eps: float = LOG_EPS) -> nn.Module:
    """A fresh model of the named architecture."""
    return ARCHS[arch](width=width, log_eps=log_eps)
