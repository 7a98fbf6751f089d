"""Resource caps (transactions, TCP connections) and polite hang-up at shutdown."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from pathlib import Path

import pytest

from streamer.sip_dialog import DialogState
from tests.integration import sipp_scenarios as scen
from tests.integration.service import free_port
from tests.integration.sip_harness import (
    PCMU_SDP,
    Service,
    invite,
    run_sipp,
    running_service,
    udp_socket,
    wait_for,
)
from tests.integration.test_sip_sipp import METADATA

pytestmark = pytest.mark.integration


def options(branch: str, *, transport: str = "UDP") -> bytes:
    lines = [
        "OPTIONS sip:srs@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK{branch};rport",
        "From: <sip:probe@127.0.0.1>;tag=p1",
        "To: <sip:srs@127.0.0.1>",
        f"Call-ID: opt-{branch}",
        "CSeq: 1 OPTIONS",
        "Max-Forwards: 70",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def exchange(sock: socket.socket, port: int, data: bytes) -> str:
    loop = asyncio.get_running_loop()
    sock.sendto(data, ("127.0.0.1", port))
    reply = await asyncio.wait_for(loop.sock_recv(sock, 65536), 2.0)
    return reply.decode()


async def test_transaction_table_is_bounded_oldest_expired() -> None:
    async with running_service(max_transactions=16) as svc:
        sock = udp_socket()
        try:
            first = await exchange(sock, svc.port, options("b0"))
            replies = [first]
            for i in range(1, 40):
                replies.append(await exchange(sock, svc.port, options(f"b{i}")))
            assert all(r.startswith("SIP/2.0 200 OK") for r in replies)
            assert svc.server.transactions == 16
            assert svc.counter("clonewatch_dropped_total", stage="sip", reason="transactions") == 24
            # the newest is still a transaction: its retransmission gets the same bytes
            assert await exchange(sock, svc.port, options("b39")) == replies[-1]
            # the oldest was expired: its retransmission is a new transaction (new To tag)
            again = await exchange(sock, svc.port, options("b0"))
            assert again.startswith("SIP/2.0 200 OK") and again != first
            assert svc.counter("clonewatch_sip_requests_total", method="OPTIONS") == 42
        finally:
            sock.close()


async def tcp_options(port: int, branch: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(options(branch, transport="TCP"))
    await writer.drain()
    reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
    assert reply.startswith(b"SIP/2.0 200 OK")
    return reader, writer


async def test_tcp_connections_are_capped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="streamer.sip")
    async with running_service(max_tcp_connections=3) as svc:
        conns = [await tcp_options(svc.port, f"t{i}") for i in range(3)]
        assert svc.server.tcp_connections == 3
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
        writer.write(options("over", transport="TCP"))
        assert await refused(reader)
        writer.close()
        assert svc.counter("clonewatch_dropped_total", stage="sip", reason="tcp_connections") == 1
        assert "refused: 3 connections open" in caplog.text
        conns[0][1].close()
        await wait_for(lambda: svc.server.tcp_connections == 2, 2.0)
        conns.append(await tcp_options(svc.port, "after"))  # room again
        for _, w in conns:
            w.close()
        await wait_for(lambda: svc.server.tcp_connections == 0, 2.0)


async def refused(reader: asyncio.StreamReader) -> bool:
    """True when the server closed the connection without answering (EOF or reset)."""
    try:
        return await asyncio.wait_for(reader.read(), 2.0) == b""
    except ConnectionResetError:
        return True


def confirmed(svc: Service, count: int) -> bool:
    dialogs = list(svc.server.dialogs.values())
    return len(dialogs) == count and all(d.state is DialogState.CONFIRMED for d in dialogs)


async def test_shutdown_sends_bye_to_sip_and_siprec_peers(tmp_path: Path) -> None:
    async with running_service() as svc:
        plain = asyncio.create_task(run_sipp(scen.answered_call(), tmp_path, svc.port))
        ports = (free_port(), free_port())
        siprec = asyncio.create_task(
            run_sipp(scen.siprec_until_bye(ports, METADATA), tmp_path, svc.port, transport="t1")
        )
        await wait_for(lambda: confirmed(svc, 2), 8.0)
        transports = {d.peer.transport for d in svc.server.dialogs.values()}
        assert transports == {"UDP", "TCP"}
        started = time.monotonic()
        await svc.server.aclose()
        assert time.monotonic() - started < 2.0  # both answered: no waiting for the timeout
        for task in (plain, siprec):
            code, errors = await task
            assert code == 0, errors  # sipp got our BYE and answered it
        assert svc.counter("clonewatch_sip_requests_total", method="BYE") == 2
        await svc.calls.aclose()
        assert set(svc.sink.closed.values()) == {"shutdown"}
        assert len(svc.sink.closed) == 2


def ack_for(invite_data: bytes, ok: str) -> bytes:
    """The ACK of a 2xx: the INVITE's headers, the 200's To (with our tag), a new branch."""
    to = next(line for line in ok.split("\r\n") if line.startswith("To:"))
    head = invite_data.split(b"\r\n\r\n", 1)[0].decode()
    lines = [
        to if line.startswith("To:") else line
        for line in head.split("\r\n")
        if not line.startswith(("Content-Type", "Content-Length"))
    ]
    lines[0] = lines[0].replace("INVITE", "ACK", 1)
    lines = [
        line.replace("1 INVITE", "1 ACK").replace("branch=z9hG4bK", "branch=z9hG4bKack")
        for line in lines
    ]
    return ("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode()


async def test_shutdown_is_bounded_when_a_peer_does_not_answer_the_bye() -> None:
    loop = asyncio.get_running_loop()
    async with running_service(shutdown_bye_timeout_s=0.5) as svc:
        mute = udp_socket()
        try:
            port = mute.getsockname()[1]
            data = invite("mute", PCMU_SDP).replace(b"127.0.0.1:9>", f"127.0.0.1:{port}>".encode())
            mute.sendto(data, ("127.0.0.1", svc.port))
            ok = next(t for t in await drain(loop, mute) if t.startswith("SIP/2.0 200 "))
            mute.sendto(ack_for(data, ok), ("127.0.0.1", svc.port))
            await wait_for(lambda: confirmed(svc, 1))
            started = time.monotonic()
            await svc.server.aclose()
            assert time.monotonic() - started < 1.5
            byes = [t for t in await drain(loop, mute) if t.startswith("BYE sip:py@127.0.0.1")]
            assert byes  # sent to the Contact, retransmitted until the bound, never answered
        finally:
            mute.close()


async def test_shutdown_ends_a_ringing_invite_with_487() -> None:
    async with running_service(answer_delay_ms=10_000) as svc:
        ringing = udp_socket()
        try:
            ringing.sendto(invite("ringing", PCMU_SDP), ("127.0.0.1", svc.port))
            await wait_for(lambda: "ringing" in svc.sink.calls)
            await svc.server.aclose()
            texts = await drain(asyncio.get_running_loop(), ringing)
            assert any(t.startswith("SIP/2.0 487 ") for t in texts), texts
            await wait_for(lambda: svc.sink.closed.get("ringing") == "shutdown")
        finally:
            ringing.close()


async def drain(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> list[str]:
    texts: list[str] = []
    while True:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 0.2)
        except TimeoutError:
            return texts
        texts.append(data.decode(errors="replace"))


async def test_invite_during_shutdown_gets_503() -> None:
    async with running_service() as svc:
        svc.server.closing = True
        sock = udp_socket()
        try:
            sock.sendto(
                invite(f"late-{random.randrange(1 << 30)}", PCMU_SDP), ("127.0.0.1", svc.port)
            )
            loop = asyncio.get_running_loop()
            texts = await drain(loop, sock)
            assert any(t.startswith("SIP/2.0 503 ") for t in texts), texts
            assert (
                svc.counter("clonewatch_calls_rejected_total", ingress="sip", reason="shutdown")
                == 1
            )
        finally:
            sock.close()
