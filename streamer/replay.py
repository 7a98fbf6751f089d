"""Replay ingress: recordings and captures become calls of 20 ms AudioFrames.

A recording (WAV, FLAC, OGG, MP3; any rate; one participant per channel) is one call whose
id is the file path; a capture (pcap/pcapng, see `streamer.pcap`) holds any number of SIP
calls, each with the SIP Call-ID as its id. Every source is normalised here, at the edge,
to 16 kHz mono s16 frames with the same `Resampler` and `FrameAssembler` live ingress
uses, so the pipeline cannot tell a replayed call from a live one (STYLE.md rule 5).

Reading and decoding block, so `ReplayCall.read()` runs on an executor thread; only
`replay_source` runs on the event loop, pushing frames into the `FrameSink` as fast as
the sink allows, or paced at 1x like a live call with `realtime=True`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import Executor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from alerts.types import CallInfo, Ingress, ParticipantInfo
from inference.types import AudioFrame, FrameSink
from streamer.errors import AudioFileError
from streamer.pcap import open_capture
from streamer.replay_source import READ_BLOCK_S, FrameBatches, ReplayCall, ReplaySource
from streamer.resample import FrameAssembler, Resampler

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3"})
CAPTURE_SUFFIXES = frozenset({".pcap", ".pcapng", ".cap"})
SUPPORTED_SUFFIXES = AUDIO_SUFFIXES | CAPTURE_SUFFIXES
# MP3 lengths in headers are estimates; a shortfall under this share is not truncation.
LENGTH_TOLERANCE = 0.01
LENGTH_TOLERANCE_S = 0.1
_CAPTURE_MAGICS = (
    b"\xd4\xc3\xb2\xa1",  # pcap, little-endian, microseconds
    b"\xa1\xb2\xc3\xd4",  # pcap, big-endian, microseconds
    b"\x4d\x3c\xb2\xa1",  # pcap, little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d",  # pcap, big-endian, nanoseconds
    b"\x0a\x0d\x0d\x0a",  # pcapng section header block
)


def iter_inputs(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Expand `paths`: files as given, directories walked for supported suffixes, sorted.

    A file given by name is yielded whatever its suffix (its content decides); a missing
    path is yielded too, so opening it reports the error for that input.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.is_file())
            yield from sorted(p for p in found if p.suffix.lower() in SUPPORTED_SUFFIXES)
        else:
            yield path


def open_source(path: Path) -> ReplaySource:
    """Open a recording or a capture (blocking: headers or the whole capture are read).

    Raises:
        AudioFileError: The file is missing, empty, broken, truncated or unsupported;
            the message names the file.
    """
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    if not magic:
        raise AudioFileError(f"{path}: empty file")
    if magic in _CAPTURE_MAGICS:
        return open_capture(path)
    return open_recording(path)


def open_recording(path: Path) -> ReplaySource:
    """Open an audio file as one call with one participant per channel (blocking).

    Raises:
        AudioFileError: Unreadable, empty or truncated; the message names the file.
    """
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"{path}: not a readable audio file ({exc})") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioFileError(f"{path}: no audio in file")
    if path.suffix.lower() == ".wav":
        _check_wav_complete(path)
    call_id = str(path)
    participants = tuple(
        ParticipantInfo(call_id, f"ch{i}", _channel_label(i, info.channels))
        for i in range(info.channels)
    )
    call = ReplayCall(
        info=CallInfo(call_id, Ingress.REPLAY, ""),
        participants=participants,
        read=lambda: _read_recording(path, call_id, info.channels, int(info.frames)),
    )
    return ReplaySource(path, (call,), info.frames / info.samplerate)


def _channel_label(index: int, channels: int) -> str:
    if channels == 1:
        return "mono"
    if channels == 2:
        return ("left", "right")[index]
    return f"channel {index + 1}"


def _check_wav_complete(path: Path) -> None:
    """Raise when a RIFF/WAVE `data` chunk says more bytes than the file holds.

    libsndfile quietly shortens such files, so a cut-off recording would pass unnoticed.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        header = fh.read(12)
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return  # RF64, WAVEX variants: leave to libsndfile
        offset = 12
        while offset + 8 <= size:
            fh.seek(offset)
            chunk_id, chunk_len = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"data":
                if offset + 8 + chunk_len > size:
                    have = size - offset - 8
                    raise AudioFileError(
                        f"{path}: truncated: data chunk says {chunk_len} bytes, file has {have}"
                    )
                return
            offset += 8 + chunk_len + (chunk_len & 1)


