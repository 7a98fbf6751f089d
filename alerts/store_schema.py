"""The SQLite schema of `alerts.store` and how each bus event is written into it.

Runs only on the store thread. A call row has its own integer id (`calls.id`), so a
call id that repeats (a recording replayed twice) starts a new row instead of mixing
histories; events find their call by the newest row with their `call_id`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from alerts.events import Event, EventType
from alerts.types import Verdict

SCHEMA_VERSION = 1
VERDICT_RANK = {str(v): i for i, v in enumerate(Verdict)}  # listening < ... < synthetic

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    line TEXT,
    ingress TEXT,
    model TEXT,
    started TEXT NOT NULL,
    ended TEXT,
    end_reason TEXT,
    verdict TEXT NOT NULL DEFAULT 'listening',  -- the most alarming verdict reached
    peak_rank INTEGER NOT NULL DEFAULT 0,       -- VERDICT_RANK of `verdict`
    final_verdict TEXT,                         -- the verdict at call.ended
    media_s REAL,
    max_score REAL
);
CREATE INDEX IF NOT EXISTS calls_call_id ON calls(call_id);
CREATE INDEX IF NOT EXISTS calls_started ON calls(started);
CREATE INDEX IF NOT EXISTS calls_line ON calls(line, started);
CREATE TABLE IF NOT EXISTS participants (
    call_row INTEGER NOT NULL REFERENCES calls(id),
    participant_id TEXT NOT NULL,
    label TEXT,
    joined TEXT,
    verdict TEXT NOT NULL DEFAULT 'listening',
    max_score REAL,
    media_s REAL,
    PRIMARY KEY (call_row, participant_id)
);
CREATE TABLE IF NOT EXISTS verdicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_row INTEGER NOT NULL REFERENCES calls(id),
    participant_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    media_s REAL,
    score REAL,
    verdict TEXT NOT NULL,
    previous TEXT
);
CREATE INDEX IF NOT EXISTS verdicts_call ON verdicts(call_row);
CREATE TABLE IF NOT EXISTS scores (
    call_row INTEGER NOT NULL REFERENCES calls(id),
    participant_id TEXT NOT NULL,
    media_s REAL NOT NULL,
    score REAL NOT NULL,
    verdict TEXT,
    ts TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS scores_participant ON scores(call_row, participant_id, media_s);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    call_row INTEGER NOT NULL REFERENCES calls(id),
    call_id TEXT NOT NULL,
    participant_id TEXT,
    line TEXT,
    ingress TEXT,
    model TEXT,
    ts TEXT NOT NULL,
    media_s REAL,
    score REAL,
    status TEXT NOT NULL DEFAULT 'open'  -- open, or the latest operator action
);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts(ts);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL REFERENCES alerts(alert_id),
    action TEXT NOT NULL,  -- acknowledged, dismissed, escalated
    user TEXT,
    ts TEXT NOT NULL,
    reason TEXT,
    note TEXT
);
CREATE INDEX IF NOT EXISTS actions_alert ON actions(alert_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    type TEXT NOT NULL,
    call_id TEXT NOT NULL,
    body TEXT NOT NULL  -- the event's JSON
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
PRAGMA user_version = {SCHEMA_VERSION};
"""

Handler = Callable[[sqlite3.Connection, Event, int], None]


def apply_event(conn: sqlite3.Connection, event: Event) -> None:
    """Write one event inside the caller's transaction."""
    if event.type == EventType.CALL_STARTED:
        row = _new_call(conn, event)
    else:
        row = _call_row(conn, event)
    if event.type != EventType.PARTICIPANT_SCORE:
        conn.execute(
            "INSERT INTO events (ts, type, call_id, body) VALUES (?, ?, ?, ?)",
            (event.ts, str(event.type), event.call_id, event.to_json()),
        )
    handler = _HANDLERS.get(event.type)
    if handler is not None:
        handler(conn, event, row)


