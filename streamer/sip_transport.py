"""SIP transports on asyncio: UDP datagrams and TCP streams framed by Content-Length.

Both hand each complete message to a `MessageHandler` with the `Peer` to answer.
Oversized datagrams are dropped; a TCP stream whose headers exceed the limit, or
whose message lacks Content-Length (RFC 3261 18.3: mandatory over streams), is
answered (when possible) and closed, since its framing can no longer be trusted.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

logger = logging.getLogger(__name__)

_CONTENT_LENGTH_RE = re.compile(
    rb"^(?:content-length|l)[ \t]*:[ \t]*(\d{1,9})[ \t]*\r?$", re.IGNORECASE | re.MULTILINE
)
TCP_IDLE_TIMEOUT_S = 300.0  # an idle connection is closed (RFC 3261 18: a UA may close it)


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from, and so where its responses go.

    Attributes:
        transport: "UDP" or "TCP".
        addr: The peer's (host, port) as seen on the socket.
        local: Our (host, port) the message arrived on.
        writer: The TCP stream, None for UDP.
    """

    transport: str
    addr: tuple[str, int]
    local: tuple[str, int]
    writer: asyncio.StreamWriter | None = None


class FramingError(Exception):
    """A TCP stream cannot be framed any more: the connection must close."""


MessageHandler = Callable[[bytes, Peer], None]
DropHandler = Callable[[int, Peer], None]


class UdpEndpoint(asyncio.DatagramProtocol):
    """The UDP socket: one datagram is one message (RFC 3261 18.1.1)."""

    def __init__(
        self, on_message: MessageHandler, on_oversized: DropHandler, max_bytes: int
    ) -> None:
        self._on_message = on_message
        self._on_oversized = on_oversized
        self._max_bytes = max_bytes
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport; runs on the event loop."""
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.local = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        """Hand one datagram on; never raises, so the socket keeps reading."""
        peer = Peer("UDP", (str(addr[0]), int(addr[1])), self.local)
        if len(data) > self._max_bytes:
            self._on_oversized(len(data), peer)
            return
        if not data.strip(b"\r\n\x00 "):  # keep-alive (RFC 5626 4.4.1)
            return
        self._on_message(data, peer)

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (port unreachable) are expected from gone peers."""
        logger.debug("SIP UDP error: %s", exc, extra={"stage": "sip"})

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send one datagram, if the socket is still open."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)


async def read_tcp_message(reader: asyncio.StreamReader, max_bytes: int) -> bytes | None:
    """Read one message from a stream; None at a clean end of stream.

    Raises:
        FramingError: headers too long, no Content-Length, or body too long.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise FramingError("connection closed inside a message") from None
        return None
    except asyncio.LimitOverrunError:
        raise FramingError(f"headers longer than {max_bytes} bytes") from None
    head = head.lstrip(b"\r\n")
    if not head.strip():
        return b""  # CRLF keep-alives between messages
    match = _CONTENT_LENGTH_RE.search(head)
    if match is None:
        raise FramingError("Content-Length is required over TCP", head)
    length = int(match.group(1))
    if len(head) + length > max_bytes:
        raise FramingError(f"message longer than {max_bytes} bytes", head)
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise FramingError("connection closed inside a body") from None
    return head + body


RefusedHandler = Callable[[tuple[str, int], int], None]


class TcpListener:
    """Accepts TCP connections and frames their messages; owns the connection tasks.

    At most `max_connections` are served at once: a connection past that is closed
    at once, unread, and reported to `on_refused` with its address and the count open.
    """

    def __init__(
        self,
        on_message: MessageHandler,
        on_framing_error: MessageHandler,
        max_bytes: int,
        *,
        max_connections: int,
        on_refused: RefusedHandler,
    ) -> None:
        self._on_message = on_message
        self._on_framing_error = on_framing_error
        self._max_bytes = max_bytes
        self._max_connections = max_connections
        self._on_refused = on_refused
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def connections(self) -> int:
        """TCP connections open now."""
        return len(self._writers)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; returns the bound (host, port)."""
        self._server = await asyncio.start_server(
            self._serve, host, port, limit=self._max_bytes, reuse_address=True
        )
        sockname: tuple[str, int] = self._server.sockets[0].getsockname()[:2]
        return sockname

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        addr = writer.get_extra_info("peername")[:2]
        local = writer.get_extra_info("sockname")[:2]
        peer = Peer("TCP", (str(addr[0]), int(addr[1])), (str(local[0]), int(local[1])), writer)
        if len(self._writers) >= self._max_connections:
            self._on_refused(peer.addr, len(self._writers))
            writer.close()
            return
        self._writers.add(writer)
        try:
            await self._read_loop(reader, peer)
        except FramingError as exc:
            logger.warning("SIP TCP from %s: %s", peer.addr, exc.args[0], extra={"stage": "sip"})
            if len(exc.args) > 1:
                self._on_framing_error(exc.args[1], peer)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _read_loop(self, reader: asyncio.StreamReader, peer: Peer) -> None:
        while True:
            data = await asyncio.wait_for(
                read_tcp_message(reader, self._max_bytes), TCP_IDLE_TIMEOUT_S
            )
            if data is None:
                return
            if data:
                self._on_message(data, peer)

    async def aclose(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


def send_tcp(writer: asyncio.StreamWriter | None, data: bytes) -> bool:
    """Write to a TCP peer; False when the connection is gone."""
    if writer is None or writer.is_closing():
        return False
    writer.write(data)
    return True
