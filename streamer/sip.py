"""The SIP user agent server (RFC 3261) on UDP and TCP: a call recorder's subset.

Requests: INVITE (initial and re-INVITE), ACK, BYE, CANCEL, OPTIONS; other SIP methods
get 405, unknown ones 501. Server transactions are matched on the top Via branch
(RFC 3261 17.2.3), so a retransmitted request is answered from its transaction and
never processed twice. Media and the FrameSink are the `CallManager`'s business; the
INVITE, CANCEL, BYE and ACK flows live in `streamer.sip_invite`.

Every message is handled in isolation: a malformed one is counted, logged at warning,
answered 400 when enough of it parsed to address a response, and forgotten.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Coroutine
from typing import Any

from alerts.metrics import Metrics
from streamer.calls import CallManager
from streamer.config import SipConfig
from streamer.errors import SipParseError
from streamer.sip_dialog import (
    ALLOW,
    Dialog,
    ServerTransaction,
    build_response,
    new_tag,
    transaction_key,
)
from streamer.sip_headers import parse_name_addr, parse_via
from streamer.sip_invite import InviteHandler
from streamer.sip_message import SipMessage, parse_message, salvage_request
from streamer.sip_transport import Peer, TcpListener, UdpEndpoint, send_tcp

logger = logging.getLogger(__name__)

T1_S = 0.5  # RFC 3261 17.1.1.1: RTT estimate; T2 = 8 * T1 (4 s), timeouts 64 * T1
MAX_CALL_ID_CHARS = 256
SIP_METHODS = {"REGISTER", "SUBSCRIBE", "NOTIFY", "MESSAGE", "INFO", "UPDATE", "PRACK"}
SIP_METHODS |= {"REFER", "PUBLISH"}
METRIC_METHODS = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"} | SIP_METHODS
ACCEPT = "application/sdp, multipart/mixed, application/rs-metadata+xml"
_UNPRINTABLE_RE = re.compile(r"[^\x20-\x7e]")


def metric_method(method: str) -> str:
    """A bounded label for a method: the name for SIP methods, else "OTHER"."""
    return method if method in METRIC_METHODS else "OTHER"


def reason_text(text: str) -> str:
    """A safe reason phrase (printable ASCII, at most 120 characters)."""
    return _UNPRINTABLE_RE.sub("?", text)[:120]


class SipServer:
    """Listens for SIP on UDP and TCP `config.host:config.port` (0 = ephemeral).

    Args:
        config: The `[sip]` settings.
        calls: The session handler; the server registers itself for RTP-timeout hangups.
        metrics: Request, response, decode-error and rejection counters.
        timer_t1_s: RFC 3261 T1 (tests shorten it).

    Everything runs on the event loop; `start()` binds, `aclose()` stops.
    """

    def __init__(
        self, config: SipConfig, calls: CallManager, metrics: Metrics, *, timer_t1_s: float = T1_S
    ) -> None:
        self.config = config
        self.calls = calls
        self.metrics = metrics
        self.t1_s = timer_t1_s
        self.udp_port = 0
        self.tcp_port = 0
        self.oversized_total = 0
        self.expired_total = 0
        self.dialogs: dict[str, Dialog] = {}
        self._txns: dict[tuple[str, str], ServerTransaction] = {}
        self._udp: UdpEndpoint | None = None
        self._tcp = TcpListener(
            self._on_message,
            self._on_framing_error,
            config.max_message_bytes,
            max_connections=config.max_tcp_connections,
            on_refused=self._on_tcp_refused,
        )
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._invites = InviteHandler(self)
        calls.set_hangup(self._invites.hangup)

    async def start(self) -> None:
        """Bind UDP, then TCP on the same port (the UDP one when port 0 was asked)."""
        loop = asyncio.get_running_loop()
        size = self.config.max_message_bytes
        _, endpoint = await loop.create_datagram_endpoint(
            lambda: UdpEndpoint(self._on_message, self._on_oversized, size),
            local_addr=(self.config.host, self.config.port),
        )
        self._udp = endpoint
        self.udp_port = endpoint.local[1]
        _, self.tcp_port = await self._tcp.start(self.config.host, self.udp_port)
        logger.info(
            "SIP listening on %s udp/%d tcp/%d",
            self.config.host,
            self.udp_port,
            self.tcp_port,
            extra={"stage": "sip"},
        )

    async def aclose(self) -> None:
        """Hang up politely, stop listening, cancel pending transactions.

        Every answered call gets a BYE, every unanswered INVITE a 487, and their answers
        are awaited for at most `shutdown_bye_timeout_s` while the sockets are still
        open; new INVITEs meanwhile get 503. The calls' media end in `CallManager.aclose`.
        """
        self.closing = True
        await self._invites.hangup_all(self.config.shutdown_bye_timeout_s)
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        await self._tcp.aclose()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        self._txns.clear()
        self.dialogs.clear()

    # -- tasks, sending ---------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run `coro` as a task owned by the server (cancelled by `aclose`)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def tasks_named(self, name: str) -> list[asyncio.Task[None]]:
        """The server's pending tasks called `name`."""
        return [task for task in self._tasks if task.get_name() == name and not task.done()]

    def send(self, data: bytes, peer: Peer, addr: tuple[str, int] | None = None) -> None:
        """Send bytes over the peer's transport (UDP to `addr` or the source address)."""
        if peer.transport == "TCP":
            send_tcp(peer.writer, data)
        elif self._udp is not None:
            self._udp.send(data, addr or peer.addr)

    def respond(
        self,
        request: SipMessage,
        txn: ServerTransaction | None,
        peer: Peer,
        status: int,
        **kwargs: Any,
    ) -> bytes:
        """Send a response; it is kept on `txn` to answer retransmissions. Returns the bytes."""
        response = build_response(request, status, peer, **kwargs)
        data = response.to_bytes()
        if txn is not None:
            txn.last_response = data
            if status >= 200 and not txn.final_sent:
                txn.final_sent = True
                delay = 64 * self.t1_s  # RFC 3261 Timer H/J: absorb late retransmissions
                asyncio.get_running_loop().call_later(delay, self._expire, txn)
        self.send(data, peer)
        self.metrics.sip_responses_total.labels(metric_method(request.method), str(status)).inc()
        return data

    def local_host(self, peer: Peer) -> str:
        """Our address as the peer should see it (SDP c=, Contact, Via of our requests)."""
        if self.config.advertised_host:
            return self.config.advertised_host
        host = peer.local[0]
        if host not in ("0.0.0.0", "::", ""):
            return host
        family = socket.AF_INET6 if ":" in peer.addr[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:  # no packet is sent
            probe.connect((peer.addr[0], 9))
            return str(probe.getsockname()[0])

    def contact(self, peer: Peer) -> str:
        """Our Contact header value for the peer's transport."""
        host = self.local_host(peer)
        host = f"[{host}]" if ":" in host else host
        if peer.transport == "TCP":
            return f"<sip:clonewatch@{host}:{self.tcp_port};transport=tcp>"
        return f"<sip:clonewatch@{host}:{self.udp_port}>"

    # -- receiving --------------------------------------------------------------------

    @property
    def transactions(self) -> int:
        """Server transactions kept now (answering retransmissions)."""
        return len(self._txns)

    @property
    def tcp_connections(self) -> int:
        """SIP TCP connections open now."""
        return self._tcp.connections

    def _on_tcp_refused(self, addr: tuple[str, int], open_now: int) -> None:
        self.metrics.dropped_total.labels("sip", "tcp_connections").inc()
        logger.warning(
            "SIP TCP connection from %s refused: %d connections open (max_tcp_connections)",
            addr,
            open_now,
            extra={"stage": "sip"},
        )

    def _add_transaction(self, txn: ServerTransaction) -> None:
        """Keep `txn`; past `max_transactions` the oldest one is expired (forgotten)."""
        if len(self._txns) >= self.config.max_transactions:
            oldest = next(iter(self._txns))
            del self._txns[oldest]
            self.metrics.dropped_total.labels("sip", "transactions").inc()
            self.expired_total += 1
            if self.expired_total == 1 or self.expired_total % 1000 == 0:
                logger.warning(
                    "SIP transaction table full (%d): oldest expired, %d so far",
                    self.config.max_transactions,
                    self.expired_total,
                    extra={"stage": "sip"},
                )
        self._txns[txn.key] = txn

    def _expire(self, txn: ServerTransaction) -> None:
        if self._txns.get(txn.key) is txn:
            del self._txns[txn.key]

    def _on_oversized(self, size: int, peer: Peer) -> None:
        self.oversized_total += 1
        self.metrics.decode_errors_total.labels("sip").inc()
        logger.warning("SIP datagram of %d bytes from %s dropped", size, peer.addr)

    def _on_framing_error(self, head: bytes, peer: Peer) -> None:
        self.metrics.decode_errors_total.labels("sip").inc()
        request = salvage_request(head)
        if request is not None:
            self.respond(
                request, None, peer, 400, reason="Missing Content-Length", to_tag=new_tag()
            )

    def _on_message(self, data: bytes, peer: Peer) -> None:
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self._on_malformed(data, peer, str(exc))
            return
        try:
            if message.is_request:
                self._on_request(message, peer)
            else:
                self._invites.on_response(message)
        except SipParseError as exc:
            self._on_malformed(data, peer, str(exc))
        except Exception:
            logger.exception("SIP message handling failed", extra={"call_id": message.call_id})

    def _on_malformed(self, data: bytes, peer: Peer, why: str) -> None:
        self.metrics.decode_errors_total.labels("sip").inc()
        request = salvage_request(data)
        call_id = request.call_id if request is not None else ""
        logger.warning("malformed SIP from %s: %s", peer.addr, why, extra={"call_id": call_id})
        if request is not None:
            try:
                reason = reason_text(f"Bad Request ({why})")
                self.respond(request, None, peer, 400, reason=reason, to_tag=new_tag())
            except SipParseError:  # not even a usable Via: nobody to answer
                pass

    def _on_request(self, request: SipMessage, peer: Peer) -> None:
        self.metrics.sip_requests_total.labels(metric_method(request.method)).inc()
        parse_via(request.header_values("Via")[0])
        call_id = request.call_id
        if len(call_id) > MAX_CALL_ID_CHARS or not call_id.isprintable() or not call_id.isascii():
            raise SipParseError("Call-ID longer than 256 characters or not printable ASCII")
        if request.method == "ACK":
            self._invites.on_ack(request)
            return
        key = transaction_key(request)
        txn = self._txns.get(key)
        if txn is not None:  # a retransmission: answer from the transaction
            if txn.last_response is not None:
                self.send(txn.last_response, peer)
            return
        txn = ServerTransaction(key, peer)
        self._add_transaction(txn)
        self._dispatch(request, peer, txn)

    def _dispatch(self, request: SipMessage, peer: Peer, txn: ServerTransaction) -> None:
        method = request.method
        if method == "INVITE":
            self._invites.on_invite(request, peer, txn)
        elif method == "CANCEL":
            self._invites.on_cancel(request, peer, txn)
        elif method == "BYE":
            self._invites.on_bye(request, peer, txn)
        elif method == "OPTIONS":
            headers = [("Allow", ALLOW), ("Accept", ACCEPT), ("Contact", self.contact(peer))]
            self.respond(request, txn, peer, 200, to_tag=new_tag(), headers=headers)
        elif method in SIP_METHODS:
            self.respond(request, txn, peer, 405, to_tag=new_tag(), headers=[("Allow", ALLOW)])
        else:
            self.respond(request, txn, peer, 501, to_tag=new_tag())

    def transaction(self, key: tuple[str, str]) -> ServerTransaction | None:
        """The live server transaction of `key`, if any."""
        return self._txns.get(key)

    def dialog_for(self, request: SipMessage) -> Dialog | None:
        """The dialog an in-dialog request belongs to (Call-ID and both tags match)."""
        dialog = self.dialogs.get(request.call_id)
        if dialog is None:
            return None
        to_tag = parse_name_addr(request.header("To") or "").tag
        from_tag = parse_name_addr(request.header("From") or "").tag
        if to_tag != dialog.local_tag or from_tag != dialog.remote_tag:
            return None
        return dialog
