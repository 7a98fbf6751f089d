"""Replay outputs: summary, JSON lines as DESIGN.md gives them, CSV timeline, PNG plot."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from alerts.events import Event, EventType
from alerts.report import Progress, ReplayRecorder, ScoreTee, format_summary, write_timeline
from alerts.report_plot import speech_regions, write_plot
from alerts.types import CallInfo, Ingress, ParticipantInfo, WindowScore
from tests.fakes.sinks import FakeScoreSink

pytestmark = pytest.mark.unit

FILE = "recs/a call.wav"


def score(pid: str, index: int, value: float, call_id: str = FILE) -> WindowScore:
    return WindowScore(call_id, pid, index, index * 0.5, index * 0.5 + 2.0, value, 1.0, 0.01)


def recorded(call_id: str = FILE) -> ReplayRecorder:
    rec = ReplayRecorder()
    rec.open_call(CallInfo(call_id, Ingress.REPLAY, ""))
    rec.add_participant(ParticipantInfo(call_id, "ch0", "left"))
    rec.add_participant(ParticipantInfo(call_id, "ch1", "right"))
    rec.push_scores([score("ch0", i, v, call_id) for i, v in enumerate([0.1, 0.9, 0.95, 0.2])])
    rec.add_audio(call_id, "ch0", 10.0, 4.0)
    rec.add_audio(call_id, "ch1", 10.0, 0.0)
    verdict = EventType.PARTICIPANT_VERDICT
    rec.on_event(Event(verdict, call_id, participant_id="ch0", verdict="human", media_s=2.0))
    rec.on_event(Event(verdict, call_id, participant_id="ch0", verdict="synthetic", media_s=3.0))
    rec.on_event(Event(EventType.ALERT_RAISED, call_id, participant_id="ch0", media_s=3.0))
    rec.on_event(Event(verdict, call_id, participant_id="ch0", verdict="suspect", media_s=3.5))
    rec.close_call(call_id, "eof")
    return rec


def test_json_line_has_exactly_the_design_fields() -> None:
    report = recorded().file_report(FILE, [FILE], 10.0)
    line = report.to_json_line()
    assert "\n" not in line
    data = json.loads(line)
    assert data == {
        "file": FILE,
        "duration_s": 10.0,
        "speech_s": 4.0,
        "participants": [
            {
                "id": "ch0",
                "verdict": "synthetic",
                "max_score": 0.95,
                "mean_score": 0.5375,
                "first_alert_s": 3.0,
            },
            {
                "id": "ch1",
                "verdict": "listening",
                "max_score": None,
                "mean_score": None,
                "first_alert_s": None,
            },
        ],
    }
    assert not report.failed


def test_failed_file_carries_its_error() -> None:
    report = ReplayRecorder().file_report("bad.wav", [], 0.0, error="bad.wav: empty file")
    assert report.failed
    assert json.loads(report.to_json_line())["error"] == "bad.wav: empty file"
    assert "FAILED: bad.wav: empty file" in format_summary(report)


def test_participants_of_several_calls_are_qualified_by_call_id() -> None:
    rec = recorded("c1")
    rec.open_call(CallInfo("c2", Ingress.REPLAY, ""))
    rec.add_participant(ParticipantInfo("c2", "caller", "Alice"))
    ids = [p["id"] for p in rec.file_report("x.pcap", ["c1", "c2"], 5.0).to_dict()["participants"]]
    assert ids == ["c1/ch0", "c1/ch1", "c2/caller"]


def test_summary_shows_verdict_scores_and_first_alert() -> None:
    text = format_summary(recorded().file_report(FILE, [FILE], 10.0))
    lines = text.splitlines()
    assert lines[0] == "recs/a call.wav: 10.0 s, speech 4.0 s"
    assert "ch0 [left]: synthetic (final suspect)" in lines[1]
    assert "max 0.950 mean 0.537" in lines[1] or "max 0.950 mean 0.538" in lines[1]
    assert "first alert 3.0 s" in lines[1]
    assert "ch1 [right]: listening" in lines[2] and "first alert -" in lines[2]


def test_timeline_csv_has_one_row_per_window_with_the_verdict_then(tmp_path: Path) -> None:
    report = recorded().file_report(FILE, [FILE], 10.0)
    path = write_timeline(report, tmp_path / "timeline")
    assert path.name == "recs_a_call.wav.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [r["window"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["score"] for r in rows] == ["0.100000", "0.900000", "0.950000", "0.200000"]
    # windows end at 2.0, 2.5, 3.0, 3.5 s; verdicts changed at 2.0, 3.0 and 3.5 s
    assert [r["verdict"] for r in rows] == ["human", "human", "synthetic", "suspect"]


def test_plot_writes_a_png_per_file(tmp_path: Path) -> None:
    report = recorded().file_report(FILE, [FILE], 10.0)
    path = write_plot(report, tmp_path / "plots", {"suspect": 0.5, "synthetic": 0.8})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000


def test_plot_of_a_file_without_participants(tmp_path: Path) -> None:
    report = ReplayRecorder().file_report("empty.pcap", [], 0.0, error="no calls")
    assert write_plot(report, tmp_path, {}).exists()


def test_speech_regions_merge_overlapping_windows() -> None:
    spans = [(0.5, 2.5), (0.0, 2.0), (4.0, 6.0), (5.5, 7.0)]
    assert speech_regions(spans) == [(0.0, 2.5), (4.0, 7.0)]


def test_score_tee_feeds_every_sink() -> None:
    a, b = FakeScoreSink(), FakeScoreSink()
    tee = ScoreTee(a, b)
    tee.open_call(CallInfo("c", Ingress.REPLAY, ""))
    tee.add_participant(ParticipantInfo("c", "p"))
    tee.push_scores([score("p", 0, 0.3, "c")])
    tee.add_audio("c", "p", 1.0, 0.5)
    tee.close_call("c", "eof")
    for sink in (a, b):
        assert [s.score for s in sink.scores] == [0.3]
        assert sink.audio == {("c", "p"): (1.0, 0.5)}
        assert sink.closed == {"c": "eof"}


def test_recorder_forgets_finished_calls() -> None:
    rec = recorded()
    rec.forget([FILE])
    assert rec.file_report(FILE, [FILE], 1.0).participants == ()


def test_progress_line_counts_files_and_failures() -> None:
    progress = Progress(4, io.StringIO(), width=8)
    progress.advance()
    progress.advance(failed=True)
    assert progress.line() == "[####....] 2/4 files, 1 failed"
