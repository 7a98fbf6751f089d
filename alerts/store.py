"""The embedded SQLite store of calls, verdicts, score timelines, alerts and actions.

Written from bus events by `StoreSink`; read by the console for history and for catching
up after a reconnect (`events_since`). All sqlite work runs on one dedicated thread that
owns the only connection, so the event loop never blocks on disk and writes and reads
are serialised without locks in SQLite.

Durability: WAL journal with `synchronous=FULL`. In WAL mode `NORMAL` survives a crash
of the process but may lose the last transactions on a power cut or OS crash; an
operator's acknowledgement or a raised alert must survive both (issue 4: "nothing
acknowledged is lost"), so every commit is fsynced. The cost is amortised by batching:
events that arrive while a commit is in progress go into the next single transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alerts.events import Event, EventType
from alerts.store_schema import SCHEMA, VERDICT_RANK, apply_event

logger = logging.getLogger(__name__)

T = TypeVar("T")

PENDING_EVENTS_MAX = 5_000  # unwritten events before `StoreSink` waits for the disk
QUERY_LIMIT = 1_000  # default and cap of rows a history query returns


class Store:
    """SQLite history of everything the bus carried; `start()` before use, `aclose()` after.

    Args:
        path: Database file; created with its schema when missing.
    """

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store")
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._pending: list[Event] = []
        self._batch: concurrent.futures.Future[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open (or create) the database on the store thread."""
        await self._call(self._open)

    async def aclose(self) -> None:
        """Write what is pending, close the database and stop the store thread."""
        await self.flush()
        await self._call(self._close)
        await asyncio.to_thread(self._executor.shutdown)

    # -- writes ----------------------------------------------------------------------------

    def submit(self, event: Event) -> concurrent.futures.Future[None]:
        """Queue `event` for the next write batch; any thread; never blocks.

        Returns:
            A future that completes when the batch holding `event` is committed.
        """
        with self._lock:
            self._pending.append(event)
            if self._batch is None:
                self._batch = self._executor.submit(self._write_pending)
            return self._batch

    @property
    def pending(self) -> int:
        """Events submitted but not yet taken by a write batch."""
        with self._lock:
            return len(self._pending)

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""
        # The store thread runs jobs in order: once this no-op ran, every batch
        # submitted before it (queued or in progress) has been committed or failed.
        await self._call(_nothing)

    async def writable(self) -> bool:
        """Whether the database takes writes now: a write lock is taken and released."""
        try:
            await self._call(self._probe_write)
        except (sqlite3.Error, RuntimeError, OSError):
            return False
        return True

    def _probe_write(self) -> None:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")

    # -- queries ---------------------------------------------------------------------------

    async def calls(
        self,
        line: str | None = None,
        verdict: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Calls, newest first, each with its participants.

        Args:
            line: Only calls on this line.
            verdict: Only calls whose most alarming verdict reached this value.
            since: Only calls started at or after this UTC ISO-8601 time.
            until: Only calls started before this UTC ISO-8601 time.
            limit: At most this many calls (capped at QUERY_LIMIT).
        """
        return await self._call(self._calls, line, verdict, since, until, limit)

    async def call(self, call_id: str) -> dict[str, Any] | None:
        """The latest call with `call_id`, with participants, verdict changes and alerts."""
        return await self._call(self._call_detail, call_id)

    async def alerts(
        self,
        status: str | None = None,
        line: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Alerts, newest first, each with its operator actions (oldest first).

        Args:
            status: "open", "acknowledged", "dismissed" or "escalated" (the latest action).
            line: Only alerts on this line.
            since: Only alerts raised at or after this UTC ISO-8601 time.
            limit: At most this many alerts (capped at QUERY_LIMIT).
        """
        return await self._call(self._alerts, status, line, since, limit)

    async def timeline(self, call_id: str, participant_id: str) -> list[dict[str, Any]]:
        """Score points (`media_s`, `score`, `verdict`, `ts`) of a participant's latest call."""
        return await self._call(self._timeline, call_id, participant_id)

    async def events_since(
        self, after_id: int | None = None, since_ts: str | None = None, limit: int = QUERY_LIMIT
    ) -> list[dict[str, Any]]:
        """Stored events after an event id or from a time, oldest first.

        Every event type except `participant.score` is kept (scores are in the timeline).
        Each dict is the event's JSON plus `event_id`, the cursor for the next call.
        """
        return await self._call(self._events_since, after_id, since_ts, limit)

    # -- store thread ----------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"store {self._path} is not open")
        return self._conn

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, isolation_level=None)  # explicit transactions
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(SCHEMA)
        self._conn = conn
        logger.info("store open at %s", self._path, extra={"stage": "store"})

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _write_pending(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._batch = None
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for event in batch:
                try:
                    apply_event(conn, event)
                except sqlite3.IntegrityError as exc:
                    logger.warning(
                        "store skipped %s: %s", event.type, exc, extra={"call_id": event.call_id}
                    )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            logger.exception("store lost a batch of %d events", len(batch))
            raise

    def _calls(
        self,
        line: str | None,
        verdict: str | None,
        since: str | None,
        until: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        where, args = _filters(
            ("line = ?", line),
            ("peak_rank = ?", VERDICT_RANK.get(verdict or "", -1) if verdict else None),
            ("started >= ?", since),
            ("started < ?", until),
        )
        rows = self._db().execute(
            f"SELECT * FROM calls {where} ORDER BY id DESC LIMIT ?",
            (*args, min(limit, QUERY_LIMIT)),
        )
        return [self._call_dict(row) for row in rows.fetchall()]

    def _call_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        call = dict(row)
        call.pop("peak_rank", None)
        rows = self._db().execute(
            "SELECT participant_id, label, joined, verdict, max_score, media_s"
            " FROM participants WHERE call_row = ? ORDER BY rowid",
            (row["id"],),
        )
        call["participants"] = [dict(p) for p in rows.fetchall()]
        return call

    def _call_detail(self, call_id: str) -> dict[str, Any] | None:
        db = self._db()
        row = db.execute(
            "SELECT * FROM calls WHERE call_id = ? ORDER BY id DESC LIMIT 1", (call_id,)
        ).fetchone()
        if row is None:
            return None
        call = self._call_dict(row)
        verdicts = db.execute(
            "SELECT participant_id, ts, media_s, score, verdict, previous FROM verdicts"
            " WHERE call_row = ? ORDER BY id",
            (row["id"],),
        )
        call["verdict_changes"] = [dict(v) for v in verdicts.fetchall()]
        alerts = db.execute("SELECT * FROM alerts WHERE call_row = ? ORDER BY ts", (row["id"],))
        call["alerts"] = [self._alert_dict(a) for a in alerts.fetchall()]
        return call

    def _alerts(
        self, status: str | None, line: str | None, since: str | None, limit: int
    ) -> list[dict[str, Any]]:
        where, args = _filters(("status = ?", status), ("line = ?", line), ("ts >= ?", since))
        rows = self._db().execute(
            f"SELECT * FROM alerts {where} ORDER BY ts DESC LIMIT ?",
            (*args, min(limit, QUERY_LIMIT)),
        )
        return [self._alert_dict(a) for a in rows.fetchall()]

    def _alert_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        alert = dict(row)
        alert.pop("call_row", None)
        actions = self._db().execute(
            "SELECT action, user, ts, reason, note FROM actions WHERE alert_id = ? ORDER BY id",
            (row["alert_id"],),
        )
        alert["actions"] = [dict(a) for a in actions.fetchall()]
        return alert

    def _timeline(self, call_id: str, participant_id: str) -> list[dict[str, Any]]:
        rows = self._db().execute(
            "SELECT media_s, score, verdict, ts FROM scores WHERE participant_id = ? AND"
            " call_row = (SELECT MAX(id) FROM calls WHERE call_id = ?) ORDER BY media_s",
            (participant_id, call_id),
        )
        return [dict(r) for r in rows.fetchall()]

    def _events_since(
        self, after_id: int | None, since_ts: str | None, limit: int
    ) -> list[dict[str, Any]]:
        where, args = _filters(("id > ?", after_id), ("ts >= ?", since_ts))
        rows = self._db().execute(
            f"SELECT id, body FROM events {where} ORDER BY id LIMIT ?",
            (*args, min(limit, QUERY_LIMIT)),
        )
        return [{**json.loads(r["body"]), "event_id": r["id"]} for r in rows.fetchall()]


def _nothing() -> None:
    """A no-op job for the store thread."""


def _filters(*conditions: tuple[str, object | None]) -> tuple[str, list[object]]:
    """A WHERE clause of the conditions whose value is not None, and their arguments.

    Only the fixed SQL fragments written in this module are formatted into queries;
    every value travels as a bound parameter.
    """
    used = [(sql, value) for sql, value in conditions if value is not None]
    if not used:
        return "", []
    return "WHERE " + " AND ".join(sql for sql, _ in used), [value for _, value in used]


class StoreSink:
    """Writes bus events to a `Store`; a `Sink` for `alerts.delivery.SinkRunner`.

    Score events are written in batches without waiting; every other event (call
    lifecycle, verdicts, alerts and operator actions) is awaited until committed, so a
    delivery that counted as successful is on disk. When the store falls behind by
    PENDING_EVENTS_MAX events the sink waits too, which backs up its own bus queue only.
    """

    def __init__(self, store: Store, name: str = "store") -> None:
        self._store = store
        self._name = name

    @property
    def name(self) -> str:
        """The sink's metrics label."""
        return self._name

    async def deliver(self, event: Event) -> None:
        """Submit the event; wait for its commit unless it is a routine score."""
        batch = self._store.submit(event)
        if event.type != EventType.PARTICIPANT_SCORE or self._store.pending > PENDING_EVENTS_MAX:
            await asyncio.wrap_future(batch)

    async def aclose(self) -> None:
        """Wait for pending writes; the store itself is closed by its owner."""
        await self._store.flush()
