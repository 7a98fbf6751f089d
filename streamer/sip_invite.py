"""INVITE, re-INVITE, CANCEL, ACK and BYE flows of the SIP server (RFC 3261 13-15).

An initial INVITE: 100 Trying at once; the `CallManager` opens the call and builds the
SDP answer; 180 Ringing while `answer_delay_ms` runs; 200 OK with our To tag and
Contact, retransmitted over UDP (T1 doubling to T2) until the ACK. Without an ACK after
64*T1 the call ends ("error") and a BYE is sent. CANCEL (or a BYE, or an RTP timeout)
before the answer is answered 487 on the INVITE, and the call ends with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from alerts.types import Ingress
from streamer.calls_media import SessionOffer, is_siprec
from streamer.errors import NothingToScore, SdpError, SipParseError
from streamer.sip_dialog import (
    Dialog,
    DialogState,
    ServerTransaction,
    build_bye,
    new_tag,
    transaction_key,
)
from streamer.sip_headers import is_ip_address, parse_name_addr, parse_via, uri_hostport, uri_user
from streamer.sip_message import SipMessage
from streamer.sip_transport import Peer

if TYPE_CHECKING:
    from streamer.sip import SipServer

logger = logging.getLogger(__name__)


class InviteHandler:
    """The dialog-forming flows of one `SipServer`; runs on the event loop."""

    def __init__(self, server: SipServer) -> None:
        self._server = server
        self._client_txns: dict[str, asyncio.Event] = {}  # our BYEs, by Via branch

    # -- INVITE -----------------------------------------------------------------------

    def on_invite(self, request: SipMessage, peer: Peer, txn: ServerTransaction) -> None:
        """An INVITE that is not a retransmission."""
        if parse_name_addr(request.header("To") or "").tag:
            self._on_reinvite(request, peer, txn)
            return
        server = self._server
        call_id = request.call_id
        if call_id in server.dialogs:  # same Call-ID, no To tag, new branch: RFC 3261 8.2.2.2
            server.respond(request, txn, peer, 482, to_tag=new_tag())
            return
        if server.closing or len(server.dialogs) >= server.config.max_calls:
            self._reject_busy(request, peer, txn, "shutdown" if server.closing else "busy")
            return
        dialog = self._new_dialog(request, peer)
        dialog.invite = txn
        server.dialogs[call_id] = dialog
        server.respond(request, txn, peer, 100)
        server.spawn(self._run_invite(dialog, request, peer, txn), f"sip-invite:{call_id}")

    def _reject_busy(
        self, request: SipMessage, peer: Peer, txn: ServerTransaction, why: str
    ) -> None:
        server = self._server
        ingress = Ingress.SIPREC if is_siprec(request.header("Content-Type") or "") else Ingress.SIP
        server.metrics.calls_rejected_total.labels(ingress.value, why).inc()
        logger.warning(
            "call refused (%s): %d calls", why, len(server.dialogs), extra=_extra(request)
        )
        retry = [("Retry-After", str(server.config.retry_after_s))]
        server.respond(request, txn, peer, 503, to_tag=new_tag(), headers=retry)

    def _new_dialog(self, request: SipMessage, peer: Peer) -> Dialog:
        from_value = request.header("From") or ""
        to_value = request.header("To") or ""
        contact = request.header_values("Contact")
        target = parse_name_addr(contact[0]).uri if contact else parse_name_addr(from_value).uri
        local_tag = new_tag()
        return Dialog(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=parse_name_addr(from_value).tag,
            local_header=f"{to_value};tag={local_tag}",
            remote_header=from_value,
            remote_target=target,
            peer=peer,
            remote_cseq=request.cseq[0],
        )

    def _offer(self, request: SipMessage, peer: Peer) -> SessionOffer:
        caller = parse_name_addr(request.header("From") or "")
        to_user = uri_user(parse_name_addr(request.header("To") or "").uri)
        return SessionOffer(
            call_id=request.call_id,
            content_type=request.header("Content-Type") or "",
            body=request.body,
            caller=caller.display or caller.uri,
            line=to_user or uri_user(request.uri),
            local_host=self._server.local_host(peer),
        )

    async def _run_invite(
        self, dialog: Dialog, request: SipMessage, peer: Peer, txn: ServerTransaction
    ) -> None:
        server = self._server
        answer = await self._open_call(dialog, request, peer, txn)
        if answer is None:
            return
        delay_s = server.config.answer_delay_ms / 1000
        if delay_s > 0 and not txn.cancelled.is_set():
            server.respond(request, txn, peer, 180, to_tag=dialog.local_tag)
            try:
                await asyncio.wait_for(txn.cancelled.wait(), delay_s)
            except TimeoutError:
                pass
        if txn.cancelled.is_set():
            server.respond(request, txn, peer, 487, to_tag=dialog.local_tag)
            self._forget(dialog)
            await server.calls.end(dialog.call_id, dialog.end_reason or "cancel")
            return
        await self._answer(dialog, request, peer, txn, answer)

    async def _open_call(
        self, dialog: Dialog, request: SipMessage, peer: Peer, txn: ServerTransaction
    ) -> str | None:
        server = self._server
        try:
            return await server.calls.accept(self._offer(request, peer))
        except SdpError as exc:
            declined = isinstance(exc, NothingToScore)  # by configuration, not a bad offer
            if not declined:
                server.metrics.decode_errors_total.labels("sdp").inc()
            ingress = "siprec" if is_siprec(request.header("Content-Type") or "") else "sip"
            reason_label = "ignored" if declined else "sdp"
            server.metrics.calls_rejected_total.labels(ingress, reason_label).inc()
            logger.warning("offer refused: %s", exc, extra=_extra(request))
            reason = f"Not Acceptable Here ({exc})"[:120]
            server.respond(request, txn, peer, 488, to_tag=dialog.local_tag, reason=reason)
        except Exception:
            logger.exception("call setup failed", extra=_extra(request))
            server.respond(request, txn, peer, 500, to_tag=dialog.local_tag)
        self._forget(dialog)
        return None

    async def _answer(
        self, dialog: Dialog, request: SipMessage, peer: Peer, txn: ServerTransaction, sdp: str
    ) -> None:
        server = self._server
        headers = [("Contact", server.contact(peer)), ("Content-Type", "application/sdp")]
        data = server.respond(
            request, txn, peer, 200, to_tag=dialog.local_tag, headers=headers, body=sdp.encode()
        )
        if dialog.state is DialogState.EARLY:
            dialog.state = DialogState.CONFIRMING
        acked = await self._await_ack(txn, peer, data)
        if dialog.state is DialogState.TERMINATED:
            return
        if acked:
            dialog.state = DialogState.CONFIRMED
            return
        logger.warning("no ACK for 200 OK: ending the call", extra=_extra(request))
        self.hangup(dialog.call_id)
        await server.calls.end(dialog.call_id, "error")

    async def _await_ack(self, txn: ServerTransaction, peer: Peer, data: bytes) -> bool:
        """Retransmit a 2xx over UDP at T1, 2*T1, ... T2 until ACK or 64*T1 (RFC 3261 13.3.1.4)."""
        t1 = self._server.t1_s
        interval, elapsed, deadline = t1, 0.0, 64 * t1
        while elapsed < deadline:
            wait = min(interval, deadline - elapsed)
            try:
                await asyncio.wait_for(txn.acked.wait(), wait)
                return True
            except TimeoutError:
                elapsed += wait
            if peer.transport == "UDP" and elapsed < deadline:
                self._server.send(data, peer)
            interval = min(interval * 2, 8 * t1)
        return False

    def _forget(self, dialog: Dialog) -> None:
        if self._server.dialogs.get(dialog.call_id) is dialog:
            del self._server.dialogs[dialog.call_id]
        dialog.state = DialogState.TERMINATED

    # -- re-INVITE --------------------------------------------------------------------

    def _on_reinvite(self, request: SipMessage, peer: Peer, txn: ServerTransaction) -> None:
        server = self._server
        dialog = server.dialog_for(request)
        if dialog is None:
            server.respond(request, txn, peer, 481)
            return
        if dialog.invite is not None and not dialog.invite.acked.is_set():
            server.respond(request, txn, peer, 491)  # RFC 3261 14.2: one INVITE at a time
            return
        dialog.invite = txn
        server.respond(request, txn, peer, 100)
        server.spawn(
            self._run_reinvite(dialog, request, peer, txn), f"sip-reinvite:{dialog.call_id}"
        )

    async def _run_reinvite(
        self, dialog: Dialog, request: SipMessage, peer: Peer, txn: ServerTransaction
    ) -> None:
        server = self._server
        try:
            sdp = await server.calls.update(dialog.call_id, self._offer(request, peer))
        except SdpError as exc:  # RFC 3264 8: the old session stays as it was
            if not isinstance(exc, NothingToScore):
                server.metrics.decode_errors_total.labels("sdp").inc()
            logger.warning("re-INVITE offer refused: %s", exc, extra=_extra(request))
            server.respond(request, txn, peer, 488, reason=f"Not Acceptable Here ({exc})"[:120])
            txn.acked.set()  # the ACK of a non-2xx is absorbed by the transaction
            return
        except KeyError:
            server.respond(request, txn, peer, 481)
            txn.acked.set()
            return
        await self._answer(dialog, request, peer, txn, sdp)

    # -- ACK, CANCEL, BYE ---------------------------------------------------------------

    def on_ack(self, request: SipMessage) -> None:
        """ACK: of a non-2xx (same branch as the INVITE) or of a 2xx (in the dialog)."""
        txn = self._server.transaction(transaction_key(request))
        if txn is None:
            dialog = self._server.dialog_for(request)
            txn = dialog.invite if dialog is not None else None
        if txn is not None:
            txn.acked.set()

    def on_cancel(self, request: SipMessage, peer: Peer, txn: ServerTransaction) -> None:
        """CANCEL: 200 for it, and the INVITE, if unanswered, gets 487 (RFC 3261 9.2)."""
        server = self._server
        branch_key, _ = transaction_key(request)
        invite = server.transaction((branch_key, "INVITE"))
        if invite is None:
            server.respond(request, txn, peer, 481, to_tag=new_tag())
            return
        dialog = server.dialogs.get(request.call_id)
        server.respond(request, txn, peer, 200, to_tag=dialog.local_tag if dialog else new_tag())
        if not invite.final_sent:
            if dialog is not None:
                dialog.end_reason = "cancel"
            invite.cancelled.set()

    def on_bye(self, request: SipMessage, peer: Peer, txn: ServerTransaction) -> None:
        """BYE: 200, and the call ends with "bye" (481 outside a known dialog)."""
        server = self._server
        dialog = server.dialog_for(request)
        if dialog is None:
            server.respond(request, txn, peer, 481)
            return
        server.respond(request, txn, peer, 200)
        self._forget(dialog)
        invite = dialog.invite
        if invite is not None and not invite.final_sent:
            dialog.end_reason = "bye"
            invite.cancelled.set()  # the INVITE flow answers 487 and ends the call
            return
        if invite is not None:
            invite.acked.set()  # stop retransmitting the 2xx
        server.spawn(server.calls.end(dialog.call_id, "bye"), f"sip-end:{dialog.call_id}")

    # -- our BYE ------------------------------------------------------------------------

    def hangup(self, call_id: str) -> None:
        """End the signalling of a call the media ended: BYE, or 487 when unanswered."""
        dialog = self._server.dialogs.get(call_id)
        if dialog is None:
            return
        invite = dialog.invite
        if invite is not None and not invite.final_sent:
            dialog.end_reason = dialog.end_reason or "rtp-timeout"
            invite.cancelled.set()
            return
        self._forget(dialog)
        if invite is not None:
            invite.acked.set()
        self._server.spawn(self._send_bye(dialog), f"sip-bye:{call_id}")

    async def hangup_all(self, timeout_s: float) -> None:
        """At shutdown: BYE every answered call, 487 every unanswered INVITE.

        Waits at most `timeout_s` for the peers' answers (and the 487s to go out);
        what is still pending then is left to `SipServer.aclose` to cancel.
        """
        server = self._server
        waits: list[asyncio.Task[None]] = []
        for dialog in list(server.dialogs.values()):
            invite = dialog.invite
            if invite is not None and not invite.final_sent:
                dialog.end_reason = "shutdown"
                invite.cancelled.set()  # the INVITE flow answers 487 and ends the call
                waits.extend(server.tasks_named(f"sip-invite:{dialog.call_id}"))
                continue
            self._forget(dialog)
            if invite is not None:
                invite.acked.set()
            name = f"sip-bye:{dialog.call_id}"
            server.spawn(self._send_bye(dialog), name)
            waits.extend(server.tasks_named(name))
        if not waits:
            return
        logger.info("shutdown: hanging up %d calls", len(waits), extra={"stage": "sip"})
        _, pending = await asyncio.wait(waits, timeout=timeout_s)
        if pending:
            logger.warning(
                "shutdown: %d peers did not answer in %.1f s",
                len(pending),
                timeout_s,
                extra={"stage": "sip"},
            )

    async def _send_bye(self, dialog: Dialog) -> None:
        server, peer = self._server, dialog.peer
        port = server.tcp_port if peer.transport == "TCP" else server.udp_port
        bye = build_bye(dialog, server.local_host(peer), port)
        branch = parse_via(bye.header("Via") or "").branch
        done = asyncio.Event()
        self._client_txns[branch] = done
        data = bye.to_bytes()
        target = _target_addr(dialog)
        server.metrics.sip_requests_total.labels("BYE").inc()
        try:
            interval, elapsed = server.t1_s, 0.0
            while elapsed < 64 * server.t1_s and not done.is_set():
                server.send(data, peer, target)
                if peer.transport == "TCP":
                    interval = 64 * server.t1_s  # reliable: send once, wait for Timer F
                try:
                    await asyncio.wait_for(done.wait(), interval)
                except TimeoutError:
                    elapsed += interval
                interval = min(interval * 2, 8 * server.t1_s)
        finally:
            del self._client_txns[branch]

    def on_response(self, response: SipMessage) -> None:
        """A response to a request we sent (our BYE): a final one ends its transaction."""
        vias = response.header_values("Via")
        if not vias or response.status < 200:
            return
        done = self._client_txns.get(parse_via(vias[0]).branch)
        if done is not None:
            done.set()


def _target_addr(dialog: Dialog) -> tuple[str, int] | None:
    """Where an in-dialog request goes over UDP: the Contact when it is an IP, else the source."""
    try:
        host, port = uri_hostport(dialog.remote_target)
    except SipParseError:
        return None
    if not is_ip_address(host):
        return None
    return host, port or 5060


def _extra(request: SipMessage) -> dict[str, str]:
    return {"call_id": request.call_id, "stage": "sip"}
