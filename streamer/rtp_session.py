"""One UDP endpoint per RTP stream, taken from a pool of ports (RFC 3550, RFC 3551).

`open_rtp_stream` binds a free even port of the configured range and returns an
`RtpStream`: an asyncio datagram protocol that checks the source address, parses the
packet and hands it to an `RtpPlayout`, which pushes 20 ms frames to the `FrameSink`.
Everything runs on the event loop; the per-packet path does no logging unless debug is
enabled and counts into plain integers, flushed to Prometheus at most once a second and
at close. Only the even (RTP) port is bound: RTCP to port + 1 is not listened for, and
RTCP multiplexed on the RTP port (RFC 5761) is accepted and ignored.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, cast

from alerts.metrics import Metrics
from alerts.types import Ingress
from inference.types import FrameSink
from streamer.errors import IngressError, RtpParseError
from streamer.resample import FrameAssembler
from streamer.rtp import LOSS_AFTER_PACKETS, JitterBuffer, is_rtcp, parse_rtp
from streamer.rtp_metrics import RtpCounters
from streamer.rtp_playout import STATIC_PAYLOAD_TYPES, RtpPlayout, RtpStats

__all__ = ["RtpPortPool", "RtpStats", "RtpStream", "open_rtp_stream"]

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 2.0  # wait this long for the socket to close before releasing the port


class RtpPortPool:
    """The even UDP ports of `[port_min, port_max]`, handed out least recently used first.

    Releasing puts a port at the back of the queue, so a late packet of an ended call is
    unlikely to reach the stream that reuses its port. Used on the event loop only.

    Args:
        port_min: Lowest port of the range (rounded up to even).
        port_max: Highest port of the range.
    """

    def __init__(self, port_min: int, port_max: int) -> None:
        first = port_min + (port_min % 2)
        ports = range(first, port_max + 1, 2)
        if not ports:
            raise ValueError(f"no even port in [{port_min}, {port_max}]")
        self._free: deque[int] = deque(ports)
        self._used: set[int] = set()

    @property
    def available(self) -> int:
        """Ports free to hand out."""
        return len(self._free)

    @property
    def in_use(self) -> frozenset[int]:
        """Ports handed out and not yet released."""
        return frozenset(self._used)

    def acquire(self) -> int:
        """Take the least recently used free port.

        Raises:
            IngressError: Every port of the range is in use.
        """
        if not self._free:
            raise IngressError(f"no free RTP port ({len(self._used)} in use)")
        port = self._free.popleft()
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        """Give a port back; releasing a port twice or one never acquired does nothing."""
        if port in self._used:
            self._used.remove(port)
            self._free.append(port)


class RtpStream(asyncio.DatagramProtocol):
    """One participant's RTP stream on its own UDP port; made by `open_rtp_stream`.

    Attributes:
        port: The local UDP port (even).
    """

    def __init__(
        self,
        pool: RtpPortPool,
        port: int,
        playout: RtpPlayout,
        counters: RtpCounters,
        *,
        timeout_s: float,
        on_timeout: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self._pool = pool
        self._playout = playout
        self._counters = counters
        self._timeout_s = timeout_s
        self._on_timeout = on_timeout
        self._clock = clock
        self._extra = {"call_id": playout.assembler.call_id, "stage": "rtp"}
        self._remote: tuple[str, int] | None = None  # packets must come from here
        self._held = False
        self._fired = False  # on_timeout was called and no RTP came since
        self._wake = asyncio.Event()  # unhold, or RTP after a timeout: the watcher re-arms
        self._last_rx = clock()
        self._transport: asyncio.DatagramTransport | None = None
        self._lost = asyncio.get_running_loop().create_future()
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False

    # -- asyncio.DatagramProtocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self._transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        if not self._lost.done():
            self._lost.set_result(None)

    def error_received(self, exc: Exception) -> None:  # noqa: D102
        if logger.isEnabledFor(logging.DEBUG):  # ICMP errors for our sends; we send nothing
            logger.debug("rtp port %d: %s", self.port, exc, extra=self._extra)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Handle one datagram; never raises (a bad packet is counted and skipped)."""
        counters = self._counters
        remote = self._remote
        if remote is not None and (addr[0] != remote[0] or addr[1] != remote[1]):
            counters.unknown_source += 1
            return
        if is_rtcp(data):
            counters.rtcp += 1
            return
        now = self._clock()
        try:
            self._playout.receive(parse_rtp(data), now)
        except RtpParseError as exc:
            counters.decode_errors += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("rtp port %d: skipped: %s", self.port, exc, extra=self._extra)
            return
        except Exception:  # a bug must not kill the socket: log it and keep reading
            counters.decode_errors += 1
            logger.exception("rtp port %d: packet handling failed", self.port, extra=self._extra)
            return
        if remote is None:  # latch on the first source that sent a valid RTP packet
            self._remote = (addr[0], addr[1])
        self._last_rx = now
        if self._fired:
            self._rearm()
        if now - counters.flushed_at >= counters.flush_interval_s:
            counters.flush(self._playout, now)

    # -- control ----------------------------------------------------------------------

    def set_remote(self, addr: tuple[str, int] | None, payload_types: Mapping[int, str]) -> None:
        """Apply the remote SDP: where RTP comes from and what its payload types mean.

        Args:
            addr: The only source accepted, (host, port) as the datagram shows it. None
                latches on the first source of a valid RTP packet, keeping a source
                already latched.
            payload_types: Payload type -> upper-case encoding name ("PCMU", "PCMA",
                "TELEPHONE-EVENT", "CN"); replaces the RFC 3551 static defaults.
        """
        if addr is not None:
            self._remote = (addr[0], addr[1])
        self._playout.set_payload_types(payload_types)
        self._last_rx = self._clock()  # new media: measure the timeout from now
        if self._fired:
            self._rearm()

    def _rearm(self) -> None:
        self._fired = False
        self._wake.set()

    def set_hold(self, held: bool) -> None:
        """Hold or resume: while held the timeout is off and gaps are not filled.

        Resuming measures the timeout afresh from now.
        """
        if held == self._held:
            return
        self._held = held
        self._playout.held = held  # the hold's silence is not media time
        self._playout.reanchor()
        if not held:
            self._last_rx = self._clock()
            self._wake.set()

    @property
    def stats(self) -> RtpStats:
        """A snapshot of this stream's counters."""
        return self._counters.snapshot(self._playout)

    def release_port(self) -> None:
        """Give the port back to the pool (done by `aclose`, or when binding failed)."""
        self._pool.release(self.port)

    def start(self) -> None:
        """Start the RTP timeout watcher (done by `open_rtp_stream`)."""
        call_id = self._playout.assembler.call_id
        self._watcher = asyncio.get_running_loop().create_task(
            self._watch_timeout(), name=f"rtp-timeout:{call_id}:{self.port}"
        )

    async def aclose(self) -> None:
        """Flush buffered audio to the sink, close the socket, release the port; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await _cancel_and_wait(self._watcher)
            try:
                self._playout.flush(self._clock())
            except Exception:
                logger.exception("rtp port %d: final flush failed", self.port, extra=self._extra)
        finally:
            if self._transport is not None:
                self._transport.close()
                try:
                    await asyncio.wait_for(asyncio.shield(self._lost), CLOSE_TIMEOUT_S)
                except TimeoutError:
                    logger.warning("rtp port %d: socket close timed out", self.port)
            self._pool.release(self.port)
            self._counters.flush(self._playout, self._clock())

    async def _watch_timeout(self) -> None:
        """Call `on_timeout` when no RTP came for `timeout_s`; never while held.

        It fires once per silence: after firing, the watcher sleeps until RTP, an unhold
        or a new remote re-arms it.
        """
        while True:
            if self._held or self._fired:
                self._wake.clear()
                await self._wake.wait()
                continue
            remaining = self._last_rx + self._timeout_s - self._clock()
            if remaining > 0:
                await asyncio.sleep(remaining)
                continue
            logger.info(
                "rtp port %d: no RTP for %.1f s", self.port, self._timeout_s, extra=self._extra
            )
            self._fired = True
            try:
                self._on_timeout()
            except Exception:
                logger.exception("rtp port %d: on_timeout failed", self.port, extra=self._extra)


async def _cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel a task and wait for it, re-raising if the caller itself is being cancelled."""
    if task is None or task.done():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def _bind(stream: RtpStream, host: str, port: int) -> bool:
    """Bind `stream` to (host, port); False (port released) when the port is taken."""
    try:
        await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: stream, local_addr=(host, port)
        )
    except OSError as exc:
        stream.release_port()
        if exc.errno == errno.EADDRINUSE:
            return False
        raise
    return True


