"""Clips of the labelled corpora: manifest rows, decoded audio cached as int16 in data/cache."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from inference.evaldata import decode, trim_silence

CORPUS_DIRS = (Path("/work/shared/corpus"), Path("../shared/corpus"))
GENERATED_DIR = Path("data/generated")
COPYSYNTH_SOURCE = "copysynth"  # manifest `source` of copy-synthesised clips
CACHE_DIR = Path("data/cache")

# Generator families for leave-one-family-out validation (spoof `source` -> family).
FAMILIES = {
    "edge_tts_samples": "commercial-tts",
    "mimic3_voices": "vits-tts",
    "vits_demo": "acoustic+vocoder",
    "glowtts_demo": "acoustic+vocoder",
    "gradtts_demo": "acoustic+vocoder",
    "styletts2_demo": "acoustic+vocoder",
    "fastspeech2_demo": "acoustic+vocoder",
    "algan_vc_converted": "voice-conversion",
    "valle_demo": "codec-lm",
    "naturalspeech2_demo": "codec-lm",
    "naturalspeech3_demo": "codec-lm",
    "ns3_codec_demo": "codec-lm",
    "hifigan_demo": "vocoder",
    "bigvgan_demo": "vocoder",
    "diffwave_demo": "vocoder",
    "wavegrad_demo": "vocoder",
    "priorgrad_demo": "vocoder",
}


# Human recording sources for leave-one-human-source-out validation (bonafide `source` ->
# group): a detector that learnt what the training recordings sound like, rather than what
# synthesis leaves behind, raises false alarms on a recording setup it has not heard.
HUMAN_SOURCES = {
    "resemblyzer": "librispeech",
    "fsdd_digits": "fsdd-digits",
    "pyannote": "ami-meetings",
    "pyannote_windows": "ami-meetings",
    "algan_vc_data": "self-recorded",
    "valle_demo": "valle-demo-pages",
}


# The corpus split put LJ Speech (one voice, most research demo pages: ground truth and
# fakes) wholly on the dev side, so no training run would see a vocoder applied to a voice
# it knows. These speakers move to the training side; "dev" below means the rest of the
# corpus's dev split, still speaker-disjoint from training.
MOVED_TO_TRAIN = frozenset({"ljspeech-LJ"})


def _group_of(human_source: str) -> str:
    """The recording group of a human corpus source (HUMAN_SOURCES, else the source)."""
    return HUMAN_SOURCES.get(human_source, human_source)


@dataclass(frozen=True, slots=True)
class Clip:
    """One labelled recording (a manifest row) and where its audio lives."""

    path: Path
    label: int  # 1 = spoof, 0 = bonafide
    source: str
    system: str
    speaker: str
    split: str
    origin: str = ""  # manifest `origin`; a copy-synthesised clip's names the real clip it copies

    @property
    def fold(self) -> str:
        """'train' or 'dev' after moving MOVED_TO_TRAIN speakers to the training side."""
        return "train" if self.speaker in MOVED_TO_TRAIN else self.split

    @property
    def generated(self) -> bool:
        """True for clips of data/generated (not part of the shared corpus)."""
        return GENERATED_DIR.name in self.path.parts

    @property
    def human_source(self) -> str:
        """Recording group of a human clip (HUMAN_SOURCES, else its source); '' for spoof."""
        if self.label:
            return ""
        return _group_of(self.source)

    @property
    def recording_group(self) -> str:
        """Human recording group whose recording this clip is ('' for other spoof clips).

        A human clip's own group; for a copy-synthesised clip, its original's (the same
        recording chain, re-synthesised).
        """
        if not self.label:
            return self.human_source
        if self.source == COPYSYNTH_SOURCE and self.origin.startswith("bonafide/"):
            return _group_of(self.origin.split("/")[1])
        return ""

    @property
    def family(self) -> str:
        """Generator family of a spoof clip (its source for unknown ones); 'human' otherwise."""
        if not self.label:
            return "human"
        return FAMILIES.get(self.source, self.source)


def find_corpus() -> Path:
    """The shared corpus folder; `FileNotFoundError` when absent."""
    for d in CORPUS_DIRS:
        if (d / "manifest.csv").is_file():
            return d
    raise FileNotFoundError("corpus manifest.csv not found in " + ", ".join(map(str, CORPUS_DIRS)))


def read_manifest(manifest: Path, root: Path | None = None) -> list[Clip]:
    """Rows of a manifest.csv (`path,label` + optional columns), paths under `root`."""
    root = manifest.parent if root is None else root
    clips = []
    with manifest.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if not row.get("path") or row.get("label") not in ("bonafide", "spoof"):
                continue  # a partly written last row of a manifest still being generated
            clips.append(
                Clip(
                    path=root / row["path"],
                    label=1 if row["label"].strip().lower() == "spoof" else 0,
                    source=row.get("source") or "unknown",
                    system=row.get("system") or row.get("source") or "unknown",
                    speaker=row.get("speaker") or row["path"],
                    split=row.get("split") or "train",
                    origin=row.get("origin") or "",
                )
            )
    return clips


def all_clips(use_generated: bool = True) -> list[Clip]:
    """The corpus plus data/generated (when its manifest exists and `use_generated`).

    The generated manifest is read through a snapshot (data/cache/generated-manifest.csv,
    taken on first use), so runs agree while the generator is still appending.
    """
    clips = read_manifest(find_corpus() / "manifest.csv")
    gen = GENERATED_DIR / "manifest.csv"
    snapshot = CACHE_DIR / "generated-manifest.csv"
    if use_generated and gen.is_file():
        if not snapshot.is_file():
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            snapshot.write_bytes(gen.read_bytes())
        clips += [c for c in read_manifest(snapshot, GENERATED_DIR) if c.path.is_file()]
    return clips


def tts_clips(engines: list[str], per_engine: int) -> list[Clip]:
    """The first `per_engine` clips (by path) of each TTS engine of data/generated.

    They join the training fold whatever their manifest split: no held-out figure uses
    generated clips, so their split only decided which runs of `--generated` saw them.
    """
    manifest = GENERATED_DIR / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: make data generates the TTS clips")
    found = [c for c in read_manifest(manifest) if c.path.is_file()]
    chosen = []
    for engine in engines:
        clips = sorted((c for c in found if c.source == engine), key=lambda c: str(c.path))
        if not clips:
            raise ValueError(f"no clips of TTS engine {engine!r} in {manifest}")
        chosen += [replace(c, split="train") for c in clips[:per_engine]]
    return chosen


def cached_audio(clips: list[Clip]) -> list[np.ndarray]:
    """Trimmed 16 kHz audio of every clip as int16, decoded once into data/cache."""
    key = hashlib.sha1("\n".join(str(c.path) for c in clips).encode()).hexdigest()[:12]
    cache = CACHE_DIR / f"audio-{key}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            offsets, allpcm = data["offsets"], data["pcm"]
        return [allpcm[offsets[i] : offsets[i + 1]] for i in range(len(clips))]
    pcm = [(np.clip(trim_silence(decode(c.path)), -1, 1) * 32767).astype(np.int16) for c in clips]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pcm])])
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(cache, pcm=np.concatenate(pcm), offsets=offsets)
    return pcm
