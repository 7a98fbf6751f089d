"""Event sinks: JSON lines, the log, and isolation of sinks from each other."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from alerts.delivery import JsonlSink, LogSink, SinkRunner
from alerts.events import Event, EventBus, EventType
from alerts.metrics import Metrics

pytestmark = pytest.mark.unit

POLL_S = 0.01
TIMEOUT_S = 2.0


def _event(kind: EventType, i: int = 0, **fields: object) -> Event:
    return Event(
        type=kind,
        call_id=f"c{i}",
        participant_id="p1",
        line="+1555",
        ingress="sip",
        media_s=float(i),
        score=0.5,
        verdict="human",
        model="det 1.0",
        **fields,  # type: ignore[arg-type]
    )


async def _until(predicate: object, timeout_s: float = TIMEOUT_S) -> None:
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(POLL_S)


def _value(metrics: Metrics, name: str, sink: str) -> float:
    return metrics.registry.get_sample_value(name, {"sink": sink}) or 0.0


class RecordingSink:
    def __init__(self, name: str = "rec") -> None:
        self.name = name
        self.events: list[Event] = []
        self.closed = False

    async def deliver(self, event: Event) -> None:
        self.events.append(event)

    async def aclose(self) -> None:
        self.closed = True


class FailingSink(RecordingSink):
    async def deliver(self, event: Event) -> None:
        raise ConnectionError("receiver down")


class StuckSink(RecordingSink):
    def __init__(self) -> None:
        super().__init__("stuck")
        self.release = asyncio.Event()

    async def deliver(self, event: Event) -> None:
        await self.release.wait()
        self.events.append(event)


async def test_jsonl_lines_parse_back_as_the_schema(tmp_path: Path) -> None:
    bus, metrics = EventBus(), Metrics()
    path = tmp_path / "events" / "out.jsonl"
    runner = SinkRunner(JsonlSink(path), bus, metrics)
    runner.start()
    sent = [_event(EventType.CALL_STARTED, 1), _event(EventType.PARTICIPANT_SCORE, 2)]
    sent.append(_event(EventType.ALERT_DISMISSED, 3, alert_id="a1", user="ann", reason="test"))
    for event in sent:
        bus.publish(event)
    await runner.aclose()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    parsed = [json.loads(line) for line in lines]
    assert parsed == [e.to_dict() for e in sent]
    for record in parsed:
        assert record["type"] in {str(t) for t in EventType}
        assert {"ts", "call_id", "line", "ingress", "model"} <= record.keys()
    assert parsed[2]["reason"] == "test" and "note" not in parsed[2]
    assert _value(metrics, "clonewatch_sink_deliveries_total", "jsonl") == 3


async def test_jsonl_appends_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    for i in range(2):
        bus = EventBus()
        runner = SinkRunner(JsonlSink(path), bus, Metrics())
        runner.start()
        bus.publish(_event(EventType.CALL_STARTED, i))
        await runner.aclose()
    assert [json.loads(x)["call_id"] for x in path.read_text().splitlines()] == ["c0", "c1"]


async def test_jsonl_write_failure_is_counted(tmp_path: Path) -> None:
    bus, metrics = EventBus(), Metrics()
    runner = SinkRunner(JsonlSink(tmp_path), bus, metrics)  # a directory: cannot be opened
    runner.start()
    bus.publish(_event(EventType.CALL_STARTED))
    for i in range(50):
        bus.publish(_event(EventType.CALL_ENDED, i))
        await asyncio.sleep(POLL_S)
        if _value(metrics, "clonewatch_sink_failures_total", "jsonl"):
            break
    assert _value(metrics, "clonewatch_sink_failures_total", "jsonl") >= 1
    await runner.aclose()


async def test_failing_and_stuck_sinks_do_not_stop_another(tmp_path: Path) -> None:
    bus, metrics = EventBus(), Metrics()
    good, bad, stuck = RecordingSink(), FailingSink("bad"), StuckSink()
    runners = [SinkRunner(s, bus, metrics) for s in (good, bad, stuck)]
    for runner in runners:
        runner.start()
    sent = [_event(EventType.PARTICIPANT_VERDICT, i) for i in range(20)]
    for event in sent:
        bus.publish(event)  # returns at once even though `stuck` never finishes
    await _until(lambda: len(good.events) == 20)
    assert good.events == sent
    await _until(lambda: _value(metrics, "clonewatch_sink_failures_total", "bad") == 20)
    assert stuck.events == []
    assert _value(metrics, "clonewatch_sink_deliveries_total", "rec") == 20
    assert _value(metrics, "clonewatch_sink_deliveries_total", "bad") == 0
    stuck.release.set()
    for runner in runners:
        await runner.aclose()
    assert stuck.events == sent  # aclose drained what was queued
    assert good.closed and bad.closed and stuck.closed


async def test_aclose_drains_queued_events() -> None:
    bus, metrics = EventBus(), Metrics()
    sink = RecordingSink()
    runner = SinkRunner(sink, bus, metrics)
    runner.start()
    for i in range(200):
        bus.publish(_event(EventType.PARTICIPANT_SCORE, i))
    await runner.aclose()
    assert len(sink.events) == 200
    bus.publish(_event(EventType.CALL_ENDED))  # after close: not delivered
    assert len(sink.events) == 200


async def test_runner_rejoins_after_being_cut_off() -> None:
    bus, metrics = EventBus(), Metrics()
    sink = StuckSink()
    runner = SinkRunner(sink, bus, metrics)
    runner._sub.queue = asyncio.Queue(3)  # a tiny queue to overflow
    runner.start()
    for i in range(6):
        bus.publish(_event(EventType.PARTICIPANT_SCORE, i))
    sink.release.set()
    await _until(lambda: _value(metrics, "clonewatch_sink_failures_total", "stuck") == 1)
    await _until(lambda: len(sink.events) >= 3)
    bus.publish(_event(EventType.CALL_ENDED, 99))
    await _until(lambda: sink.events[-1].call_id == "c99")
    await runner.aclose()


async def test_log_sink_levels_and_no_free_text(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.events")
    sink = LogSink(log)
    with caplog.at_level(logging.DEBUG, logger="test.events"):
        await sink.deliver(_event(EventType.PARTICIPANT_VERDICT))
        await sink.deliver(_event(EventType.ALERT_RAISED, alert_id="a1"))
        await sink.deliver(
            _event(EventType.ALERT_ESCALATED, alert_id="a1", user="ann", note="secret note")
        )
    levels = [(r.levelno, r.getMessage().split()[0]) for r in caplog.records]
    assert levels == [
        (logging.INFO, "participant.verdict"),
        (logging.WARNING, "alert.raised"),
        (logging.WARNING, "alert.escalated"),
    ]
    assert "secret note" not in caplog.text and "ann" not in caplog.text
    assert "alert=a1" in caplog.text