def _read_recording(path: Path, call_id: str, channels: int, frames_declared: int) -> FrameBatches:
    """Yield the recording's AudioFrames, all channels interleaved by media time."""
    total = 0
    rate = 0
    try:
        with sf.SoundFile(str(path)) as f:
            rate = int(f.samplerate)
            resamplers = [Resampler(rate) for _ in range(channels)]
            assemblers = [FrameAssembler(call_id, f"ch{i}") for i in range(channels)]
            block = max(1, int(rate * READ_BLOCK_S))
            while True:
                data = f.read(block, dtype="int16", always_2d=True)
                total += len(data)
                last = len(data) < block
                yield _frame_block(data, resamplers, assemblers, last)
                if last:
                    break
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(f"{path}: broken audio after {total} samples ({exc})") from exc
    shortfall = frames_declared - total
    if shortfall > frames_declared * LENGTH_TOLERANCE + rate * LENGTH_TOLERANCE_S:
        raise AudioFileError(f"{path}: truncated: read {total} of {frames_declared} samples")


def _frame_block(
    data: npt.NDArray[np.int16],
    resamplers: list[Resampler],
    assemblers: list[FrameAssembler],
    last: bool,
) -> list[AudioFrame]:
    """Resample and frame one block of every channel; frames ordered by media time."""
    now = time.monotonic()
    frames: list[AudioFrame] = []
    for ch, (resampler, assembler) in enumerate(zip(resamplers, assemblers, strict=True)):
        pcm16k = resampler.process(np.ascontiguousarray(data[:, ch]), last=last)
        frames.extend(assembler.push(pcm16k, now))
        if last:
            frames.extend(assembler.flush(now))
    frames.sort(key=lambda fr: fr.start_s)
    return frames


class _Pacer:
    """Waits until a media time is due in wall-clock time (1x), from the first call."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._start = clock()

    async def until(self, media_s: float) -> None:
        delay = self._start + media_s - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)


async def replay_source(
    source: ReplaySource,
    sink: FrameSink,
    *,
    realtime: bool,
    executor: Executor | None = None,
    backpressure: Callable[[], Awaitable[None]] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Replay every call of `source` into `sink`; runs on the event loop.

    Each call is opened with its participants, fed its frames, and closed with reason
    "eof" (or "error" when its input breaks, after which the error is raised again).
    Unpaced, calls run one after another as fast as the reader and `backpressure` allow;
    with `realtime`, calls run side by side, each frame pushed when its audio would have
    ended in a live call.

    Args:
        source: From `open_source`.
        sink: Where frames go (the analysis pipeline).
        realtime: Pace at 1x instead of as fast as possible.
        executor: Where blocking reads run; None is the loop's default executor.
        backpressure: Awaited after each batch, e.g. until the pipeline's queues drain,
            so an unpaced replay never outruns (and drops in) the pipeline.
        clock: Monotonic seconds, for pacing.

    Raises:
        AudioFileError: A call's input broke (the other calls of a capture still ran).
    """
    pacer = _Pacer(clock) if realtime else None
    runs = [_replay_call(c, sink, pacer, executor, backpressure) for c in source.calls]
    if pacer is None:
        errors = [await _capture(run) for run in runs]
    else:
        errors = list(await asyncio.gather(*(_capture(run) for run in runs)))
    for error in errors:
        if error is not None:
            raise error


async def _capture(run: Awaitable[None]) -> AudioFileError | None:
    try:
        await run
    except AudioFileError as exc:
        return exc
    return None


_END: list[AudioFrame] = []  # sentinel of the reader thread's `next`


async def _replay_call(
    call: ReplayCall,
    sink: FrameSink,
    pacer: _Pacer | None,
    executor: Executor | None,
    backpressure: Callable[[], Awaitable[None]] | None,
) -> None:
    loop = asyncio.get_running_loop()
    call_id = call.info.call_id
    if pacer is not None:
        await pacer.until(call.offset_s)
    sink.open_call(call.info)
    for participant in call.participants:
        sink.add_participant(participant)
    reason = "error"
    try:
        batches = call.read()
        while (batch := await loop.run_in_executor(executor, next, batches, _END)) is not _END:
            await _push_batch(call, batch, sink, pacer)
            if backpressure is not None:
                await backpressure()
        reason = "eof"
    except AudioFileError:
        logger.warning("replay input broke", extra={"call_id": call_id, "stage": "replay"})
        raise
    finally:
        sink.close_call(call_id, reason)


async def _push_batch(
    call: ReplayCall, batch: list[AudioFrame], sink: FrameSink, pacer: _Pacer | None
) -> None:
    for frame in batch:
        if pacer is not None:
            offset = call.participant_offsets_s.get(frame.participant_id, 0.0)
            await pacer.until(call.offset_s + offset + frame.start_s + frame.duration_s)
        sink.push(frame)
    if pacer is None:
        await asyncio.sleep(0)  # let the pipeline's tasks run between batches
