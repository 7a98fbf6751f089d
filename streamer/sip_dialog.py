"""Dialog and transaction state of the SIP user agent server, and message builders.

RFC 3261 8.2.6 (responses), 12 (dialogs), 13.3.1.4 (2xx retransmission until ACK),
15.1.1 (BYE), 17.2 (server transactions, matched by the top Via branch).
"""

from __future__ import annotations

import asyncio
import enum
import secrets
from dataclasses import dataclass, field

from streamer.sip_headers import parse_name_addr, parse_via
from streamer.sip_message import SipMessage
from streamer.sip_transport import Peer

BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 8.1.1.7
SERVER_NAME = "clonewatch"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"
REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    400: "Bad Request",
    405: "Method Not Allowed",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def new_tag() -> str:
    """A random tag for To/From (RFC 3261 19.3: at least 32 bits of randomness)."""
    return secrets.token_hex(6)


def new_branch() -> str:
    """A random Via branch carrying the RFC 3261 magic cookie."""
    return BRANCH_MAGIC + secrets.token_hex(8)


class DialogState(enum.Enum):
    """Where a dialog stands (RFC 3261 12)."""

    EARLY = "early"  # INVITE received, no final response yet
    CONFIRMING = "confirming"  # 200 OK sent, waiting for ACK
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass
class ServerTransaction:
    """A request we are answering; a retransmission gets `last_response` again.

    Attributes:
        key: (branch, method), ACK and CANCEL matched to INVITE by the caller.
        peer: Where responses go.
        last_response: The newest response sent, serialised.
        final_sent: A final (>= 200) response was sent.
        acked: Set when the ACK for a final INVITE response arrives.
        cancelled: Set by CANCEL while the INVITE is unanswered.
    """

    key: tuple[str, str]
    peer: Peer
    last_response: bytes | None = None
    final_sent: bool = False
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Dialog:
    """One call's SIP dialog, as the UAS.

    Attributes:
        call_id: The Call-ID, also the call's id everywhere in clonewatch.
        local_tag: Our To tag.
        remote_tag: The caller's From tag.
        local_header: Our To header value, with our tag (the From of our BYE).
        remote_header: The caller's From header value (the To of our BYE).
        remote_target: The caller's Contact URI (the Request-URI of our BYE).
        peer: The transport the dialog came on.
        state: Dialog state.
        remote_cseq: Highest CSeq seen from the caller.
        local_cseq: Our CSeq counter for requests we send.
        invite: The INVITE (initial or re-INVITE) transaction in progress, if any.
        end_reason: Why an unanswered INVITE is being ended ("cancel", "bye", ...).
    """

    call_id: str
    local_tag: str
    remote_tag: str
    local_header: str
    remote_header: str
    remote_target: str
    peer: Peer
    state: DialogState = DialogState.EARLY
    remote_cseq: int = 0
    local_cseq: int = 0
    invite: ServerTransaction | None = None
    end_reason: str = ""


def transaction_key(request: SipMessage) -> tuple[str, str]:
    """The server transaction a request belongs to (RFC 3261 17.2.3).

    ACK maps to its INVITE's transaction; CANCEL has its own (same branch, method
    CANCEL). Peers without an RFC 3261 branch are matched on Call-ID, CSeq number and
    From tag instead.
    """
    method = "INVITE" if request.method == "ACK" else request.method
    via = parse_via(request.header_values("Via")[0])
    if via.branch.startswith(BRANCH_MAGIC):
        return f"{via.branch}|{via.host}|{via.port}", method
    from_tag = parse_name_addr(request.header("From") or "").tag
    return f"{request.call_id}|{request.cseq[0]}|{from_tag}", method


def build_response(
    request: SipMessage,
    status: int,
    peer: Peer,
    *,
    to_tag: str = "",
    reason: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> SipMessage:
    """A response to `request` (RFC 3261 8.2.6): Via, From, To, Call-ID, CSeq copied.

    Over UDP the top Via gets `received`/`rport` so the peer sees what we answered to
    (RFC 3261 18.2.1, RFC 3581); responses are sent to the source address.
    """
    response = SipMessage(status=status, reason=reason or REASONS.get(status, "Unknown"))
    for name, value in request.headers:
        if name == "Via":
            response.headers.append((name, value))
    if response.headers and peer.transport == "UDP":
        response.headers[0] = ("Via", _stamp_via(response.headers[0][1], peer))
    to = request.header("To") or ""
    if to_tag and status > 100 and ";tag=" not in to.replace(" ", "").lower():
        to = f"{to};tag={to_tag}"
    response.headers += [
        ("From", request.header("From") or ""),
        ("To", to),
        ("Call-ID", request.call_id),
        ("CSeq", request.header("CSeq") or ""),
        ("Server", SERVER_NAME),
    ]
    response.headers += headers or []
    response.body = body
    return response


def _stamp_via(value: str, peer: Peer) -> str:
    first, _, rest = value.partition(",")
    via = parse_via(first)
    host, port = peer.addr
    parts = [first.strip()]
    if via.host != host:
        parts.append(f"received={host}")
    if "rport" in via.params and not via.params["rport"]:
        parts[0] = ";".join(p for p in parts[0].split(";") if p.strip().lower() != "rport")
        parts.append(f"rport={port}")
    stamped = ";".join(parts)
    return f"{stamped},{rest}" if rest else stamped


def build_bye(dialog: Dialog, via_host: str, via_port: int) -> SipMessage:
    """A BYE within `dialog` (RFC 3261 15.1.1), CSeq taken from the dialog's counter."""
    dialog.local_cseq += 1
    transport = dialog.peer.transport
    return SipMessage(
        method="BYE",
        uri=dialog.remote_target,
        headers=[
            ("Via", f"SIP/2.0/{transport} {via_host}:{via_port};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", dialog.local_header),
            ("To", dialog.remote_header),
            ("Call-ID", dialog.call_id),
            ("CSeq", f"{dialog.local_cseq} BYE"),
            ("User-Agent", SERVER_NAME),
        ],
    )
