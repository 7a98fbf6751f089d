"""Copy-synthesis vocoders and the generator's job plan, on constructed signals."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from training.copysynth import VOCODERS, mel_filterbank
from training.generate import (
    MANIFEST_COLUMNS,
    PRIORITY_VOCODERS,
    job_rng,
    pending_jobs,
    plan_jobs,
)

pytestmark = pytest.mark.unit

SR = 16_000


def _harmonic_speechlike(seconds: float = 1.0) -> np.ndarray:
    """A gliding 120-180 Hz harmonic tone with syllable-rate amplitude modulation."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 150 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    tone = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    rng = np.random.default_rng(1)
    return (0.1 * tone * envelope + 1e-3 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("name", sorted(VOCODERS))
def test_vocoder_output_is_same_length_finite_and_loudness_matched(name: str) -> None:
    x = _harmonic_speechlike()
    y = VOCODERS[name](x, SR, np.random.default_rng(0))
    assert y.shape == x.shape
    assert y.dtype == np.float32
    assert np.isfinite(y).all()
    rms_in, rms_out = np.sqrt(np.mean(x**2)), np.sqrt(np.mean(y**2))
    assert rms_out == pytest.approx(rms_in, rel=0.05)
    assert np.max(np.abs(y)) <= 0.99 + 1e-6
    assert not np.allclose(y, x, atol=1e-3), "a vocoder must change the waveform"


@pytest.mark.parametrize("name", ["world", "griffinlim", "hifigan"])
def test_vocoder_keeps_the_pitch(name: str) -> None:
    t = np.arange(SR) / SR
    x = 0.2 * np.sum([np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, 8)], axis=0)
    x = x.astype(np.float32)
    y = VOCODERS[name](x, SR, np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(y[SR // 4 : 3 * SR // 4] * np.hanning(SR // 2)))
    peak_hz = np.argmax(spectrum) * SR / (SR // 2)
    assert peak_hz == pytest.approx(200, abs=10)


def test_mel_filterbank_covers_the_band() -> None:
    bank = mel_filterbank(SR, n_fft=512, n_mels=80)
    assert bank.shape == (80, 257)
    assert (bank >= 0).all()
    assert (bank.sum(axis=0)[2:-2] > 0).all()


def _write_corpus_manifest(folder: Path, rows: list[tuple[str, str]]) -> None:
    """A corpus manifest.csv with one row per (label, split); other columns "x"."""
    with (folder / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for i, (label, split) in enumerate(rows):
            row = dict.fromkeys(MANIFEST_COLUMNS, "x")
            writer.writerow(row | {"path": f"{label}/s/c{i}.flac", "label": label, "split": split})


def test_job_plan_is_deterministic_and_keeps_real_speakers(tmp_path: Path) -> None:
    _write_corpus_manifest(tmp_path, [("bonafide", "x"), ("spoof", "x"), ("bonafide", "x")])
    first, again = plan_jobs(tmp_path, seed=3), plan_jobs(tmp_path, seed=3)
    assert [j.key for j in first] == [j.key for j in again]
    assert [j.key for j in plan_jobs(tmp_path, seed=4)] != [j.key for j in first]
    copies = [j for j in first if j.kind == "copysynth"]
    assert len(copies) == 2 * len(VOCODERS)  # the two bonafide rows, never the spoof one
    assert len({j.path for j in first}) == len(first)
    seen_later = {j.name for j in first[len(first) - len(copies) // 3 :]}
    assert not seen_later & set(PRIORITY_VOCODERS)
    a = job_rng(0, "k").random(3)
    assert np.array_equal(a, job_rng(0, "k").random(3))


def test_tts_level_fills_digital_silence_and_stays_in_range() -> None:
    from training.generate import TTS_RMS_DBFS, _set_level

    speech = np.concatenate([np.zeros(SR // 2), _harmonic_speechlike(), np.zeros(SR // 2)])
    out = _set_level(speech.astype(np.float32), np.random.default_rng(5))
    assert out.shape == speech.shape
    assert np.count_nonzero(out[: SR // 2]) == SR // 2
    level_db = 20 * np.log10(np.sqrt(np.mean(out.astype(np.float64) ** 2)))
    assert TTS_RMS_DBFS[0] - 0.5 <= level_db <= TTS_RMS_DBFS[1] + 0.5
    assert np.max(np.abs(out)) <= 0.99 + 1e-6


def test_pending_jobs_filter_by_vocoder_split_and_what_is_done(tmp_path: Path) -> None:
    _write_corpus_manifest(tmp_path, [("bonafide", s) for s in ("train", "dev", "dev")])
    jobs = plan_jobs(tmp_path, seed=0)
    done = {"spoof/copysynth/world/s__c1.flac"}
    pending = pending_jobs(jobs, done, ["world", "piper"], "dev")
    assert sorted(j.path for j in pending if j.kind == "copysynth") == [
        "spoof/copysynth/world/s__c2.flac"
    ]
    assert {j.name for j in pending if j.kind == "tts"} == {"piper"}  # TTS has no split
    assert len(pending_jobs(jobs, set(), None, None)) == len(jobs)