def _new_call(conn: sqlite3.Connection, event: Event) -> int:
    cur = conn.execute(
        "INSERT INTO calls (call_id, line, ingress, model, started) VALUES (?, ?, ?, ?, ?)",
        (event.call_id, event.line, event.ingress, event.model, event.ts),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def _call_row(conn: sqlite3.Connection, event: Event) -> int:
    """The newest row of the event's call; one is made when the start was never seen."""
    found = conn.execute("SELECT MAX(id) FROM calls WHERE call_id = ?", (event.call_id,))
    row = found.fetchone()[0]
    return int(row) if row is not None else _new_call(conn, event)


def _raise_peak(conn: sqlite3.Connection, row: int, verdict: str | None) -> None:
    rank = VERDICT_RANK.get(verdict or "", 0)
    conn.execute(
        "UPDATE calls SET verdict = ?, peak_rank = ? WHERE id = ? AND peak_rank < ?",
        (verdict, rank, row, rank),
    )


def _on_joined(conn: sqlite3.Connection, event: Event, row: int) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO participants (call_row, participant_id, label, joined)"
        " VALUES (?, ?, ?, ?)",
        (row, event.participant_id, event.label, event.ts),
    )


def _on_score(conn: sqlite3.Connection, event: Event, row: int) -> None:
    if event.score is None or event.media_s is None:
        return
    conn.execute(
        "INSERT INTO scores (call_row, participant_id, media_s, score, verdict, ts)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (row, event.participant_id, event.media_s, event.score, event.verdict, event.ts),
    )
    conn.execute(
        "UPDATE participants SET max_score = MAX(COALESCE(max_score, 0), ?), media_s = ?"
        " WHERE call_row = ? AND participant_id = ?",
        (event.score, event.media_s, row, event.participant_id),
    )


def _on_verdict(conn: sqlite3.Connection, event: Event, row: int) -> None:
    conn.execute(
        "INSERT INTO verdicts (call_row, participant_id, ts, media_s, score, verdict, previous)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            row,
            event.participant_id,
            event.ts,
            event.media_s,
            event.score,
            event.verdict,
            event.previous,
        ),
    )
    conn.execute(
        "UPDATE participants SET verdict = ? WHERE call_row = ? AND participant_id = ?",
        (event.verdict, row, event.participant_id),
    )
    _raise_peak(conn, row, event.verdict)


def _on_alert(conn: sqlite3.Connection, event: Event, row: int) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO alerts (alert_id, call_row, call_id, participant_id, line,"
        " ingress, model, ts, media_s, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.alert_id,
            row,
            event.call_id,
            event.participant_id,
            event.line,
            event.ingress,
            event.model,
            event.ts,
            event.media_s,
            event.score,
        ),
    )


def _on_action(conn: sqlite3.Connection, event: Event, row: int) -> None:
    action = str(event.type).removeprefix("alert.")
    conn.execute(
        "INSERT INTO actions (alert_id, action, user, ts, reason, note) VALUES (?, ?, ?, ?, ?, ?)",
        (event.alert_id, action, event.user, event.ts, event.reason, event.note),
    )
    conn.execute("UPDATE alerts SET status = ? WHERE alert_id = ?", (action, event.alert_id))


def _on_ended(conn: sqlite3.Connection, event: Event, row: int) -> None:
    conn.execute(
        "UPDATE calls SET ended = ?, end_reason = ?, final_verdict = ?, media_s = ?,"
        " max_score = ? WHERE id = ?",
        (event.ts, event.reason, event.verdict, event.media_s, event.score, row),
    )
    _raise_peak(conn, row, event.verdict)


_HANDLERS: dict[EventType, Handler] = {
    EventType.PARTICIPANT_JOINED: _on_joined,
    EventType.PARTICIPANT_SCORE: _on_score,
    EventType.PARTICIPANT_VERDICT: _on_verdict,
    EventType.ALERT_RAISED: _on_alert,
    EventType.ALERT_ACKNOWLEDGED: _on_action,
    EventType.ALERT_DISMISSED: _on_action,
    EventType.ALERT_ESCALATED: _on_action,
    EventType.CALL_ENDED: _on_ended,
}
