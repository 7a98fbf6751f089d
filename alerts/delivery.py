"""Event consumers of the bus: the `Sink` seam, JSON-lines and log sinks, and their runner.

Each sink runs in its own `SinkRunner` task with its own bounded bus subscription, so a
slow or failing sink never delays the pipeline (which only `publish`es) or another sink.
Issue 4's webhook and syslog sinks plug in by implementing `Sink`::

    bus ──publish──> Subscription(queue) ──SinkRunner task──> sink.deliver(event)
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from pathlib import Path
from typing import Protocol

from alerts.events import Event, EventBus, EventType
from alerts.metrics import Metrics

logger = logging.getLogger(__name__)

JSONL_QUEUE_LINES = 10_000  # lines waiting for the JSONL writer thread
JSONL_PUT_TIMEOUT_S = 5.0  # longest a full writer queue may hold up the JSONL runner
DRAIN_TIMEOUT_S = 5.0  # longest `SinkRunner.aclose` waits for queued events to be delivered


class Sink(Protocol):
    """A consumer of bus events; `deliver` runs on the event loop in the sink's own task."""

    @property
    def name(self) -> str:
        """Short, bounded name used as the metrics label (e.g. "jsonl", "webhook")."""
        ...

    async def deliver(self, event: Event) -> None:
        """Deliver one event; raising counts a failure and the runner goes on."""
        ...

    async def aclose(self) -> None:
        """Release resources after the last `deliver`."""
        ...


class JsonlSink:
    """Appends each event as one JSON line to a file, on a dedicated writer thread.

    The file is opened in append mode and flushed after every line (no fsync: the JSONL
    log is a convenience copy; the store is the durable record). `deliver` only hands the
    line to a bounded queue; when the writer has failed, the next `deliver` raises.

    Args:
        path: File to append to; parent folders are created.
        name: The sink's metrics label.
    """

    def __init__(self, path: str | Path, name: str = "jsonl") -> None:
        self._name = name
        self._path = Path(path)
        self._queue: queue.Queue[str | None] = queue.Queue(JSONL_QUEUE_LINES)
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._write_loop, name=f"jsonl:{path}", daemon=True)
        self._started = False

    @property
    def name(self) -> str:
        """The sink's metrics label."""
        return self._name

    async def deliver(self, event: Event) -> None:
        """Queue the event's JSON line for the writer thread."""
        if not self._started:
            self._started = True
            self._thread.start()
        if self._error is not None:
            raise OSError(f"JSONL writer for {self._path} failed: {self._error}")
        line = event.to_json()
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            # The writer is behind (slow disk): wait off the loop, bounded.
            await asyncio.to_thread(self._queue.put, line, True, JSONL_PUT_TIMEOUT_S)

    async def aclose(self) -> None:
        """Let the writer finish the queued lines and close the file."""
        if not self._started:
            return
        await asyncio.to_thread(self._queue.put, None)
        await asyncio.to_thread(self._thread.join)

    def _write_loop(self) -> None:
        """Writer thread: append lines until the None sentinel."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("a", encoding="utf-8") as out:
                while (line := self._queue.get()) is not None:
                    out.write(line + "\n")
                    out.flush()
        except OSError as exc:
            self._error = exc
            logger.error(
                "JSONL writer for %s failed: %s", self._path, exc, extra={"stage": "jsonl"}
            )
            while self._queue.get() is not None:  # keep draining so `put` never blocks forever
                pass


class LogSink:
    """Logs each event on one line: INFO, and WARNING for alert events.

    Only identifiers, the verdict and the score are logged: free text that operators
    type (notes, reasons) and user names stay out of the log.
    """

    def __init__(self, log: logging.Logger | None = None, name: str = "log") -> None:
        self._log = log if log is not None else logger
        self._name = name

    @property
    def name(self) -> str:
        """The sink's metrics label."""
        return self._name

    async def deliver(self, event: Event) -> None:
        """Log the event."""
        level = logging.WARNING if event.type.startswith("alert.") else logging.INFO
        if event.type == EventType.PARTICIPANT_SCORE:
            level = logging.DEBUG  # one a second per participant: too chatty for INFO
        if not self._log.isEnabledFor(level):
            return
        self._log.log(
            level,
            "%s call=%s participant=%s verdict=%s score=%s media_s=%s alert=%s",
            event.type,
            event.call_id,
            event.participant_id or "-",
            event.verdict or "-",
            "-" if event.score is None else f"{event.score:.3f}",
            "-" if event.media_s is None else f"{event.media_s:.2f}",
            event.alert_id or "-",
            extra={"call_id": event.call_id, "stage": "events"},
        )

    async def aclose(self) -> None:
        """Nothing to release."""


class SinkRunner:
    """Runs one sink on its own bus subscription and task.

    Args:
        sink: The consumer.
        bus: The bus to subscribe to (at `start`).
        metrics: Counts deliveries and failures by sink name.
    """

    def __init__(self, sink: Sink, bus: EventBus, metrics: Metrics) -> None:
        self._sink = sink
        self._bus = bus
        self._metrics = metrics
        self._sub = bus.subscribe(sink.name)
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Start delivering events published from the runner's creation on."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"sink:{self._sink.name}"
            )

    async def aclose(self) -> None:
        """Deliver what is already queued (bounded by DRAIN_TIMEOUT_S), stop, close the sink."""
        self._closing = True
        self._bus.unsubscribe(self._sub)
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(self._sub.queue.join(), DRAIN_TIMEOUT_S)
            except TimeoutError:
                logger.warning("sink %s: undelivered events at close", self._sink.name)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        await self._sink.aclose()

    async def _run(self) -> None:
        name = self._sink.name
        while True:
            if self._sub.closed and self._sub.queue.empty() and not self._closing:
                # Cut off by the bus for falling behind: events were lost; rejoin.
                logger.error("sink %s fell behind and lost events; resubscribing", name)
                self._metrics.sink_failures_total.labels(name).inc()
                self._sub = self._bus.subscribe(name)
            event = await self._sub.queue.get()
            try:
                await self._sink.deliver(event)
            except Exception:
                self._metrics.sink_failures_total.labels(name).inc()
                logger.exception(
                    "sink %s failed on %s", name, event.type, extra={"call_id": event.call_id}
                )
            else:
                self._metrics.sink_deliveries_total.labels(name).inc()
            finally:
                self._sub.queue.task_done()
