"""The detector: a fixed DFT front end (inside the graph), spectral statistics, MLP heads."""

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
N_FEATURES = 5 * N_BINS + 2 * (N_BINS - 1)  # statistics per bin and per pair of neighbours
# The gate of GatedDetector: every telephone window of the held-out speakers has at most
# -31 dB of its energy above 4.2 kHz, half of the wideband windows more than -26 dB.
GATE_HZ = 4200
GATE_BIN = GATE_HZ * N_FFT // 16000 + 1  # first bin above GATE_HZ (50 Hz per bin)
GATE_DB = -35.0
# ...and the high band must also hold real energy: int16 rounding and dither at 16 kHz leave
# about -99 dBFS above 4.2 kHz, which in a quiet telephone window resampled to 16 kHz (the
# SIP path) is a share above GATE_DB. Clipped telephone peaks reach about -51 dBFS there.
GATE_FLOOR_DBFS = -80.0
# GatedDetector.calibration before it is fitted: each side's raw logits, the speaker and
# CNN logits added. Narrow side [statistics, speaker, CNN, bias], wideband [wideband, CNN, bias].
NO_CALIBRATION = (1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0)
CNN_CHANNELS = 128


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

    window: torch.Tensor

    def __init__(self, log_eps: float = LOG_EPS) -> None:
        super().__init__()
        self.log_eps = log_eps
        self.dft = nn.Conv1d(1, 2 * N_BINS, N_FFT, stride=HOP, bias=False)
        self.dft.weight.data.copy_(torch.from_numpy(dft_weights()))
        self.dft.weight.requires_grad_(False)
        window = torch.hann_window(N_FFT, periodic=True)  # the window inside dft_weights
        self.register_buffer("window", window, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log power spectrogram of each row."""
        rms = torch.sqrt(torch.mean(x * x, dim=1, keepdim=True))
        x = x / torch.clamp(rms, min=RMS_FLOOR)
        if self.training:
            # The same transform by FFT, about three times cheaper than the Conv1d here;
            # inference and the ONNX export keep the Conv1d, which every runtime runs.
            stft = torch.stft(x, N_FFT, HOP, window=self.window, center=False, return_complex=True)
            power = stft.real**2 + stft.imag**2
        else:
            spec = self.dft(x.unsqueeze(1))
            power = spec[:, :N_BINS] ** 2 + spec[:, N_BINS:] ** 2
        return torch.log(power + self.log_eps).unsqueeze(1)


class Detector(nn.Module):
    """Raw 16 kHz waveform [B, N] -> one logit per row (higher = more likely synthetic).

    Long-term spectral statistics of the window, classified by a small MLP.

    Per frequency bin: the mean and spread of the log power over time, the mean
    frame-to-frame change and curvature (first and second differences over time), and the
    spread of the spectral shape (each frame's log spectrum minus its own mean); per pair
    of neighbouring bins: the mean and spread of their log power difference. Pooling over
    the whole window before any learned layer keeps the classifier small and cheap to
    train. Needs at least 3 frames (40 ms).
    """

    def __init__(self, width: int = 256, dropout: float = 0.5, log_eps: float = LOG_EPS) -> None:
        super().__init__()
        self.front = FrontEnd(log_eps)
        self.norm = nn.BatchNorm1d(N_FEATURES)
        self.head = mlp_head(N_FEATURES, width, dropout)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Logits [B]."""
        return self.classify(self.features(waveform))

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """The pooled statistics [B, N_FEATURES]; nothing here is learnt."""
        return pooled_statistics(self.front(waveform).squeeze(1))

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits [B] from the pooled statistics."""
        logits: torch.Tensor = self.head(self.norm(feats)).squeeze(1)
        return logits


class GatedDetector(nn.Module):
    """Two heads on the same statistics, chosen per window by the energy above 4.2 kHz.

    Telephone audio has nothing above 4 kHz; many wideband recordings were band-limited
    long before they reached us. A head trained on wideband chains only does better on
    windows with real high-band energy and fails on the rest; the rest go to the head
    trained on every chain. The gate is part of the graph: one model serves SIP and
    WebRTC lines alike (DESIGN.md, "Model contract").

    With `speaker` (a head on a pretrained speaker encoder, training/speaker.py), its logit
    joins the all-channel head's: on held-out speakers it helped telephone windows and not
    the wideband head's (MODEL_CARD.md). With `cnn` (a SpectrogramCnn on the same
    spectrogram), its logit joins both sides.
    """

    calibration: torch.Tensor

    def __init__(
        self,
        all_channels: Detector,
        wideband: Detector,
        gate_db: float = GATE_DB,
        speaker: nn.Module | None = None,
        cnn: SpectrogramCnn | None = None,
    ):
        super().__init__()
        self.all_channels = all_channels
        self.wideband = wideband
        self.gate_db = gate_db
        self.speaker = speaker
        self.cnn = cnn
        # Affine maps that put both sides of the gate on one scale of log-odds, fitted on
        # held-out speakers (training/calibrate.py): narrow side [statistics weight, speaker
        # weight, CNN weight, bias], wideband side [weight, CNN weight, bias]. One threshold
        # then fits both sides.
        self.register_buffer("calibration", torch.tensor(NO_CALIBRATION))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Logits [B]."""
        sides, wide = self.side_logits(waveform)
        c = self.calibration
        narrow = c[0] * sides[:, 0] + c[1] * sides[:, 1] + c[2] * sides[:, 2] + c[3]
        wideband = c[4] * sides[:, 3] + c[5] * sides[:, 2] + c[6]
        return torch.where(wide, wideband, narrow)

    def side_logits(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw logits [B, 4] (statistics, speaker, CNN, wideband heads) and the gate [B].

        A missing head's logit is 0; the gate is True where the window goes to the
        wideband head.
        """
        s = self.all_channels.front(waveform).squeeze(1)
        feats = pooled_statistics(s)
        share = high_band_share_db(s)
        level = 10 * torch.log10(torch.mean(waveform * waveform, dim=1) + 1e-12)
        wide = (share > self.gate_db) & (share + level > GATE_FLOOR_DBFS)
        statistics = self.all_channels.classify(feats)
        zeros = torch.zeros_like(statistics)
        speaker = zeros if self.speaker is None else self.speaker(waveform)
        cnn = zeros if self.cnn is None else self.cnn.classify(s.unsqueeze(1))
        sides = torch.stack([statistics, speaker, cnn, self.wideband.classify(feats)], dim=1)
        return sides, wide


class SpectrogramCnn(nn.Module):
    """A small 2-D convolutional network over the log power spectrogram -> logits [B].

    Where the statistics pool each bin over the whole window before anything is learnt,
    the convolutions see local time-frequency patterns first. Four conv blocks shrink the
    161 bins to 10 bands; the mean and spread over time of each band and channel feed a
    one-hidden-layer classifier. Most of the shipped model's 1.7 ms per 1 s window on one CPU
    thread (32-64-128-128 channels; 64 halves the cost, at some accuracy).
    """

    def __init__(self, channels: int = CNN_CHANNELS, dropout: float = 0.5) -> None:
        super().__init__()
        self.front = FrontEnd()
        self.norm = nn.BatchNorm2d(1)
        c = channels
        self.body = nn.Sequential(
            _conv_block(1, c // 4, (5, 3), stride=(2, 1), pool=(2, 2)),  # 161 bins -> 40
            _conv_block(c // 4, c // 2, (3, 3), pool=(2, 2)),  # -> 20
            _conv_block(c // 2, c, (3, 3), pool=(2, 1)),  # -> 10
            _conv_block(c, c, (3, 3)),
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * c * 10, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(128, 1),
        )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Logits [B]."""
        return self.classify(self.features(waveform))

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """The log power spectrogram [B, 1, F, T] (fixed, not learnt)."""
        spectrogram: torch.Tensor = self.front(waveform)
        return spectrogram

    def classify(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """Logits [B] from the log power spectrogram [B, 1, F, T] (T >= 4 frames)."""
        h = self.body(self.norm(spectrogram))  # [B, C, 10, T']
        pooled = torch.cat([h.mean(dim=3), h.std(dim=3)], dim=2)
        logits: torch.Tensor = self.head(pooled.flatten(1)).squeeze(1)
        return logits


def _conv_block(
    cin: int,
    cout: int,
    kernel: tuple[int, int],
    stride: tuple[int, int] | int = 1,
    pool: tuple[int, int] = (1, 1),
) -> nn.Sequential:
    padding = (kernel[0] // 2, kernel[1] // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(pool),
    )


def mlp_head(n_features: int, width: int, dropout: float) -> nn.Sequential:
    """The classifier of every head: input dropout, one hidden ReLU layer, one logit."""
    return nn.Sequential(
        nn.Dropout(0.2),
        nn.Linear(n_features, width),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(width, 1),
    )


def pooled_statistics(s: torch.Tensor) -> torch.Tensor:
    """Per-bin and neighbour-pair statistics of a log power spectrogram [B, F, T] -> [B, N]."""
    change = torch.abs(s[:, :, 1:] - s[:, :, :-1]).mean(dim=2)
    curvature = torch.abs(s[:, :, 2:] - 2 * s[:, :, 1:-1] + s[:, :, :-2]).mean(dim=2)
    shape = s - s.mean(dim=1, keepdim=True)
    tilt = s[:, 1:, :] - s[:, :-1, :]  # neighbouring bins
    return torch.cat(
        [
            s.mean(dim=2),
            _spread(s),
            change,
            curvature,
            _spread(shape),
            torch.abs(tilt).mean(dim=2),
            _spread(tilt),
        ],
        dim=1,
    )


def high_band_share_db(s: torch.Tensor) -> torch.Tensor:
    """Share of the window's energy above GATE_HZ, in dB, from its log power spectrogram [B]."""
    high = torch.logsumexp(s[:, GATE_BIN:, :].flatten(1), dim=1)
    total = torch.logsumexp(s.flatten(1), dim=1)
    return (high - total) * float(10 / np.log(10))


def _spread(x: torch.Tensor) -> torch.Tensor:
    """Standard deviation over time (last axis), floored so its gradient stays finite."""
    return torch.sqrt(torch.clamp(x.var(dim=2, unbiased=False), min=1e-6))
