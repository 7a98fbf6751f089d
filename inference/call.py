"""The analysis pipeline: per-participant workers feeding the shared model runtime.

`Pipeline` is the `FrameSink` ingress calls. Per participant a `ParticipantWorker` runs
VAD and the chunker synchronously on each 20 ms frame (no queue inside a call, STYLE.md
11); finished windows go to the `ModelRuntime` with `submit`, which never blocks. Scores
come back through a callback on the loop and are handed to the `ScoreSink` in window order
per participant.

Closing a call flushes every chunker, and the call's `ScoreSink.close_call` is sent only
once the last pending window of that call has been answered (scored or dropped), so
nothing waits and `push` is never blocked. An exception in one participant's worker ends
that call with reason "error"; other calls and the process carry on.

Everything here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from alerts.metrics import Metrics
from alerts.types import CallInfo, ParticipantInfo, ScoreSink, WindowScore
from inference.chunker import Chunker
from inference.config import VadConfig
from inference.runtime import ModelRuntime
from inference.types import SAMPLE_RATE_HZ, AudioFrame, Window
from inference.vad import VadGate

logger = logging.getLogger(__name__)

AUDIO_REPORT_S = 1.0  # audio/speech seconds are reported to the sink in steps of this
SHUTDOWN_TIMEOUT_S = 10.0  # how long aclose waits for pending windows
_PCM_SCALE = 1.0 / 32768.0


def pcm_to_float(pcm: bytes) -> npt.NDArray[np.float32]:
    """s16le PCM to float32 samples in [-1, 1)."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) * np.float32(_PCM_SCALE)


class ParticipantWorker:
    """VAD and chunker of one participant; synchronous, pure, stateful.

    Frames the VAD holds back while deciding whether speech starts (STARTING) are kept as
    a short pre-roll and added to the chunker once speech starts, so onsets are not cut.
    """

    def __init__(self, participant: ParticipantInfo, vad: VadGate, chunker: Chunker) -> None:
        self.participant = participant
        self._vad = vad
        self._chunker = chunker
        self._preroll: deque[AudioFrame] = deque(maxlen=vad.preroll_frames)
        self._in_speech = False
        self._audio_s = 0.0  # not yet reported
        self._speech_s = 0.0
        self._next_index = 0  # the next window index to deliver
        self._ready: dict[int, WindowScore | None] = {}

    def push(self, frame: AudioFrame) -> list[Window]:
        """One 20 ms frame; returns the windows it completes."""
        speech = self._vad.push(frame.pcm)
        self._audio_s += frame.duration_s
        if not speech:
            self._in_speech = False
            self._preroll.append(frame)
            return []
        frames = [frame]
        if not self._in_speech:
            frames = [*self._preroll, frame]
            self._preroll.clear()
            self._in_speech = True
        windows: list[Window] = []
        for f in frames:
            self._speech_s += f.duration_s
            windows += self._chunker.push(pcm_to_float(f.pcm), f.start_s, f.arrival_s)
        return windows

    def flush(self) -> list[Window]:
        """At the end of the call: the final window of unscored speech, if any."""
        return self._chunker.flush()

    def take_audio(self, force: bool = False) -> tuple[float, float] | None:
        """Audio and speech seconds not yet reported, once `AUDIO_REPORT_S` has built up."""
        if self._audio_s <= 0 or (self._audio_s < AUDIO_REPORT_S and not force):
            return None
        report = (self._audio_s, self._speech_s)
        self._audio_s = self._speech_s = 0.0
        return report

    def deliver(self, index: int, score: WindowScore | None) -> list[WindowScore]:
        """Record an answer; return the scores now deliverable in window order.

        A None answer (a dropped window) only advances the order.
        """
        self._ready[index] = score
        out: list[WindowScore] = []
        while self._next_index in self._ready:
            ready = self._ready.pop(self._next_index)
            if ready is not None:
                out.append(ready)
            self._next_index += 1
        return out


@dataclass
class _Call:
    info: CallInfo
    workers: dict[str, ParticipantWorker] = field(default_factory=dict)
    pending: int = 0  # windows submitted and not yet answered
    closing: str | None = None  # the close reason, once close_call was called


