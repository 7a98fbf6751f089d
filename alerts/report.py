"""Outputs of `clonewatch replay`: summary lines, JSON lines, per-window CSV timelines.

`ReplayRecorder` watches a replay from two seams: it is a `ScoreSink` (put it beside the
verdict board with `ScoreTee`, so it sees every window score, not the rate-limited
`participant.score` events) and an event-bus listener (`on_event`, for verdict changes
and alerts). `file_report` then folds what it saw of one input file's calls into a
`FileReport`, which renders the terminal summary, the `--json` line of DESIGN.md
(`{"file", "duration_s", "speech_s", "participants": [{"id", "verdict", "max_score",
"mean_score", "first_alert_s"}]}`) and the `--timeline` CSV; `alerts.report_plot` draws it.

Everything here runs on the event loop, except the file writers, which block (call them
after the loop has finished a file, or on an executor).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from alerts.events import Event, EventType
from alerts.types import CallInfo, ParticipantInfo, ScoreSink, Verdict, WindowScore

VERDICT_RANK = {v: i for i, v in enumerate(Verdict)}  # Verdict lists least alarming first
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
TIMELINE_COLUMNS = (
    "call_id",
    "participant_id",
    "window",
    "start_s",
    "end_s",
    "score",
    "speech_ratio",
    "verdict",
)


@dataclass
class ParticipantRecord:
    """What one participant of a replayed call produced.

    Attributes:
        info: The participant.
        scores: Its window scores, in window order.
        audio_s: Seconds of audio seen by the analysis stage.
        speech_s: Seconds of that audio that were speech.
        verdicts: (media seconds, verdict) of each verdict change, in order.
        alerts_s: Media seconds of each alert raised.
    """

    info: ParticipantInfo
    scores: list[WindowScore] = field(default_factory=list)
    audio_s: float = 0.0
    speech_s: float = 0.0
    verdicts: list[tuple[float, Verdict]] = field(default_factory=list)
    alerts_s: list[float] = field(default_factory=list)

    def verdict_at(self, media_s: float) -> Verdict:
        """The verdict in force at `media_s` (listening before the first change)."""
        current = Verdict.LISTENING
        for at_s, verdict in self.verdicts:
            if at_s > media_s + 1e-6:
                break
            current = verdict
        return current


@dataclass(frozen=True, slots=True)
class ParticipantSummary:
    """One participant's line of a file report.

    Attributes:
        id: Participant id; "CALL-ID/participant" when the file holds several calls.
        label: Display label (channel name, SIP From/To).
        verdict: The most alarming verdict reached (a replay asks "did it ever alarm").
        final_verdict: The verdict at the end of the call.
        max_score: Highest window score, None without windows.
        mean_score: Mean window score, None without windows.
        first_alert_s: Media seconds of the first alert, None when none.
        record: Everything recorded for the participant (for timelines and plots).
    """

    id: str
    label: str
    verdict: Verdict
    final_verdict: Verdict
    max_score: float | None
    mean_score: float | None
    first_alert_s: float | None
    record: ParticipantRecord

    def to_dict(self) -> dict[str, Any]:
        """The participant as DESIGN.md's JSON object."""
        return {
            "id": self.id,
            "verdict": str(self.verdict),
            "max_score": _round(self.max_score),
            "mean_score": _round(self.mean_score),
            "first_alert_s": _round(self.first_alert_s),
        }


@dataclass(frozen=True, slots=True)
class FileReport:
    """The result of replaying one input file.

    Attributes:
        file: The input as given.
        duration_s: Seconds of media in the file.
        speech_s: Seconds of speech over all participants.
        participants: One summary per participant, in call and join order.
        error: Why the file failed (then results may be partial or empty), else None.
    """

    file: str
    duration_s: float
    speech_s: float
    participants: tuple[ParticipantSummary, ...]
    error: str | None = None

    @property
    def failed(self) -> bool:
        """Whether the file could not be replayed completely."""
        return self.error is not None

    def to_dict(self) -> dict[str, Any]:
        """DESIGN.md's JSON object; a failed file also carries an `error` string."""
        out: dict[str, Any] = {
            "file": self.file,
            "duration_s": _round(self.duration_s),
            "speech_s": _round(self.speech_s),
            "participants": [p.to_dict() for p in self.participants],
        }
        if self.error is not None:
            out["error"] = self.error
        return out

    def to_json_line(self) -> str:
        """One line of JSON (without the newline) for `--json`."""
        return json.dumps(self.to_dict(), ensure_ascii=False)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


