"""What a replay input is made of: its calls, and how their frames are read.

Shared by the recording reader (`streamer.replay`) and the capture reader
(`streamer.pcap`), so neither has to import the other's internals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from alerts.types import CallInfo, ParticipantInfo
from inference.types import AudioFrame
from streamer.resample import FrameAssembler, Resampler

READ_BLOCK_S = 1.0  # audio read, resampled and framed per step of the reader thread

FrameBatches = Iterator[list[AudioFrame]]


@dataclass(frozen=True, slots=True)
class ReplayCall:
    """One call of a replay source.

    Attributes:
        info: The call (id, ingress `replay`, line).
        participants: Its participants, in the order they are added to the sink.
        read: Blocking: yields the call's frames in batches of about `READ_BLOCK_S`, in
            `seq` order per participant; raises `AudioFileError` when the input breaks.
            Run it on an executor thread.
        offset_s: Start of the call, in seconds since the start of its source.
        participant_offsets_s: Start of each participant's audio after the call's start.
    """

    info: CallInfo
    participants: tuple[ParticipantInfo, ...]
    read: Callable[[], FrameBatches]
    offset_s: float = 0.0
    participant_offsets_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReplaySource:
    """One input file: a recording (one call) or a capture (any number of calls).

    Attributes:
        path: The file.
        calls: Its calls, by start time.
        duration_s: Seconds of media from the first call's start to the last one's end.
    """

    path: Path
    calls: tuple[ReplayCall, ...]
    duration_s: float


def pcm_batches(
    call_id: str, tracks: dict[str, npt.NDArray[np.int16]], rate_hz: int
) -> FrameBatches:
    """Yield frames of whole decoded tracks (participant id -> PCM at `rate_hz`).

    Used for captures, whose RTP is decoded, reordered and gap-filled before framing.
    """
    block = max(1, int(rate_hz * READ_BLOCK_S))
    resamplers = {pid: Resampler(rate_hz) for pid in tracks}
    assemblers = {pid: FrameAssembler(call_id, pid) for pid in tracks}
    longest = max((len(pcm) for pcm in tracks.values()), default=0)
    for start in range(0, max(longest, 1), block):
        now = time.monotonic()
        frames: list[AudioFrame] = []
        for pid, pcm in tracks.items():
            if start >= len(pcm) and start > 0:
                continue
            last = start + block >= len(pcm)
            pcm16k = resamplers[pid].process(pcm[start : start + block], last=last)
            frames.extend(assemblers[pid].push(pcm16k, now))
            if last:
                frames.extend(assemblers[pid].flush(now))
        frames.sort(key=lambda fr: fr.start_s)
        yield frames
