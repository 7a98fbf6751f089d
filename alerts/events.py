"""The event schema (DESIGN.md "Events") and the in-process event bus.

One schema for the bus, the console, webhooks and JSON-lines logs. Subscribers get their
own bounded queue; events are never dropped for a subscriber: one that falls behind by
more than its queue holds is cut off (its `closed` flag is set) and must catch up from
the store, so a slow consumer never delays the pipeline or another consumer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)

SUBSCRIBER_QUEUE_EVENTS = 10_000  # a subscriber this far behind is cut off


class EventType(enum.StrEnum):
    """Every event type of DESIGN.md."""

    CALL_STARTED = "call.started"
    CALL_ENDED = "call.ended"
    PARTICIPANT_JOINED = "participant.joined"
    PARTICIPANT_SCORE = "participant.score"
    PARTICIPANT_VERDICT = "participant.verdict"
    ALERT_RAISED = "alert.raised"
    ALERT_ACKNOWLEDGED = "alert.acknowledged"
    ALERT_DISMISSED = "alert.dismissed"
    ALERT_ESCALATED = "alert.escalated"


def utc_now_iso() -> str:
    """Current UTC time as ISO-8601 with millisecond precision and a `Z`."""
    now = dt.datetime.now(dt.UTC)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    """One event; fields that do not apply stay None and are left out of the JSON."""

    type: EventType
    call_id: str
    ts: str = ""
    participant_id: str | None = None
    line: str | None = None
    ingress: str | None = None
    media_s: float | None = None
    score: float | None = None
    verdict: str | None = None
    model: str | None = None
    alert_id: str | None = None
    reason: str | None = None
    label: str | None = None
    user: str | None = None
    note: str | None = None
    previous: str | None = None

    def __post_init__(self) -> None:
        if not self.ts:
            object.__setattr__(self, "ts", utc_now_iso())

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict without the fields that do not apply."""
        return {k: (str(v) if k == "type" else v) for k, v in asdict(self).items() if v is not None}

    def to_json(self) -> str:
        """The event as one line of JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


class Subscription:
    """A subscriber's bounded queue of events; iterate it with `async for`."""

    def __init__(self, name: str, maxsize: int) -> None:
        self.name = name
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.closed = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if self.closed and self.queue.empty():
            raise StopAsyncIteration
        return await self.queue.get()


class EventBus:
    """Fans events out to subscribers; `publish` runs on the event loop and never blocks."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._listeners: list[Callable[[Event], None]] = []

    def subscribe(self, name: str, maxsize: int = SUBSCRIBER_QUEUE_EVENTS) -> Subscription:
        """A new queue that receives every event published from now on."""
        sub = Subscription(name, maxsize)
        self._subscriptions.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to `sub`."""
        sub.closed = True
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call `listener(event)` synchronously for each event (cheap observers only)."""
        self._listeners.append(listener)

    def publish(self, event: Event) -> None:
        """Deliver `event` to every listener and subscriber."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("event listener failed", extra={"call_id": event.call_id})
        for sub in list(self._subscriptions):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                logger.warning("subscriber %s fell behind; cut off", sub.name)
                self.unsubscribe(sub)
