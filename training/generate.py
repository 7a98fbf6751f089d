"""Generate extra spoof training data: offline TTS voices and copy-synthesised real clips.

Run as ``python -m training.generate [--out data/generated] [--seed 0] [--max-clips N]
[--only NAME...] [--split SPLIT]``.

Writes 16 kHz mono 16-bit FLAC clips under ``OUT/spoof/<source>/<system>/`` and appends one
row per finished clip to ``OUT/manifest.csv`` (the corpus manifest's columns, `path` relative
to OUT), flushing each row so a partial run is usable. Re-running skips clips already in the
manifest, so an interrupted run resumes. Every clip's randomness comes from
``(seed, crc32(job key))``, so a clip does not depend on job order or worker count.

Job order: round 1 is all TTS clips plus every bonafide corpus clip through the priority
vocoders (WORLD, Griffin-Lim, HiFi-GAN), shuffled together; round 2 is the other vocoders,
shuffled. A run cut short therefore still covers every source in proportion.

Copy-synthesised clips keep the real clip's `speaker` and `split` (speaker-disjoint splits
stay disjoint) and name the real clip's corpus path as `origin`. TTS clips get
`split = dev` for about one voice in five (by a hash of the voice id), `train` otherwise.
"""

from __future__ import annotations

import argparse
import csv
import logging
import multiprocessing
import os
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from training.copysynth import VOCODERS
from training.data import COPYSYNTH_SOURCE
from training.gen_tts import ENGINES, LICENSES, SAMPLE_RATE_HZ

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = (
    "path",
    "label",
    "source",
    "system",
    "speaker",
    "duration_s",
    "origin",
    "license",
    "split",
)
TTS_CLIPS = {
    "piper": 300,
    "kokoro": 200,
    "hibari": 150,
    "espeak-ng": 400,
    "flite": 250,
    "festival": 200,
}
PRIORITY_VOCODERS = ("world", "griffinlim", "hifigan")
MIN_CLIP_S = 1.0
TTS_RMS_DBFS = (-32.0, -18.0)
TTS_NOISE_SNR_DB = (40.0, 65.0)  # white noise floor under TTS output, relative to its RMS
PEAK_LIMIT = 0.99
WORKERS = 2
DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
COPYSYNTH_LICENSE_NOTE = "derived from corpus clip; licence of origin applies"


@dataclass(frozen=True, slots=True)
class Job:
    """One clip to make: a TTS engine call or one real clip through one vocoder."""

    kind: str  # "tts" or "copysynth"
    name: str  # engine (manifest source) or vocoder (manifest system)
    key: str  # unique, stable: seeds the clip's randomness
    path: str  # output path relative to the output folder
    corpus_row: tuple[tuple[str, str], ...] = ()


def job_rng(seed: int, key: str) -> np.random.Generator:
    """The clip's own generator, from the global seed and the job key."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _bonafide_rows(corpus_dir: Path) -> list[dict[str, str]]:
    with (corpus_dir / "manifest.csv").open(newline="") as f:
        return [row for row in csv.DictReader(f) if row["label"] == "bonafide"]


def _copysynth_jobs(rows: list[dict[str, str]], vocoders: Iterable[str]) -> list[Job]:
    jobs = []
    for vocoder in vocoders:
        for row in rows:
            stem = row["path"].removeprefix("bonafide/").removesuffix(".flac").replace("/", "__")
            key = f"copysynth/{vocoder}/{stem}"
            jobs.append(Job("copysynth", vocoder, key, f"spoof/{key}.flac", tuple(row.items())))
    return jobs


def plan_jobs(corpus_dir: Path, seed: int) -> list[Job]:
    """All jobs in run order (see the module docstring), deterministic for a seed."""
    rows = _bonafide_rows(corpus_dir) if (corpus_dir / "manifest.csv").exists() else []
    tts = [
        Job("tts", engine, f"{engine}/{engine}-{i:04d}", f"spoof/{engine}/{engine}-{i:04d}.flac")
        for engine, count in TTS_CLIPS.items()
        for i in range(count)
    ]
    first = tts + _copysynth_jobs(rows, PRIORITY_VOCODERS)
    second = _copysynth_jobs(rows, [v for v in VOCODERS if v not in PRIORITY_VOCODERS])
    rng = np.random.default_rng(seed)
    return [first[i] for i in rng.permutation(len(first))] + [
        second[i] for i in rng.permutation(len(second))
    ]


def _set_level(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add a faint noise floor, scale to a random RMS level, limit peaks to PEAK_LIMIT.

    Engines such as espeak-ng emit exact digital silence between words; real recordings
    (most of them) never do, so a noise floor keeps zero-valued samples from marking TTS.
    """
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) + 1e-10
    noise_rms = rms * 10 ** (-rng.uniform(*TTS_NOISE_SNR_DB) / 20)
    audio = audio + noise_rms * rng.standard_normal(len(audio))
    out = audio * (10 ** (rng.uniform(*TTS_RMS_DBFS) / 20) / rms)
    peak = float(np.max(np.abs(out)))
    return (out * (PEAK_LIMIT / peak) if peak > PEAK_LIMIT else out).astype(np.float32)


