"""Normalise ingress audio: resample to 16 kHz, then cut exact 20 ms `AudioFrame`s.

Both classes are synchronous, stateful and keep no reference to the loop; one of each per
participant. They run on the event loop thread (a 20 ms packet costs a few microseconds).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

from inference.types import FRAME_BYTES, FRAME_MS, SAMPLE_RATE_HZ, AudioFrame

# soxr "HQ" keeps the band below 4 kHz clean (the model must not see resampling artefacts).
# It works in blocks: output comes in bursts of about 100 ms, so it adds that much latency;
# `process(..., last=True)` drains the tail. Output is delay-compensated (sample 0 in is
# sample 0 out), so media time is not shifted. int16 output is dithered by libsoxr, so
# the same input can differ by ±1 LSB between runs.
RESAMPLE_QUALITY = "HQ"
FRAME_S = FRAME_MS / 1000


def _check_int16(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"expected 1-D int16 samples, got {pcm.dtype} shape {pcm.shape}")
    return pcm


class Resampler:
    """Streaming mono int16 resampler; keeps the filter state between calls.

    Args:
        in_rate_hz: Rate of the audio pushed in (e.g. 8000 for G.711).
        out_rate_hz: Rate of the audio returned; the model's 16000 by default.
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int = SAMPLE_RATE_HZ) -> None:
        if in_rate_hz <= 0 or out_rate_hz <= 0:
            raise ValueError(f"rates must be positive, got {in_rate_hz} -> {out_rate_hz} Hz")
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._stream = self._new_stream()

    def _new_stream(self) -> soxr.ResampleStream | None:
        if self.in_rate_hz == self.out_rate_hz:
            return None
        return soxr.ResampleStream(
            self.in_rate_hz, self.out_rate_hz, 1, dtype="int16", quality=RESAMPLE_QUALITY
        )

    def process(self, pcm: npt.NDArray[np.int16], last: bool = False) -> npt.NDArray[np.int16]:
        """Resample the next piece of the stream.

        Args:
            pcm: 1-D int16 samples at `in_rate_hz`, any length (also 0).
            last: End of stream: return everything still held in the filter. The resampler
                then starts afresh for the next call.

        Returns:
            1-D int16 samples at `out_rate_hz`; may be empty while the filter fills up.

        Raises:
            ValueError: `pcm` is not 1-D int16.
        """
        _check_int16(pcm)
        if self._stream is None:
            return pcm
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(pcm, last=last)
        if last:  # soxr refuses input after the last chunk: start a fresh filter
            self._stream = self._new_stream()
        return out


class FrameAssembler:
    """Cuts one participant's 16 kHz int16 audio into exact 20 ms `AudioFrame`s.

    Frames are numbered from 0 and `start_s = seq * 0.02`, so media time counts samples
    pushed, not wall-clock time: ingress fills gaps with silence before pushing.

    Args:
        call_id: Call the frames belong to.
        participant_id: Participant the frames belong to.
    """

    def __init__(self, call_id: str, participant_id: str) -> None:
        self.call_id = call_id
        self.participant_id = participant_id
        self._seq = 0
        self._buffer = bytearray()

    @property
    def next_seq(self) -> int:
        """Sequence number of the next frame; equals the frames emitted so far."""
        return self._seq

    @property
    def pending_samples(self) -> int:
        """Samples held back until a frame is full."""
        return len(self._buffer) // 2

    def push(self, pcm16k: npt.NDArray[np.int16], arrival_s: float) -> list[AudioFrame]:
        """Add audio; return every frame it completes.

        Args:
            pcm16k: 1-D int16 samples at 16 kHz, any length.
            arrival_s: `time.monotonic()` of the newest packet in `pcm16k`.

        Returns:
            Complete 20 ms frames in order (possibly none).

        Raises:
            ValueError: `pcm16k` is not 1-D int16.
        """
        _check_int16(pcm16k)
        self._buffer += pcm16k.astype("<i2", copy=False).tobytes()
        return self._cut(arrival_s)

    def flush(self, arrival_s: float) -> list[AudioFrame]:
        """Emit the held tail as one last frame, padded with zeros (none if nothing waits)."""
        if self._buffer:
            self._buffer += bytes(FRAME_BYTES - len(self._buffer))
        return self._cut(arrival_s)

    def _cut(self, arrival_s: float) -> list[AudioFrame]:
        count = len(self._buffer) // FRAME_BYTES
        if not count:
            return []
        view = bytes(self._buffer[: count * FRAME_BYTES])
        del self._buffer[: count * FRAME_BYTES]
        frames = []
        for i in range(count):
            seq = self._seq + i
            frames.append(
                AudioFrame(
                    call_id=self.call_id,
                    participant_id=self.participant_id,
                    seq=seq,
                    pcm=view[i * FRAME_BYTES : (i + 1) * FRAME_BYTES],
                    start_s=seq * FRAME_S,
                    arrival_s=arrival_s,
                )
            )
        self._seq += count
        return frames