class Pipeline:
    """The `FrameSink` of the analysis stage (see the module docstring).

    Args:
        runtime: Shared model runtime (scores windows of every call).
        scores: Where lifecycle and window scores go.
        vad: VAD settings for every participant.
        window_s: Window length (model manifest, or the config override).
        hop_s: Seconds of new speech between windows.
        sample_rate: Rate of the model; frames are always 16 kHz, so it must match.
        metrics: Audio and speech seconds are counted here, by ingress.
    """

    def __init__(
        self,
        *,
        runtime: ModelRuntime,
        scores: ScoreSink,
        vad: VadConfig,
        window_s: float,
        hop_s: float,
        sample_rate: int,
        metrics: Metrics,
    ) -> None:
        if sample_rate != SAMPLE_RATE_HZ:
            raise ValueError(
                f"model sample_rate must be {SAMPLE_RATE_HZ} Hz (the frame rate), got {sample_rate}"
            )
        self._runtime = runtime
        self._scores = scores
        self._vad = vad
        self._window_s = window_s
        self._hop_s = hop_s
        self._metrics = metrics
        self._calls: dict[str, _Call] = {}
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        """Windows submitted to the runtime and not yet answered, over all calls."""
        return self._pending

    def open_call(self, call: CallInfo) -> None:
        """Start a call (FrameSink)."""
        if call.call_id in self._calls:
            logger.warning("call opened twice", extra={"call_id": call.call_id, "stage": "call"})
            return
        self._calls[call.call_id] = _Call(call)
        self._scores.open_call(call)

    def add_participant(self, participant: ParticipantInfo) -> None:
        """Start a participant, or update its label when it exists (FrameSink)."""
        call = self._calls.get(participant.call_id)
        if call is None or call.closing is not None:
            logger.warning(
                "participant %s for a call that is not open",
                participant.participant_id,
                extra={"call_id": participant.call_id, "stage": "call"},
            )
            return
        worker = call.workers.get(participant.participant_id)
        if worker is None:
            call.workers[participant.participant_id] = self._new_worker(participant)
        else:
            worker.participant = participant
        self._scores.add_participant(participant)

    def push(self, frame: AudioFrame) -> None:
        """Handle one frame synchronously (FrameSink); never blocks, never raises."""
        call = self._calls.get(frame.call_id)
        if call is None or call.closing is not None:
            self._metrics.dropped_total.labels("pipeline", "no-call").inc()
            return
        try:
            worker = call.workers.get(frame.participant_id)
            if worker is None:  # ingress skipped add_participant: join with no label
                self.add_participant(ParticipantInfo(frame.call_id, frame.participant_id))
                worker = call.workers[frame.participant_id]
            for window in worker.push(frame):
                self._submit(call, window)
            self._report_audio(call, worker, force=False)
        except Exception:
            logger.exception(
                "worker of participant %s failed",
                frame.participant_id,
                extra={"call_id": frame.call_id, "stage": "call"},
            )
            self.close_call(frame.call_id, "error")

    def close_call(self, call_id: str, reason: str) -> None:
        """End a call (FrameSink): flush, then close it downstream once its windows are in."""
        call = self._calls.get(call_id)
        if call is None or call.closing is not None:
            return
        call.closing = reason
        for worker in call.workers.values():
            try:
                for window in worker.flush():
                    self._submit(call, window)
            except Exception:
                logger.exception("flush failed", extra={"call_id": call_id, "stage": "call"})
                call.closing = "error"
            self._report_audio(call, worker, force=True)
        if call.pending == 0:
            self._finish(call)

    async def drain(self) -> None:
        """Wait until every submitted window has been answered (replay uses it)."""
        await self._idle.wait()

    async def aclose(self) -> None:
        """Close every call with reason "shutdown" and wait (bounded) for their windows."""
        for call_id in list(self._calls):
            self.close_call(call_id, "shutdown")
        try:
            await asyncio.wait_for(self.drain(), SHUTDOWN_TIMEOUT_S)
        except TimeoutError:
            logger.warning("%d windows unanswered at shutdown", self._pending)
        for call in list(self._calls.values()):
            self._finish(call)

    def _new_worker(self, participant: ParticipantInfo) -> ParticipantWorker:
        chunker = Chunker(
            self._window_s,
            self._hop_s,
            SAMPLE_RATE_HZ,
            call_id=participant.call_id,
            participant_id=participant.participant_id,
        )
        return ParticipantWorker(participant, VadGate(self._vad), chunker)

    def _submit(self, call: _Call, window: Window) -> None:
        call.pending += 1
        self._pending += 1
        self._idle.clear()
        try:
            self._runtime.submit(window, self._on_scored)
        except Exception:
            self._answered(call)
            raise

    def _answered(self, call: _Call) -> None:
        call.pending -= 1
        self._pending -= 1
        if self._pending == 0:
            self._idle.set()

    def _on_scored(self, window: Window, score: WindowScore | None) -> None:
        """Runtime callback, on the loop: deliver in order, finish a closing call."""
        call = self._calls.get(window.call_id)
        if call is None:  # finished by a shutdown timeout; the answer is too late
            return
        self._answered(call)
        worker = call.workers.get(window.participant_id)
        try:
            ready = worker.deliver(window.index, score) if worker is not None else []
            if ready:
                self._scores.push_scores(ready)
        finally:
            if call.closing is not None and call.pending == 0:
                self._finish(call)

    def _finish(self, call: _Call) -> None:
        if self._calls.pop(call.info.call_id, None) is None:
            return
        self._pending -= call.pending  # only non-zero after a shutdown timeout
        if self._pending == 0:
            self._idle.set()
        self._scores.close_call(call.info.call_id, call.closing or "shutdown")

    def _report_audio(self, call: _Call, worker: ParticipantWorker, *, force: bool) -> None:
        report = worker.take_audio(force)
        if report is None:
            return
        audio_s, speech_s = report
        ingress = call.info.ingress.value
        self._metrics.audio_seconds_total.labels(ingress).inc(audio_s)
        self._metrics.speech_seconds_total.labels(ingress).inc(speech_s)
        self._scores.add_audio(
            call.info.call_id, worker.participant.participant_id, audio_s, speech_s
        )
