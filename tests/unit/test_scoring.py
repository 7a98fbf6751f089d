"""The verdict board: events, rate limiting, alerts and operator actions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alerts.config import LineThresholds, VerdictConfig
from alerts.events import Event, EventBus, EventType
from alerts.metrics import Metrics
from alerts.scoring import AlertRecord, VerdictBoard
from alerts.types import CallInfo, Ingress, ParticipantInfo, WindowScore

pytestmark = pytest.mark.unit

MANIFEST = {"eer": 0.5, "fpr_1pct": 0.8}
HOP_S = 0.5


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def board(events: list[Event], metrics: Metrics) -> Iterator[VerdictBoard]:
    bus = EventBus()
    bus.add_listener(events.append)
    config = VerdictConfig(
        score_interval_s=1.0,
        lines={"hot": LineThresholds(synthetic_threshold=0.95)},
    )
    yield VerdictBoard(config, MANIFEST, 0.5, "det 1.0", bus, metrics, clock=Clock())


def _open(board: VerdictBoard, call_id: str = "c1", line: str = "+1555") -> None:
    board.open_call(CallInfo(call_id, Ingress.SIP, line))
    board.add_participant(ParticipantInfo(call_id, "p1", "Alice"))


def _scores(call_id: str, first: int, values: list[float]) -> list[WindowScore]:
    return [
        WindowScore(call_id, "p1", i, i * HOP_S, i * HOP_S + 2.0, v, 0.9, 0.05)
        for i, v in enumerate(values, start=first)
    ]


def _types(events: list[Event]) -> list[str]:
    return [str(e.type) for e in events]


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_lifecycle_events_carry_the_schema(board: VerdictBoard, events: list[Event]) -> None:
    _open(board)
    board.push_scores(_scores("c1", 0, [0.1, 0.1]))
    board.close_call("c1", "bye")
    assert _types(events) == [
        "call.started",
        "participant.joined",
        "participant.score",
        "participant.verdict",
        "call.ended",
    ]
    for event in events:
        assert event.call_id == "c1"
        assert event.line == "+1555"
        assert event.ingress == "sip"
        assert event.model == "det 1.0"
        assert event.ts.endswith("Z")
    joined, verdict, ended = events[1], events[3], events[4]
    assert joined.participant_id == "p1" and joined.label == "Alice"
    assert joined.verdict == "listening"
    assert verdict.verdict == "human" and verdict.previous == "listening"
    assert verdict.media_s == pytest.approx(2.5)
    assert ended.reason == "bye" and ended.verdict == "human"


def test_score_events_are_rate_limited_by_media_time(
    board: VerdictBoard, events: list[Event]
) -> None:
    _open(board)
    board.push_scores(_scores("c1", 0, [0.1 + i * 0.01 for i in range(10)]))  # 4.5 s of hops
    score_events = [e for e in events if e.type == EventType.PARTICIPANT_SCORE]
    assert [e.media_s for e in score_events] == [2.0, 3.0, 4.0, 5.0, 6.0]
    # Each carries the latest window score, not the aggregate.
    assert [e.score for e in score_events] == pytest.approx([0.1, 0.12, 0.14, 0.16, 0.18])


def test_sustained_synthetic_raises_exactly_one_alert(
    board: VerdictBoard, events: list[Event], metrics: Metrics
) -> None:
    _open(board)
    board.push_scores(_scores("c1", 0, [0.1, 0.1, 0.1, 0.1]))
    board.push_scores(_scores("c1", 4, [0.97] * 20))
    alerts = [e for e in events if e.type == EventType.ALERT_RAISED]
    assert len(alerts) == 1
    assert alerts[0].participant_id == "p1" and alerts[0].verdict == "synthetic"
    assert alerts[0].alert_id
    assert _value(metrics, "clonewatch_alerts_total", kind="raised") == 1
    assert _value(metrics, "clonewatch_verdicts_total", verdict="synthetic") == 1
    # Back to human, then synthetic again: a second, distinct alert.
    board.push_scores(_scores("c1", 24, [0.05] * 6))
    assert board.snapshot()[0]["participants"][0]["verdict"] == "human"
    board.push_scores(_scores("c1", 30, [0.97] * 6))
    alerts = [e for e in events if e.type == EventType.ALERT_RAISED]
    assert len(alerts) == 2 and alerts[0].alert_id != alerts[1].alert_id
    assert board.snapshot()[0]["participants"][0]["alert_ids"] == [a.alert_id for a in alerts]


def test_one_odd_window_raises_nothing(board: VerdictBoard, events: list[Event]) -> None:
    _open(board)
    board.push_scores(_scores("c1", 0, [0.1, 0.1, 0.1, 0.99, 0.1, 0.1]))
    assert not [e for e in events if e.type == EventType.ALERT_RAISED]
    assert [e.verdict for e in events if e.type == EventType.PARTICIPANT_VERDICT] == ["human"]


def test_line_override_applies(board: VerdictBoard, events: list[Event]) -> None:
    _open(board, "c2", line="hot")
    board.push_scores(_scores("c2", 0, [0.9] * 6))  # below the line's 0.95
    assert not [e for e in events if e.type == EventType.ALERT_RAISED]
    assert board.snapshot()[0]["thresholds"] == {"suspect": 0.5, "synthetic": 0.95}
    assert board.snapshot()[0]["verdict"] == "suspect"


def test_operator_actions(board: VerdictBoard, events: list[Event], metrics: Metrics) -> None:
    _open(board)
    board.push_scores(_scores("c1", 0, [0.97] * 4))
    alert_id = next(e.alert_id for e in events if e.type == EventType.ALERT_RAISED)
    assert alert_id is not None
    board.acknowledge(alert_id, "ann")
    board.close_call("c1", "bye")  # actions still work after the call ended
    board.dismiss(alert_id, "ann", "test call")
    board.escalate(alert_id, "bob", "call police")
    acted = [e for e in events if e.type.startswith("alert.") and e.type != "alert.raised"]
    assert [(e.type, e.user, e.reason, e.note) for e in acted] == [
        ("alert.acknowledged", "ann", None, None),
        ("alert.dismissed", "ann", "test call", None),
        ("alert.escalated", "bob", None, "call police"),
    ]
    assert all(e.alert_id == alert_id and e.participant_id == "p1" for e in acted)
    for kind in ("acknowledged", "dismissed", "escalated"):
        assert _value(metrics, "clonewatch_alerts_total", kind=kind) == 1
    with pytest.raises(KeyError):
        board.acknowledge("no-such-alert", "ann")


def test_snapshot_timeline_and_metrics(board: VerdictBoard, metrics: Metrics) -> None:
    _open(board)
    board.add_participant(ParticipantInfo("c1", "p2", "Bob"))
    board.add_audio("c1", "p1", 3.0, 2.5)
    board.push_scores(_scores("c1", 0, [0.2, 0.3]))
    snap = board.snapshot()
    assert len(snap) == 1
    p1 = snap[0]["participants"][0]
    assert (p1["label"], p1["audio_s"], p1["speech_s"], p1["score"]) == ("Alice", 3.0, 2.5, 0.3)
    assert p1["media_s"] == 3.0
    assert [w["score"] for w in board.timeline("c1", "p1")] == [0.2, 0.3]
    snap[0]["participants"].clear()  # a copy: the board is unaffected
    assert len(board.snapshot()[0]["participants"]) == 2
    assert _value(metrics, "clonewatch_calls_active", ingress="sip") == 1
    assert _value(metrics, "clonewatch_participants_active", ingress="sip") == 2
    board.close_call("c1", "rtp-timeout")
    assert board.snapshot() == []
    assert _value(metrics, "clonewatch_calls_active", ingress="sip") == 0
    assert _value(metrics, "clonewatch_participants_active", ingress="sip") == 0
    assert _value(metrics, "clonewatch_calls_total", ingress="sip") == 1
    assert _value(metrics, "clonewatch_participants_total", ingress="sip") == 2


def test_scores_of_unknown_calls_are_ignored(board: VerdictBoard, events: list[Event]) -> None:
    board.push_scores(_scores("ghost", 0, [0.9]))
    board.close_call("ghost", "bye")
    assert events == []


def test_restored_alert_is_actionable(board: VerdictBoard, events: list[Event]) -> None:
    record = AlertRecord("old-1", "c0", "p1", "+1555", "sip", 12.0, 0.93)
    board.restore_alert(record)
    event = board.dismiss("old-1", "ann", "known test line")
    assert events == [event]
    assert (event.call_id, event.participant_id, event.media_s, event.score) == (
        "c0",
        "p1",
        12.0,
        0.93,
    )
    assert event.verdict is None  # the call is no longer active


def test_a_line_override_below_the_inherited_suspect_threshold_is_refused_up_front(
    metrics: Metrics,
) -> None:
    # 0.3 is below the manifest's suspect threshold 0.5: refused when the board is built
    # (the service's start), not at that line's first call
    config = VerdictConfig(lines={"+1555": LineThresholds(synthetic_threshold=0.3)})
    with pytest.raises(ValueError, match=r'verdict.lines."\+1555": suspect threshold 0.5'):
        VerdictBoard(config, MANIFEST, 0.5, "det 1.0", EventBus(), metrics)
    override = LineThresholds(suspect_threshold=0.2, synthetic_threshold=0.3)
    both = VerdictConfig(lines={"+1555": override})
    board = VerdictBoard(both, MANIFEST, 0.5, "det 1.0", EventBus(), metrics)
    assert board.thresholds_for("+1555").synthetic == 0.3
