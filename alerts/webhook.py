"""The webhook sink: each selected event POSTed as JSON, signed, retried, dead-lettered.

    POST <url>
    Content-Type: application/json
    X-Clonewatch-Event: alert.raised
    X-Clonewatch-Delivery: <hex id, the same on every retry of one event>
    X-Clonewatch-Timestamp: <unix seconds of this attempt>
    X-Clonewatch-Signature: sha256=<hex HMAC-SHA256(secret, body)>

    {"type": "alert.raised", "ts": "...", "call_id": "...", ...}   (the event schema)

A receiver checks the signature over the raw body with the shared secret, and uses the
delivery id to ignore a retry of an event it already took. A 2xx answer is success;
429, 5xx, timeouts and connection errors are retried with exponential backoff
(`backoff_s`, doubled per try, capped at `backoff_max_s`, with up to 10 % jitter); any
other status, or the last failed try, writes a dead-letter line (the event, the URL,
the tries and the last error) to `dead_letter_path`.

`deliver` only starts a delivery task, so a slow or unreachable receiver never holds up
the pipeline, other sinks, or later events of this sink. At most `max_in_flight`
deliveries wait at once; beyond that an event goes straight to the dead letter.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp

from alerts.config import WebhookConfig
from alerts.events import Event, EventType
from alerts.metrics import Metrics

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Clonewatch-Signature"
TIMESTAMP_HEADER = "X-Clonewatch-Timestamp"
EVENT_HEADER = "X-Clonewatch-Event"
DELIVERY_HEADER = "X-Clonewatch-Delivery"
CLOSE_TIMEOUT_S = 5.0  # how long `aclose` lets running deliveries finish
JITTER = 0.1


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class RetryableError(Exception):
    """A try that failed in a way worth trying again (5xx, 429, network, timeout)."""


class PermanentError(Exception):
    """A try that a retry cannot fix (a 4xx other than 429)."""


class WebhookSink:
    """POSTs events to `config.url`; a `Sink` for `alerts.delivery.SinkRunner`.

    Args:
        config: URL, secret, retry policy and dead-letter file.
        metrics: Counts each failed try in `sink_failures_total` (the runner only sees
            that the event was handed over).
        name: The sink's metrics label.
    """

    def __init__(
        self, config: WebhookConfig, metrics: Metrics | None = None, name: str = "webhook"
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._name = name
        if not config.secret.get_secret_value():
            logger.warning(
                "webhook secret is empty: set CLONEWATCH_WEBHOOK__SECRET in the environment",
                extra={"stage": "webhook"},
            )
        self._types = frozenset(config.types)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._dead_letter = Path(config.dead_letter_path)

    @property
    def name(self) -> str:
        """The sink's metrics label."""
        return self._name

    def wanted(self, event: Event) -> bool:
        """Whether this sink sends `event` (scores are never sent unless listed)."""
        if self._types:
            return str(event.type) in self._types
        return event.type != EventType.PARTICIPANT_SCORE

    async def deliver(self, event: Event) -> None:
        """Start delivering `event` in the background; returns at once."""
        if not self.wanted(event):
            return
        if len(self._tasks) >= self._config.max_in_flight:
            await self._write_dead_letter(event, 0, "too many deliveries in flight")
            return
        task = asyncio.get_running_loop().create_task(
            self._send(event), name=f"webhook:{event.call_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Let running deliveries finish (bounded), dead-letter the rest, close the client."""
        pending = set(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _send(self, event: Event) -> None:
        body = event.to_json().encode()
        delivery = secrets.token_hex(16)
        error = ""
        tries = 0
        try:
            for tries in range(1, self._config.max_attempts + 1):
                try:
                    await self._post(event, body, delivery)
                    return
                except RetryableError as exc:
                    error = str(exc)
                    self._count_failure()
                if tries < self._config.max_attempts:
                    await asyncio.sleep(self._delay(tries))
        except asyncio.CancelledError:
            await self._write_dead_letter(event, tries, f"shut down while retrying: {error}")
            raise
        except PermanentError as exc:
            error = str(exc)
            self._count_failure()
        await self._write_dead_letter(event, tries, error)

    def _count_failure(self) -> None:
        if self._metrics is not None:
            self._metrics.sink_failures_total.labels(self._name).inc()

    def _delay(self, tries: int) -> float:
        base = min(self._config.backoff_s * 2.0 ** (tries - 1), self._config.backoff_max_s)
        return base * (1.0 + JITTER * random.random())  # noqa: S311 - jitter, not crypto

    async def _post(self, event: Event, body: bytes, delivery: str) -> None:
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: str(event.type),
            DELIVERY_HEADER: delivery,
            TIMESTAMP_HEADER: str(int(time.time())),
            # The secret stays a SecretStr until this line, so no repr or log can show it.
            SIGNATURE_HEADER: sign(self._config.secret.get_secret_value().encode(), body),
        }
        timeout = aiohttp.ClientTimeout(total=self._config.timeout_s)
        try:
            async with self._client().post(
                self._config.url, data=body, headers=headers, timeout=timeout
            ) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        if 200 <= status < 300:
            return
        if status == 429 or status >= 500:
            raise RetryableError(f"HTTP {status}")
        raise PermanentError(f"HTTP {status}")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _write_dead_letter(self, event: Event, tries: int, error: str) -> None:
        record: dict[str, Any] = {
            "ts": event.ts,
            "failed_at": time.time(),
            "url": self._config.url,
            "tries": tries,
            "error": error,
            "event": event.to_dict(),
        }
        logger.error(
            "webhook gave up on %s after %d tries: %s",
            event.type,
            tries,
            error,
            extra={"call_id": event.call_id, "stage": "webhook"},
        )
        line = json.dumps(record, separators=(",", ":")) + "\n"
        await asyncio.to_thread(_append, self._dead_letter, line)


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
