"""Rendered training crops: each clip's channel-simulated variants, cached in data/cache."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from training.augment import CROP, render_clip
from training.data import CACHE_DIR, Clip, cached_audio

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variants:
    """Rendered crops: `audio` [M, CROP] int16 (memory-mapped), one row per variant."""

    audio: np.ndarray
    valid: np.ndarray  # untiled samples at the start of each row
    clip: np.ndarray  # index into the clip list
    chain: np.ndarray  # channel chain name per row


def render_all(clips: list[Clip], variants: int, seed: int = 2024, workers: int = 2) -> Variants:
    """Render (or load from cache) `variants` crops of every clip.

    The corpus and data/generated are cached apart, so new generated clips do not force the
    corpus to be rendered again.
    """
    generated = np.array(["data/generated" in str(c.path) for c in clips])
    if not generated.any() or generated.all():
        return _render_part(clips, variants, seed, workers)
    first = int(np.argmax(generated))
    if generated[:first].any() or not generated[first:].all():
        raise ValueError("generated clips must follow the corpus clips")
    a = _render_part(clips[:first], variants, seed, workers)
    b = _render_part(clips[first:], variants, seed + 1, workers)
    return Variants(
        audio=np.concatenate([a.audio, b.audio]),
        valid=np.concatenate([a.valid, b.valid]),
        clip=np.concatenate([a.clip, b.clip + first]),
        chain=np.concatenate([a.chain, b.chain]),
    )


def _render_part(clips: list[Clip], variants: int, seed: int, workers: int) -> Variants:
    key = hashlib.sha1(
        ("\n".join(str(c.path) for c in clips) + f"|{variants}|{seed}|{CROP}").encode()
    ).hexdigest()[:12]
    audio_path = CACHE_DIR / f"variants-{key}.npy"
    meta_path = CACHE_DIR / f"variants-{key}-meta.npz"
    if not meta_path.is_file():
        _render(clips, variants, seed, workers, audio_path, meta_path)
    meta = np.load(meta_path)
    return Variants(
        audio=np.load(audio_path, mmap_mode="r"),
        valid=meta["valid"],
        clip=meta["clip"],
        chain=meta["chain"],
    )


def _render(
    clips: list[Clip], variants: int, seed: int, workers: int, audio_path: Path, meta_path: Path
) -> None:
    pcm = cached_audio(clips)
    rows = len(clips) * variants
    out = np.lib.format.open_memmap(audio_path, mode="w+", dtype=np.int16, shape=(rows, CROP))
    valid = np.zeros(rows, np.int64)
    chain = np.empty(rows, dtype=object)
    jobs = [(p, variants, seed * 100_003 + i) for i, p in enumerate(pcm)]
    with Pool(workers) as pool:
        for i, result in enumerate(pool.imap(render_clip, jobs, chunksize=8)):
            for j, (y, v, name) in enumerate(result):
                out[i * variants + j] = y
                valid[i * variants + j] = v
                chain[i * variants + j] = name
            if i % 200 == 0:
                logger.info("rendered %d/%d clips", i, len(clips))
    out.flush()
    clip_idx = np.repeat(np.arange(len(clips)), variants)
    np.savez(meta_path, valid=valid, clip=clip_idx, chain=chain.astype(str))
