r"""The syslog sink: events as RFC 5424 messages over UDP (RFC 5426) or a unix socket.

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [clonewatch@32473 k="v" ...] MSG

PRI is `facility * 8 + severity`; MSGID is the event type; the structured data carry
the event's fields (values escaped as RFC 5424 section 6.3.3 asks: `"`, `\` and `]`);
MSG is a one-line summary. Sending a datagram never blocks: the socket is non-blocking
and a datagram the kernel will not take is counted as a failure and dropped.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from alerts.config import SyslogConfig
from alerts.events import Event, EventType

logger = logging.getLogger(__name__)

SD_ID = "clonewatch@32473"  # 32473: the example enterprise number of RFC 5612
MAX_DATAGRAM_BYTES = 2048  # RFC 5426 section 3.2: every receiver must take 2048 octets
NIL = "-"

# Severities (RFC 5424 table 2).
ALERT, CRITICAL, WARNING, NOTICE, INFO = 1, 2, 4, 5, 6

SD_FIELDS = (
    "call_id",
    "participant_id",
    "line",
    "ingress",
    "media_s",
    "score",
    "verdict",
    "model",
    "alert_id",
    "user",
    "reason",
    "note",
)


def severity(event: Event) -> int:
    """How loud an event is: a raised alert is `alert`, a synthetic verdict `critical`."""
    if event.type == EventType.ALERT_RAISED:
        return ALERT
    if event.verdict == "synthetic" and event.type == EventType.PARTICIPANT_VERDICT:
        return CRITICAL
    if event.type == EventType.ALERT_ESCALATED or event.verdict == "suspect":
        return WARNING
    if str(event.type).startswith("alert."):
        return NOTICE
    return INFO


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _sd_value(value: Any) -> str:
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    return _sd_escape("".join(c if c.isprintable() else " " for c in text))


def format_message(event: Event, facility: int, app_name: str, hostname: str) -> bytes:
    """One RFC 5424 message for `event`, at most MAX_DATAGRAM_BYTES long."""
    pri = facility * 8 + severity(event)
    data = event.to_dict()
    params = " ".join(f'{k}="{_sd_value(data[k])}"' for k in SD_FIELDS if k in data)
    summary = (
        f"{event.type} call={event.call_id} participant={event.participant_id or NIL}"
        f" verdict={event.verdict or NIL} line={event.line or NIL}"
    )
    header = f"<{pri}>1 {event.ts} {hostname or NIL} {app_name} {os.getpid()} {event.type}"
    message = f"{header} [{SD_ID} {params}] {summary}".encode("utf-8", "replace")
    return message[:MAX_DATAGRAM_BYTES]


class SyslogSink:
    """Sends selected events to a syslog receiver; a `Sink` for `SinkRunner`.

    Args:
        config: Target (`udp:HOST:PORT` or `unix:/PATH`), facility, app name, types.
        name: The sink's metrics label.
    """

    def __init__(self, config: SyslogConfig, name: str = "syslog") -> None:
        self._config = config
        self._name = name
        self._types = frozenset(config.types)
        self._hostname = socket.gethostname().split(".")[0][:255]
        kind, _, rest = config.target.partition(":")
        self._address: str | tuple[str, int]
        if kind == "unix":
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._address = rest
        else:
            host, _, port = rest.rpartition(":")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
            self._address = (host.strip("[]"), int(port))
        self._sock.setblocking(False)

    @property
    def name(self) -> str:
        """The sink's metrics label."""
        return self._name

    async def deliver(self, event: Event) -> None:
        """Send the event's message; raises OSError when the socket refuses it."""
        if self._types and str(event.type) not in self._types:
            return
        if not self._types and event.type == EventType.PARTICIPANT_SCORE:
            return
        message = format_message(
            event, self._config.facility, self._config.app_name, self._hostname
        )
        self._sock.sendto(message, self._address)

    async def aclose(self) -> None:
        """Close the socket."""
        self._sock.close()