class ReplayRecorder:
    """Records scores, audio, verdicts and alerts of replayed calls (ScoreSink + listener).

    Runs on the event loop. Register `on_event` with `EventBus.add_listener`, and pass the
    recorder to the pipeline through `ScoreTee(board, recorder)`.
    """

    def __init__(self) -> None:
        self._calls: dict[str, CallInfo] = {}
        self._participants: dict[str, dict[str, ParticipantRecord]] = {}

    def open_call(self, call: CallInfo) -> None:
        """A call started."""
        self._calls[call.call_id] = call
        self._participants.setdefault(call.call_id, {})

    def add_participant(self, participant: ParticipantInfo) -> None:
        """A participant joined."""
        by_id = self._participants.setdefault(participant.call_id, {})
        by_id.setdefault(participant.participant_id, ParticipantRecord(participant))

    def push_scores(self, scores: list[WindowScore]) -> None:
        """Window scores, in window order per participant."""
        for score in scores:
            self._record(score.call_id, score.participant_id).scores.append(score)

    def add_audio(self, call_id: str, participant_id: str, audio_s: float, speech_s: float) -> None:
        """Audio and speech seconds seen for a participant."""
        record = self._record(call_id, participant_id)
        record.audio_s += audio_s
        record.speech_s += speech_s

    def close_call(self, call_id: str, reason: str) -> None:
        """A call ended (its records are kept until `forget`)."""

    def on_event(self, event: Event) -> None:
        """Event-bus listener: keeps verdict changes and alerts of participants."""
        if event.participant_id is None:
            return
        media_s = event.media_s if event.media_s is not None else 0.0
        if event.type is EventType.PARTICIPANT_VERDICT and event.verdict is not None:
            record = self._record(event.call_id, event.participant_id)
            record.verdicts.append((media_s, Verdict(event.verdict)))
        elif event.type is EventType.ALERT_RAISED:
            self._record(event.call_id, event.participant_id).alerts_s.append(media_s)

    def _record(self, call_id: str, participant_id: str) -> ParticipantRecord:
        by_id = self._participants.setdefault(call_id, {})
        if participant_id not in by_id:
            by_id[participant_id] = ParticipantRecord(ParticipantInfo(call_id, participant_id))
        return by_id[participant_id]

    def file_report(
        self, file: str, call_ids: Sequence[str], duration_s: float, error: str | None = None
    ) -> FileReport:
        """Fold what was seen of `call_ids` (the calls of input `file`) into its report."""
        qualify = len(call_ids) > 1
        summaries: list[ParticipantSummary] = []
        for call_id in call_ids:
            for record in self._participants.get(call_id, {}).values():
                summaries.append(summarise(record, qualify))
        speech_s = sum(s.record.speech_s for s in summaries)
        return FileReport(file, duration_s, speech_s, tuple(summaries), error)

    def forget(self, call_ids: Sequence[str]) -> None:
        """Drop the records of finished calls (a long batch keeps memory flat)."""
        for call_id in call_ids:
            self._calls.pop(call_id, None)
            self._participants.pop(call_id, None)


