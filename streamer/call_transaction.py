"""Client transactions of `clonewatch call` over UDP (RFC 3261 17.1).

INVITE (17.1.1): retransmit on Timer A (T1, doubling) until a provisional response,
give up at the answer timeout (Timer B); a 3xx-6xx is ACKed in the same transaction
and fails the call. Non-INVITE (17.1.2, the BYE): retransmit on Timer E (doubling up
to T2) until any final response or the timeout (Timer F).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from streamer.errors import IngressError
from streamer.sip_dialog import new_branch
from streamer.sip_message import SipMessage

T1_S = 0.5
T2_S = 4.0


class TransactionFailed(IngressError):
    """An INVITE got no final response in time, or a 3xx-6xx one."""


@dataclass(frozen=True, slots=True)
class CallerDialog:
    """What every request of one outgoing call repeats: our address, tag and Call-ID."""

    host: str  # IPv6 literals bare; bracketed here
    port: int
    user: str
    tag: str
    call_id: str
    user_agent: str = ""

    def request(self, method: str, cseq: int, to: str, uri: str) -> SipMessage:
        """A request in this dialog, in a new transaction (fresh Via branch)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        via = f"SIP/2.0/UDP {host}:{self.port};branch={new_branch()};rport"
        msg = SipMessage(
            method=method,
            uri=uri,
            headers=[
                ("Via", via),
                ("Max-Forwards", "70"),
                ("From", f"<sip:{self.user}@{host}>;tag={self.tag}"),
                ("To", to),
                ("Call-ID", self.call_id),
                ("CSeq", f"{cseq} {method}"),
            ],
        )
        if self.user_agent:
            msg.headers.append(("User-Agent", self.user_agent))
        return msg


async def _next(queue: asyncio.Queue[SipMessage], timeout_s: float) -> SipMessage | None:
    try:
        return await asyncio.wait_for(queue.get(), max(timeout_s, 0.0))
    except TimeoutError:
        return None


def _matches(response: SipMessage, request: SipMessage) -> bool:
    return response.cseq == request.cseq


async def invite_transaction(
    invite: SipMessage,
    send: Callable[[SipMessage], None],
    responses: asyncio.Queue[SipMessage],
    timeout_s: float,
) -> SipMessage:
    """Send `invite` until answered; return the 2xx.

    Raises:
        TransactionFailed: No final response within `timeout_s`, or a 3xx-6xx (which is
            ACKed first, RFC 3261 17.1.1.3).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    interval, next_send, ringing = T1_S, loop.time(), False
    while True:
        now = loop.time()
        if now >= deadline:
            raise TransactionFailed(f"no answer to the INVITE within {timeout_s:g} s")
        if not ringing and now >= next_send:
            send(invite)
            next_send, interval = now + interval, interval * 2
        wait = deadline - now if ringing else min(next_send, deadline) - now
        response = await _next(responses, wait)
        if response is None or not _matches(response, invite):
            continue
        if response.status < 200:
            ringing = True
        elif response.status < 300:
            return response
        else:
            send(_ack_for_failure(invite, response))
            raise TransactionFailed(f"call rejected: {response.status} {response.reason}")


def _ack_for_failure(invite: SipMessage, response: SipMessage) -> SipMessage:
    """The ACK of a non-2xx final response: same branch and Request-URI (17.1.1.3)."""
    headers = [(n, v) for n, v in invite.headers if n in ("Via", "Max-Forwards", "From")]
    headers += [
        ("To", response.header("To") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq[0]} ACK"),
    ]
    return SipMessage(method="ACK", uri=invite.uri, headers=headers)


async def request_transaction(
    request: SipMessage,
    send: Callable[[SipMessage], None],
    responses: asyncio.Queue[SipMessage],
    timeout_s: float,
) -> int | None:
    """Send a non-INVITE request until a final response; its status, None on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    interval = T1_S
    while loop.time() < deadline:
        send(request)
        until = min(loop.time() + interval, deadline)
        interval = min(interval * 2, T2_S)
        while (left := until - loop.time()) > 0:
            response = await _next(responses, left)
            if response is not None and _matches(response, request) and response.status >= 200:
                return response.status
    return None
