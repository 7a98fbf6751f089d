"""The SQLite store: writes from events, history queries, persistence across reopen."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alerts.config import VerdictConfig
from alerts.delivery import SinkRunner
from alerts.events import Event, EventBus, EventType, utc_now_iso
from alerts.metrics import Metrics
from alerts.scoring import VerdictBoard
from alerts.store import Store, StoreSink
from alerts.types import CallInfo, Ingress, ParticipantInfo, WindowScore

pytestmark = pytest.mark.unit


def _scores(call_id: str, pid: str, first: int, values: list[float]) -> list[WindowScore]:
    return [
        WindowScore(call_id, pid, i, i * 0.5, i * 0.5 + 2.0, v, 1.0, 0.01)
        for i, v in enumerate(values, start=first)
    ]


async def _run_board(path: Path) -> tuple[str, list[Event]]:
    """Two calls through a real board, bus, runner and store; returns the alert id."""
    bus, metrics = EventBus(), Metrics()
    seen: list[Event] = []
    bus.add_listener(seen.append)
    store = Store(path)
    await store.start()
    runner = SinkRunner(StoreSink(store), bus, metrics)
    runner.start()
    board = VerdictBoard(VerdictConfig(), {"eer": 0.5, "fpr_1pct": 0.8}, 0.5, "det 1", bus, metrics)
    board.open_call(CallInfo("c1", Ingress.SIPREC, "+1555"))
    board.add_participant(ParticipantInfo("c1", "caller", "Alice"))
    board.add_participant(ParticipantInfo("c1", "callee", "Bob"))
    board.push_scores(_scores("c1", "caller", 0, [0.1] * 4 + [0.97] * 8))
    board.push_scores(_scores("c1", "callee", 0, [0.05] * 6))
    board.close_call("c1", "bye")
    # Event times have millisecond resolution: let the clock tick so c2 starts after c1.
    c1_started = next(e.ts for e in seen if e.type == EventType.CALL_STARTED)
    while utc_now_iso() <= c1_started:  # at most a millisecond
        pass
    board.open_call(CallInfo("c2", Ingress.SIP, "+1666"))
    board.add_participant(ParticipantInfo("c2", "p1", ""))
    board.push_scores(_scores("c2", "p1", 0, [0.2] * 4))
    board.close_call("c2", "rtp-timeout")
    alert_id = next(e.alert_id for e in seen if e.type == EventType.ALERT_RAISED)
    assert alert_id is not None
    board.acknowledge(alert_id, "ann")
    board.escalate(alert_id, "sue", "police informed")
    await runner.aclose()
    await store.aclose()
    return alert_id, seen


@pytest.fixture
async def reopened(tmp_path: Path) -> AsyncIterator[tuple[Store, str, list[Event]]]:
    path = tmp_path / "db" / "clonewatch.db"
    alert_id, seen = await _run_board(path)
    store = Store(path)  # a restart on the same file
    await store.start()
    yield store, alert_id, seen
    await store.aclose()


async def test_wal_and_full_sync(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    await store.start()
    await store.aclose()
    conn = sqlite3.connect(tmp_path / "x.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_calls_survive_reopen_and_filter(reopened: tuple[Store, str, list[Event]]) -> None:
    store, _, _ = reopened
    calls = await store.calls()
    assert [c["call_id"] for c in calls] == ["c2", "c1"]  # newest first
    c1 = calls[1]
    assert (c1["line"], c1["ingress"], c1["model"]) == ("+1555", "siprec", "det 1")
    assert (c1["verdict"], c1["end_reason"]) == ("synthetic", "bye")
    assert c1["ended"] is not None
    assert {p["participant_id"]: p["verdict"] for p in c1["participants"]} == {
        "caller": "synthetic",
        "callee": "human",
    }
    assert [c["call_id"] for c in await store.calls(line="+1666")] == ["c2"]
    assert [c["call_id"] for c in await store.calls(verdict="synthetic")] == ["c1"]
    assert [c["call_id"] for c in await store.calls(verdict="human")] == ["c2"]
    started = calls[0]["started"]
    assert [c["call_id"] for c in await store.calls(since=started)] == ["c2"]
    assert [c["call_id"] for c in await store.calls(until=started)] == ["c1"]
    assert await store.calls(since="2999-01-01T00:00:00Z") == []


async def test_alerts_with_actions_survive_reopen(
    reopened: tuple[Store, str, list[Event]],
) -> None:
    store, alert_id, _ = reopened
    alerts = await store.alerts()
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert["alert_id"], alert["participant_id"], alert["status"]) == (
        alert_id,
        "caller",
        "escalated",
    )
    assert [(a["action"], a["user"], a["note"]) for a in alert["actions"]] == [
        ("acknowledged", "ann", None),
        ("escalated", "sue", "police informed"),
    ]
    assert all(a["ts"] for a in alert["actions"])
    assert await store.alerts(status="open") == []
    assert await store.alerts(line="+1666") == []
    detail = await store.call("c1")
    assert detail is not None
    assert [a["alert_id"] for a in detail["alerts"]] == [alert_id]
    changes = [(v["participant_id"], v["verdict"]) for v in detail["verdict_changes"]]
    assert ("caller", "synthetic") in changes and ("callee", "human") in changes
    assert await store.call("nope") is None


async def test_timeline_survives_reopen(reopened: tuple[Store, str, list[Event]]) -> None:
    store, _, seen = reopened
    points = await store.timeline("c1", "caller")
    expected = [
        (e.media_s, e.score)
        for e in seen
        if e.type == EventType.PARTICIPANT_SCORE and e.participant_id == "caller"
    ]
    assert [(p["media_s"], p["score"]) for p in points] == expected
    assert len(points) >= 5
    assert points[-1]["verdict"] == "synthetic"


async def test_events_since_catches_up(reopened: tuple[Store, str, list[Event]]) -> None:
    store, _, seen = reopened
    stored = await store.events_since()
    expected = [e.to_dict() for e in seen if e.type != EventType.PARTICIPANT_SCORE]
    assert [{k: v for k, v in e.items() if k != "event_id"} for e in stored] == expected
    ids = [e["event_id"] for e in stored]
    assert ids == sorted(ids)
    tail = await store.events_since(after_id=ids[-4])
    assert [e["type"] for e in tail] == ["call.ended", "alert.acknowledged", "alert.escalated"]
    assert await store.events_since(after_id=ids[-1]) == []
    by_time = await store.events_since(since_ts=stored[-1]["ts"])
    assert by_time[-1]["event_id"] == ids[-1]


async def test_repeated_call_id_starts_a_new_row(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    await store.start()
    for reason in ("eof", "eof"):
        store.submit(Event(EventType.CALL_STARTED, "file.wav", line="", ingress="replay"))
        store.submit(Event(EventType.CALL_ENDED, "file.wav", reason=reason, verdict="human"))
    await store.flush()
    calls = await store.calls()
    assert [c["call_id"] for c in calls] == ["file.wav", "file.wav"]
    assert all(c["ended"] for c in calls)
    await store.aclose()


async def test_store_work_stays_off_the_loop(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    await store.start()
    futures = [
        store.submit(
            Event(EventType.PARTICIPANT_SCORE, "c", participant_id="p", media_s=i, score=0.1)
        )
        for i in range(500)
    ]
    # submit() returned without writing: far fewer batches than events.
    assert len({id(f) for f in futures}) < 500
    await asyncio.wait_for(store.flush(), 5.0)
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(await store.timeline("c", "p")) == 500
    await store.aclose()
    with pytest.raises(RuntimeError):
        store.submit(Event(EventType.CALL_ENDED, "c"))