def _tts_clip(job: Job, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, str]]:
    utt = ENGINES[job.name](rng)
    split = "dev" if zlib.crc32(utt.speaker.encode()) % 5 == 0 else "train"
    fields = {"source": job.name, "system": utt.system, "speaker": utt.speaker}
    fields |= {"origin": utt.origin, "license": LICENSES[job.name], "split": split}
    return _set_level(utt.audio, rng), fields


def _copysynth_clip(
    job: Job, rng: np.random.Generator, corpus_dir: Path
) -> tuple[np.ndarray, dict[str, str]]:
    row = dict(job.corpus_row)
    audio, sr = sf.read(corpus_dir / row["path"], dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if sr != SAMPLE_RATE_HZ:
        mono = soxr.resample(mono, sr, SAMPLE_RATE_HZ, "HQ").astype(np.float32)
    fields = {"source": COPYSYNTH_SOURCE, "system": job.name, "speaker": row["speaker"]}
    fields |= {"origin": row["path"], "split": row["split"]}
    fields["license"] = f"{row['license']} ({COPYSYNTH_LICENSE_NOTE})"
    return VOCODERS[job.name](mono, SAMPLE_RATE_HZ, rng), fields


def run_job(job: Job, out_dir: Path, corpus_dir: Path, seed: int) -> dict[str, str] | None:
    """Make one clip, write its FLAC, and return its manifest row (None if it failed).

    Runs in a worker process. Failures are logged and skipped, never raised, so one bad
    text or clip cannot stop the run.
    """
    rng = job_rng(seed, job.key)
    try:
        if job.kind == "tts":
            audio, fields = _tts_clip(job, rng)
        else:
            audio, fields = _copysynth_clip(job, rng, corpus_dir)
    except Exception:
        logger.exception("job %s failed", job.key, extra={"stage": "generate"})
        return None
    duration_s = len(audio) / SAMPLE_RATE_HZ
    if duration_s < MIN_CLIP_S or not np.isfinite(audio).all() or not np.any(audio):
        logger.warning("job %s gave unusable audio (%.2f s)", job.key, duration_s)
        return None
    target = out_dir / job.path
    target.parent.mkdir(parents=True, exist_ok=True)
    partial_path = target.with_suffix(".part.flac")
    sf.write(partial_path, audio, SAMPLE_RATE_HZ, subtype="PCM_16", format="FLAC")
    partial_path.replace(target)
    return {"path": job.path, "label": "spoof", "duration_s": f"{duration_s:.3f}", **fields}


def pending_jobs(
    jobs: list[Job], done: set[str], only: list[str] | None, split: str | None
) -> list[Job]:
    """The jobs not `done` yet, of the `only` engines or vocoders, copying `split` clips."""
    return [
        job
        for job in jobs
        if job.path not in done
        and (not only or job.name in only)
        and (not split or dict(job.corpus_row).get("split", split) == split)
    ]


def _done_paths(manifest: Path) -> set[str]:
    if not manifest.exists():
        return set()
    with manifest.open(newline="") as f:
        return {row["path"] for row in csv.DictReader(f)}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("data/generated"))
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-clips", type=int, default=None, help="stop after N new clips")
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="make only these TTS engines or vocoders"
    )
    parser.add_argument(
        "--split",
        help="copy-synthesis only of the corpus clips of this split (the export's check of "
        "copies against their originals uses the dev split's)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Plan, skip what the manifest already has, and make the rest with a process pool."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = args.out / "manifest.csv"
    done = _done_paths(manifest)
    pending = pending_jobs(plan_jobs(args.corpus, args.seed), done, args.only, args.split)
    pending = pending[: args.max_clips] if args.max_clips is not None else pending
    logger.info("%d clips done, %d to make", len(done), len(pending))
    work = partial(run_job, out_dir=args.out, corpus_dir=args.corpus, seed=args.seed)
    new_file = not manifest.exists()
    with manifest.open("a", newline="") as f, multiprocessing.Pool(args.workers) as pool:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        if new_file:
            writer.writeheader()
        start, made = time.monotonic(), 0
        for index, row in enumerate(pool.imap_unordered(work, pending, chunksize=1), 1):
            if row is not None:
                writer.writerow(row)
                f.flush()
                made += 1
            if index % 50 == 0:
                logger.info(
                    "%d/%d jobs, %d clips, %.0f s",
                    index,
                    len(pending),
                    made,
                    time.monotonic() - start,
                )
    logger.info("finished: %d new clips in %s", made, manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