async def open_rtp_stream(
    pool: RtpPortPool,
    host: str,
    *,
    call_id: str,
    participant_id: str,
    sink: FrameSink,
    metrics: Metrics,
    ingress: Ingress,
    jitter_packets: int,
    timeout_s: float,
    on_timeout: Callable[[], None],
) -> RtpStream:
    """Bind a free even port from `pool` on `host` and start receiving RTP there.

    Ports that the OS reports in use (EADDRINUSE) go back to the pool and the next is
    tried. The stream pushes `participant_id`'s frames to `sink` until `aclose()`.

    Args:
        pool: Where the port comes from; it is released by `RtpStream.aclose()`.
        host: Local address to bind ("0.0.0.0", "127.0.0.1", "::").
        call_id: Call the audio belongs to.
        participant_id: Participant the audio belongs to.
        sink: Receives the 20 ms frames.
        metrics: Where the RTP counters are reported.
        ingress: Label of the RTP counters.
        jitter_packets: Jitter buffer capacity in packets (`[rtp] jitter_packets`).
        timeout_s: Seconds without RTP after which `on_timeout` is called once.
        on_timeout: Called on the loop after `timeout_s` without RTP (not while held);
            once per silence, again only after RTP, an unhold or `set_remote` re-armed it.

    Returns:
        The started stream; `payload_types` default to PCMU/PCMA/CN until `set_remote`.

    Raises:
        IngressError: No port of the range could be bound.
        OSError: Binding failed for another reason than the port being in use.
    """
    for _ in range(pool.available):
        port = pool.acquire()
        playout = RtpPlayout(
            FrameAssembler(call_id, participant_id),
            sink,
            JitterBuffer(jitter_packets, min(LOSS_AFTER_PACKETS, jitter_packets - 1)),
        )
        playout.set_payload_types(STATIC_PAYLOAD_TYPES)
        stream = RtpStream(
            pool,
            port,
            playout,
            RtpCounters.bind(metrics, ingress),
            timeout_s=timeout_s,
            on_timeout=on_timeout,
        )
        if await _bind(stream, host, port):
            stream.start()
            return stream
    raise IngressError(f"no free RTP port on {host}: all {pool.available} in use by others")
