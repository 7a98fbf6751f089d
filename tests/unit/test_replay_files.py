"""Replay of recordings: files of any format and rate become 16 kHz 20 ms frames per channel."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from inference.types import FRAME_BYTES, AudioFrame
from streamer.errors import AudioFileError
from streamer.replay import iter_inputs, open_source, replay_source
from tests.fakes.sinks import FakeFrameSink

pytestmark = pytest.mark.unit


def tone(freq_hz: float, rate_hz: int, seconds: float, amp: float = 0.5) -> npt.NDArray[np.float64]:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return amp * np.sin(2 * np.pi * freq_hz * t)


def dominant_hz(frames: list[AudioFrame]) -> float:
    pcm = np.frombuffer(b"".join(f.pcm for f in frames), "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / 16000)[int(np.argmax(spectrum))])


async def replay(path: Path, *, realtime: bool = False) -> FakeFrameSink:
    sink = FakeFrameSink()
    await replay_source(open_source(path), sink, realtime=realtime)
    return sink


def assert_frames_ok(frames: list[AudioFrame]) -> None:
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert all(len(f.pcm) == FRAME_BYTES for f in frames)
    assert [round(f.start_s, 6) for f in frames] == [round(i * 0.02, 6) for i in range(len(frames))]


async def test_mono_wav_at_8khz_is_resampled_to_16khz_frames(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    sf.write(path, tone(440, 8000, 1.0), 8000, subtype="PCM_16")
    sink = await replay(path)
    call_id = str(path)
    assert sink.calls[call_id].ingress == "replay"
    assert list(sink.participants) == [(call_id, "ch0")]
    frames = sink.frames_of(call_id, "ch0")
    assert len(frames) == 50
    assert_frames_ok(frames)
    assert abs(dominant_hz(frames) - 440) < 20
    assert sink.closed == {call_id: "eof"}


async def test_stereo_flac_at_48khz_gives_one_participant_per_channel(tmp_path: Path) -> None:
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([tone(300, 48000, 2.0), tone(1200, 48000, 2.0)], axis=1), 48000)
    sink = await replay(path)
    call_id = str(path)
    labels = {pid: p.label for (_, pid), p in sink.participants.items()}
    assert labels == {"ch0": "left", "ch1": "right"}
    left, right = sink.frames_of(call_id, "ch0"), sink.frames_of(call_id, "ch1")
    assert len(left) == len(right) == 100
    assert_frames_ok(left)
    assert abs(dominant_hz(left) - 300) < 20
    assert abs(dominant_hz(right) - 1200) < 20


@pytest.mark.parametrize(("suffix", "fmt"), [(".ogg", "OGG"), (".mp3", "MP3")])
async def test_compressed_formats_are_read(tmp_path: Path, suffix: str, fmt: str) -> None:
    path = tmp_path / f"speech{suffix}"
    sf.write(path, tone(500, 44100, 1.5), 44100, format=fmt)
    sink = await replay(path)
    frames = sink.frames_of(str(path), "ch0")
    assert 70 <= len(frames) <= 80  # codec priming/padding may add a few frames
    assert_frames_ok(frames)
    assert abs(dominant_hz(frames) - 500) < 20


async def test_frames_of_channels_interleave_by_media_time(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, np.stack([tone(200, 16000, 3.0)] * 2, axis=1), 16000)
    sink = await replay(path)
    starts = [f.start_s for f in sink.frames]
    # batches are read a second at a time; no channel runs more than a batch ahead
    assert max(abs(a - b) for a, b in zip(starts, sorted(starts), strict=True)) <= 1.0
    assert starts[:2] == [0.0, 0.0]


def test_empty_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty.wav: empty file"):
        open_source(path)


def test_wav_without_samples_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(0), 8000)
    with pytest.raises(AudioFileError, match="silent.wav: no audio"):
        open_source(path)


def test_garbage_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp3"
    path.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioFileError, match="noise.mp3"):
        open_source(path)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="nothere.wav: cannot open"):
        open_source(tmp_path / "nothere.wav")


def test_truncated_wav_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    sf.write(path, tone(440, 8000, 1.0), 8000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioFileError, match="cut.wav: truncated"):
        open_source(path)


async def test_truncated_flac_fails_after_replaying_what_was_readable(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    sf.write(path, tone(440, 48000, 3.0) + np.random.default_rng(1).normal(0, 0.1, 144000), 48000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    sink = FakeFrameSink()
    source = open_source(path)
    with pytest.raises(AudioFileError, match="cut.flac"):
        await replay_source(source, sink, realtime=False)
    assert sink.closed == {str(path): "error"}


async def test_realtime_paces_frames_at_1x(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    sf.write(path, tone(440, 16000, 0.4), 16000)
    start = time.monotonic()
    sink = await replay(path, realtime=True)
    elapsed = time.monotonic() - start
    assert len(sink.frames) == 20
    assert 0.37 <= elapsed < 1.5


async def test_unpaced_replay_is_faster_than_real_time(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, tone(440, 16000, 5.0), 16000)
    start = time.monotonic()
    sink = await replay(path)
    assert len(sink.frames) == 250
    assert time.monotonic() - start < 2.5


async def test_backpressure_is_awaited_between_batches(tmp_path: Path) -> None:
    path = tmp_path / "three.wav"
    sf.write(path, tone(440, 8000, 3.0), 8000)
    sink = FakeFrameSink()
    seen: list[int] = []

    async def wait() -> None:
        seen.append(len(sink.frames))

    await replay_source(open_source(path), sink, realtime=False, backpressure=wait)
    assert len(seen) >= 3
    assert seen == sorted(seen)
    assert seen[-1] == 150


def test_iter_inputs_walks_directories_for_supported_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("a.wav", "b/c.FLAC", "b/d.pcap", "b/notes.txt", "e.mp3"):
        (tmp_path / name).write_bytes(b"x")
    given = tmp_path / "given.bin"
    found = list(iter_inputs([tmp_path, given]))
    assert found == [
        tmp_path / "a.wav",
        tmp_path / "b/c.FLAC",
        tmp_path / "b/d.pcap",
        tmp_path / "e.mp3",
        given,
    ]