def summarise(record: ParticipantRecord, qualify: bool = False) -> ParticipantSummary:
    """A participant's summary; `qualify` prefixes the id with the call id."""
    values = [s.score for s in record.scores]
    reached = [v for _, v in record.verdicts]
    pid = record.info.participant_id
    return ParticipantSummary(
        id=f"{record.info.call_id}/{pid}" if qualify else pid,
        label=record.info.label,
        verdict=max(reached, key=VERDICT_RANK.__getitem__, default=Verdict.LISTENING),
        final_verdict=reached[-1] if reached else Verdict.LISTENING,
        max_score=max(values) if values else None,
        mean_score=sum(values) / len(values) if values else None,
        first_alert_s=min(record.alerts_s) if record.alerts_s else None,
        record=record,
    )


class ScoreTee:
    """A ScoreSink that hands every call on to several sinks, in order."""

    def __init__(self, *sinks: ScoreSink) -> None:
        self._sinks = sinks

    def open_call(self, call: CallInfo) -> None:
        """A call started."""
        for sink in self._sinks:
            sink.open_call(call)

    def add_participant(self, participant: ParticipantInfo) -> None:
        """A participant joined."""
        for sink in self._sinks:
            sink.add_participant(participant)

    def push_scores(self, scores: list[WindowScore]) -> None:
        """Window scores."""
        for sink in self._sinks:
            sink.push_scores(scores)

    def add_audio(self, call_id: str, participant_id: str, audio_s: float, speech_s: float) -> None:
        """Audio and speech seconds."""
        for sink in self._sinks:
            sink.add_audio(call_id, participant_id, audio_s, speech_s)

    def close_call(self, call_id: str, reason: str) -> None:
        """A call ended."""
        for sink in self._sinks:
            sink.close_call(call_id, reason)


def format_summary(report: FileReport) -> str:
    """The terminal summary of one file: a header line, then one line per participant."""
    head = f"{report.file}: {report.duration_s:.1f} s, speech {report.speech_s:.1f} s"
    if report.error is not None:
        head += f" -- FAILED: {report.error}"
    lines = [head]
    for p in report.participants:
        verdict = str(p.verdict)
        if p.final_verdict != p.verdict:
            verdict += f" (final {p.final_verdict})"
        label = f" [{p.label}]" if p.label else ""
        alert = "-" if p.first_alert_s is None else f"{p.first_alert_s:.1f} s"
        lines.append(
            f"  {p.id}{label}: {verdict:<10} max {_fmt(p.max_score)} mean {_fmt(p.mean_score)}"
            f" windows {len(p.record.scores)} first alert {alert}"
        )
    if not report.participants and report.error is None:
        lines.append("  (no participants)")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def output_stem(file: str) -> str:
    """A file-name-safe stem for a report input path (separators become `_`)."""
    return _UNSAFE_NAME.sub("_", file).strip("_.") or "input"


def write_timeline(report: FileReport, directory: Path) -> Path:
    """Write the per-window CSV of `report` into `directory` (blocking); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{output_stem(report.file)}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(TIMELINE_COLUMNS)
        for p in report.participants:
            for s in p.record.scores:
                writer.writerow(
                    [
                        s.call_id,
                        s.participant_id,
                        s.index,
                        f"{s.start_s:.3f}",
                        f"{s.end_s:.3f}",
                        f"{s.score:.6f}",
                        f"{s.speech_ratio:.3f}",
                        str(p.record.verdict_at(s.end_s)),
                    ]
                )
    return path


class Progress:
    """A one-line progress bar over input files, drawn on a terminal only."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self._total = max(total, 1)
        self._stream = stream if stream is not None else sys.stderr
        self._width = width
        self.done = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        """Whether the stream is a terminal (a bar in a log file is noise)."""
        return self._stream.isatty()

    def advance(self, failed: bool = False) -> None:
        """One more file finished."""
        self.done += 1
        self.failed += int(failed)
        if self.enabled:
            self._stream.write("\r" + self.line())
            self._stream.flush()

    def line(self) -> str:
        """The bar as text, e.g. `[#####.....] 5/10 files, 1 failed`."""
        filled = self._width * self.done // self._total
        bar = "#" * filled + "." * (self._width - filled)
        return f"[{bar}] {self.done}/{self._total} files, {self.failed} failed"

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled and self.done:
            self._stream.write("\n")
            self._stream.flush()
