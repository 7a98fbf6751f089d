"""The console's live feed: every bus event, numbered, to browsers over a WebSocket.

    bus ──listener──> LiveFeed: seq += 1, ring of recent events ──> each client's queue
                                                                 ──> WebSocket /api/live

A browser connects with the cursor it last saw (`after=SEQ&boot=ID&since=TS`):

- same process (`boot` matches) and the cursor still in the ring: the events after it
  are sent from the ring, then live ones; registering the client and copying the ring
  happen without an `await` between them, so nothing is missed or sent twice;
- otherwise (the service restarted, or the browser was away too long): a `hello` with
  `resync: true` tells it to reload its snapshot, and the stored events from `since` on
  (`Store.events_since`) are sent before the live ones, so no alert is missed. Those may
  overlap the live ones; the browser drops duplicates by (type, call, participant,
  alert, ts).

A browser that falls `live_queue_events` behind is disconnected (close code 4000) rather
than letting events pile up; it reconnects and catches up the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import secrets
import weakref
from collections import deque
from typing import Any

from aiohttp import WSCloseCode, web

from alerts.events import Event, EventBus
from alerts.store import Store

logger = logging.getLogger(__name__)

SEND_BATCH_EVENTS = 200  # events per WebSocket message, at most
HEARTBEAT_S = 20.0
CLOSE_FELL_BEHIND = 4000
STORE_CATCHUP_EVENTS = 1000


class LiveClient:
    """One browser's bounded queue of numbered events."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self.fell_behind = asyncio.Event()

    def offer(self, data: dict[str, Any]) -> bool:
        """Queue an event; False (and `fell_behind` set) when the queue is full."""
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.fell_behind.set()
            return False
        return True


class LiveFeed:
    """Numbers bus events, keeps the recent ones, and fans them out to browsers.

    Args:
        bus: The event bus (a synchronous listener is added; it only appends and queues).
        store: For catch-up beyond the in-memory ring.
        ring_events: Recent events kept for reconnect catch-up.
        client_queue_events: How far one browser may fall behind before it is cut off.
    """

    def __init__(
        self, bus: EventBus, store: Store, ring_events: int, client_queue_events: int
    ) -> None:
        self.boot = secrets.token_hex(8)  # tells browsers when the numbering restarted
        self._store = store
        self._seq = 0
        self._ring: deque[dict[str, Any]] = deque(maxlen=ring_events)
        self._clients: set[LiveClient] = set()
        self._client_queue = client_queue_events
        self.sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        bus.add_listener(self._on_event)

    @property
    def cursor(self) -> int:
        """The number of the latest event."""
        return self._seq

    def _on_event(self, event: Event) -> None:
        self._seq += 1
        data = event.to_dict()
        data["seq"] = self._seq
        self._ring.append(data)
        for client in list(self._clients):
            if not client.offer(data):
                self._clients.discard(client)

    def open(self, after: int | None) -> tuple[LiveClient, list[dict[str, Any]] | None]:
        """Register a client; the ring's events after `after`, or None when it cannot tell.

        Runs without awaiting, so the backlog and the client's queue meet exactly.
        """
        client = LiveClient(self._client_queue)
        self._clients.add(client)
        if after is None or after > self._seq:
            return client, None
        oldest = self._ring[0]["seq"] if self._ring else self._seq + 1
        if after < oldest - 1:
            return client, None
        return client, [e for e in self._ring if e["seq"] > after]

    def close(self, client: LiveClient) -> None:
        """Stop feeding `client`."""
        self._clients.discard(client)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """GET /api/live: the WebSocket feed (the caller has checked the session)."""
        after, boot, since = _cursor_args(request)
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4096)
        await ws.prepare(request)
        self.sockets.add(ws)
        client, backlog = self.open(after if boot == self.boot else None)
        sender = asyncio.get_running_loop().create_task(
            self._send_loop(ws, client, backlog, since), name="console:live"
        )
        try:
            async for _ in ws:  # browsers send nothing; this notices the close
                pass
        finally:
            self.close(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
        return ws

    async def _send_loop(
        self,
        ws: web.WebSocketResponse,
        client: LiveClient,
        backlog: list[dict[str, Any]] | None,
        since: str | None,
    ) -> None:
        hello = {"type": "hello", "boot": self.boot, "cursor": self._seq}
        await ws.send_str(json.dumps({**hello, "resync": backlog is None}))
        if backlog is None:
            stored = await self._store.events_since(since_ts=since, limit=STORE_CATCHUP_EVENTS)
            backlog = [{**e, "replay": True} for e in stored] if since else []
        for start in range(0, len(backlog), SEND_BATCH_EVENTS):
            await ws.send_str(json.dumps(backlog[start : start + SEND_BATCH_EVENTS]))
        while not client.fell_behind.is_set():
            batch = [await client.queue.get()]
            while not client.queue.empty() and len(batch) < SEND_BATCH_EVENTS:
                batch.append(client.queue.get_nowait())
            await ws.send_str(json.dumps(batch))
        await ws.close(code=CLOSE_FELL_BEHIND, message=b"fell behind; reconnect")

    async def shutdown(self, app: web.Application) -> None:
        """on_shutdown: close every browser's socket with GOING_AWAY."""
        for ws in list(self.sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def _cursor_args(request: web.Request) -> tuple[int | None, str, str | None]:
    query = request.query
    try:
        after = int(query["after"]) if "after" in query else None
    except ValueError:
        raise web.HTTPBadRequest(text="after must be an integer\n") from None
    since = query.get("since") or None
    if since is not None:
        since = parse_time(since, "since")
    return after, query.get("boot", ""), since


def parse_time(value: str, key: str) -> str:
    """Check a UTC ISO-8601 query value; 400 when it is not one."""
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{key} must be an ISO-8601 time\n") from None
    return value
