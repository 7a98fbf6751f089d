"""Labelled audio for `clonewatch evaluate`: manifest or folders, decoding, speech windows."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from inference.channels import SAMPLE_RATE_HZ, resample

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac"}
TRIM_DB = 40.0  # edge frames this far below the loudest 20 ms are silence
LABELS = {"bonafide": 0, "human": 0, "real": 0, "spoof": 1, "synthetic": 1, "fake": 1}

Audio = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Item:
    """One labelled file: label 1 = spoof (synthetic), 0 = bona fide (human)."""

    path: Path
    label: int
    system: str


def _label(raw: str, where: str) -> int:
    key = raw.strip().lower()
    if key not in LABELS:
        raise ValueError(f"{where}: label {raw!r} is not one of {sorted(LABELS)}")
    return LABELS[key]


def read_manifest(path: Path, split: str | None = None) -> list[Item]:
    """Rows of a manifest.csv with at least `path,label`; `system`/`split` used when present."""
    items = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: a manifest needs the columns path,label")
        for n, row in enumerate(reader, start=2):
            if split and row.get("split", split) != split:
                continue
            label = _label(row["label"], f"{path}:{n}")
            system = row.get("system") or ("spoof" if label else "bonafide")
            items.append(Item(path.parent / row["path"], label, system))
    return items


def read_folders(root: Path) -> list[Item]:
    """Files under root/bonafide and root/spoof; the first sub-folder names the system."""
    items = []
    for name, label in (("bonafide", 0), ("spoof", 1)):
        base = root / name
        for f in sorted(base.rglob("*")) if base.is_dir() else []:
            if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file():
                rel = f.relative_to(base).parts
                items.append(Item(f, label, rel[0] if len(rel) > 1 else name))
    if not items:
        raise ValueError(f"{root}: no audio under bonafide/ or spoof/")
    return items


def load_items(manifest_or_dir: Path, split: str | None = None) -> list[Item]:
    """A manifest.csv or a folder with bonafide/ and spoof/ sub-folders."""
    if manifest_or_dir.is_dir():
        return read_folders(manifest_or_dir)
    if manifest_or_dir.is_file():
        return read_manifest(manifest_or_dir, split)
    raise FileNotFoundError(str(manifest_or_dir))


def decode(path: Path) -> Audio:
    """Any soundfile- or FFmpeg-readable file as mono float32 at 16 kHz.

    Raises:
        ValueError: The file is missing, unreadable or holds no audio (the message names it).
    """
    try:
        x, rate = sf.read(str(path), dtype="float32", always_2d=True)
        audio = resample(x.mean(axis=1), int(rate), SAMPLE_RATE_HZ)
    except sf.LibsndfileError:
        audio = _decode_av(path)
    if not len(audio):
        raise ValueError(f"{path}: no audio samples")
    return audio


def _decode_av(path: Path) -> Audio:
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
            chunks = [
                out.to_ndarray().reshape(-1)
                for frame in container.decode(stream)
                for out in resampler.resample(frame)
            ]
    except IndexError:
        raise ValueError(f"{path}: no audio stream") from None
    except av.error.FFmpegError as exc:
        raise ValueError(f"{path}: not a readable audio file ({exc.strerror})") from None
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def trim_silence(x: Audio) -> Audio:
    """Cut leading and trailing silence (20 ms frames TRIM_DB below the loudest)."""
    n = SAMPLE_RATE_HZ // 50
    frames = len(x) // n
    if frames < 2:
        return x
    energy = 10 * np.log10(np.mean(x[: frames * n].reshape(frames, n) ** 2, axis=1) + 1e-10)
    voiced = np.flatnonzero(energy > energy.max() - TRIM_DB)
    return x[voiced[0] * n : (voiced[-1] + 1) * n]


def tile(x: Audio, n: int, xfade: int = 160) -> Audio:
    """Repeat a short clip (crossfaded seams) until it has n samples."""
    out = x.astype(np.float32)
    if len(x) <= xfade:
        return np.resize(out, n)
    ramp = np.linspace(0.0, 1.0, xfade, dtype=np.float32)
    while len(out) < n:
        seam = out[-xfade:] * (1 - ramp) + x[:xfade] * ramp
        out = np.concatenate([out[:-xfade], seam, x[xfade:]])
    return out[:n]


def windows_of(x: Audio, n: int, max_windows: int) -> list[Audio]:
    """Non-overlapping n-sample windows from the start; a short clip is tiled to one window."""
    if len(x) < n:
        return [tile(x, n)]
    count = min(len(x) // n, max_windows)
    return [x[i * n : (i + 1) * n] for i in range(count)]


def hop_windows(x: Audio, n: int, hop: int) -> list[Audio]:
    """Every n-sample window from the start, one each `hop` samples, as the service takes them.

    A clip shorter than a window is tiled to one window.
    """
    if len(x) < n:
        return [tile(x, n)]
    return [x[s : s + n] for s in range(0, len(x) - n + 1, hop)]
