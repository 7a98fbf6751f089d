"""SIP torture (RFC 4475 style) over UDP and TCP while a good sipp call runs.

Each message is expected to get one response code, or none (dropped: nothing to answer
it with). Where RFC 4475 suggests 505 or 513, clonewatch answers 400 with the reason.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from tests.integration import sipp_scenarios as scen
from tests.integration.sip_harness import (
    run_sipp,
    running_service,
    sip_exchange,
    wait_for,
    write_ulaw_wav,
)
from tests.integration.test_sip_sipp import assert_released

pytestmark = pytest.mark.integration

_COUNTER = itertools.count()
BASE = [
    "Via: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK{branch};rport",
    "From: <sip:torture@127.0.0.1>;tag=t{branch}",
    "To: <sip:srs@127.0.0.1>",
    "Call-ID: torture-{branch}",
    "Max-Forwards: 70",
]


def request(start: str, cseq: str, *extra: str, base: list[str] = BASE, length: str = "") -> str:
    """A request of header lines; Content-Length added (0) unless `length` is given."""
    lines = [start, *base, f"CSeq: {cseq}", *extra, f"Content-Length: {length or 0}"]
    return "\r\n".join(lines) + "\r\n\r\n"


TORTURE: list[tuple[str, str, str | None]] = [  # (name, message, expected code or None)
    (
        "compact forms, folding, odd spacing (wsinv)",
        "\r\n".join(
            [
                "OPTIONS sip:srs@127.0.0.1 SIP/2.0",
                "v:  SIP/2.0/{transport}   127.0.0.1:9 ;branch=z9hG4bK{branch}",
                "f: <sip:torture@127.0.0.1>",
                " ;tag=t{branch}",
                "t:\t<sip:srs@127.0.0.1>",
                "i: torture-{branch}",
                "cSeQ  :  8\r\n   OPTIONS",
                "NewFangledHeader:   newfangled value\r\n continued newfangled value",
                "l: 0",
                "",
                "",
            ]
        ),
        "200",
    ),  # fmt: skip
    (
        "CRLFs before the start line",
        "\r\n\r\n" + request("OPTIONS sip:srs@127.0.0.1 SIP/2.0", "1 OPTIONS"),
        "200",
    ),  # fmt: skip
    (
        "unknown method with every token character",
        request(
            "!interesting-Method0123456789_*+`.%indeed'~ sip:srs@127.0.0.1 SIP/2.0",
            "1 !interesting-Method0123456789_*+`.%indeed'~",
        ),
        "501",
    ),  # fmt: skip
    (
        "known method we do not serve",
        request("SUBSCRIBE sip:srs@127.0.0.1 SIP/2.0", "1 SUBSCRIBE"),
        "405",
    ),  # fmt: skip
    (
        "unsupported SIP version (badvers)",
        request("OPTIONS sip:srs@127.0.0.1 SIP/7.0", "1 OPTIONS"),
        "400",
    ),
    (
        "CSeq method mismatch (mismatch01)",
        request("OPTIONS sip:srs@127.0.0.1 SIP/2.0", "1 INVITE"),
        "400",
    ),
    (
        "negative Content-Length (ncl)",
        request("OPTIONS sip:srs@127.0.0.1 SIP/2.0", "1 OPTIONS", length="-999"),
        "400",
    ),
    (
        "Max-Forwards too large",
        request(
            "OPTIONS sip:srs@127.0.0.1 SIP/2.0", "1 OPTIONS", base=[*BASE[:4], "Max-Forwards: 300"]
        ),
        "400",
    ),  # fmt: skip
    (
        "conflicting Content-Length headers",
        request("OPTIONS sip:srs@127.0.0.1 SIP/2.0", "1 OPTIONS", "Content-Length: 0", length="3"),
        "400",  # the first Content-Length frames the stream, so TCP stays in step
    ),
    ("Request-URI without a scheme", request("OPTIONS srs-at-nowhere SIP/2.0", "1 OPTIONS"), "400"),
    (
        "header line without a colon",
        request("OPTIONS sip:srs@127.0.0.1 SIP/2.0", "1 OPTIONS", "This is not a header"),
        "400",
    ),  # fmt: skip
    (
        "Call-ID longer than 256 characters",
        request(
            "OPTIONS sip:srs@127.0.0.1 SIP/2.0",
            "1 OPTIONS",
            base=[*BASE[:3], "Call-ID: " + "x" * 300, BASE[4]],
        ),
        "400",
    ),  # fmt: skip
    (
        "no Call-ID: nothing to address a response with",
        request("OPTIONS sip:srs@127.0.0.1 SIP/2.0", "1 OPTIONS", base=[*BASE[:3], BASE[4]]),
        None,
    ),
    (
        "re-INVITE of an unknown dialog",
        request(
            "INVITE sip:srs@127.0.0.1 SIP/2.0",
            "2 INVITE",
            base=[*BASE[:2], "To: <sip:srs@127.0.0.1>;tag=nosuchdialog", *BASE[3:]],
        ),
        "481",
    ),
    ("BYE of an unknown dialog", request("BYE sip:srs@127.0.0.1 SIP/2.0", "2 BYE"), "481"),
    (
        "CANCEL of an unknown transaction",
        request("CANCEL sip:srs@127.0.0.1 SIP/2.0", "1 CANCEL"),
        "481",
    ),  # fmt: skip
    ("stray ACK", request("ACK sip:srs@127.0.0.1 SIP/2.0", "1 ACK"), None),
    (
        "stray response",
        "SIP/2.0 200 OK\r\n" + "\r\n".join(BASE) + "\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        None,
    ),  # fmt: skip
    ("INVITE without SDP", request("INVITE sip:srs@127.0.0.1 SIP/2.0", "1 INVITE"), "488"),
    (
        "bad Via",
        request("OPTIONS sip:srs@127.0.0.1 SIP/2.0", "1 OPTIONS", base=["Via: garbage", *BASE[1:]]),
        None,
    ),  # fmt: skip
]
# Over TCP the response goes back on the connection: no Via address is needed for it.
TCP_EXPECTED = {"bad Via": "400"}
UDP_ONLY: list[tuple[str, str, str | None]] = [
    (
        "Content-Length beyond the datagram (clerr)",
        request("OPTIONS sip:srs@127.0.0.1 SIP/2.0", "1 OPTIONS", length="9999"),
        "400",
    ),
    (
        "headers that are not UTF-8",
        request("OPTIONS sip:srs@127.0.0.1 SIP/2.0", "1 OPTIONS", "Subject: caf\udce9"),
        "400",
    ),
]


def render(message: str, transport: str) -> bytes:
    text = message.format(transport=transport, branch=next(_COUNTER))
    return text.encode("utf-8", errors="surrogateescape")


async def tcp_torture(
    port: int, cases: list[tuple[str, str, str | None]]
) -> tuple[list[str], list[str]]:
    """Send the cases on one TCP connection, reconnecting when the server closed it.

    Returns the status line answering each case ("" if none), and the names of the cases
    after which the server had closed the connection (framing no longer trusted).
    """
    got: list[str] = []
    closed_after: list[str] = []
    probe = request("OPTIONS sip:srs@127.0.0.1 SIP/2.0", "1 OPTIONS")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for name, message, expected in cases:
            writer.write(render(message, "TCP"))
            await writer.drain()
            got.append(await next_final(reader, 0.3 if expected is None else 2.0))
            writer.write(render(probe, "TCP"))  # is the connection still served?
            if not (await next_final(reader, 2.0)).startswith("SIP/2.0 200 "):
                closed_after.append(name)
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()
    return got, closed_after


async def next_final(reader: asyncio.StreamReader, timeout_s: float) -> str:
    """The status line of the next non-100 response on the stream, "" after `timeout_s`."""
    try:
        while True:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), 0)  # fmt: skip
            await reader.readexactly(length)
            status = head.split(b"\r\n", 1)[0].decode()
            if not status.startswith("SIP/2.0 100 "):
                return status
    except TimeoutError:
        return ""
    except asyncio.IncompleteReadError:  # closed by the server, nothing more to read
        return ""


def code_of(status: str) -> str | None:
    return status.split(" ")[1] if status else None


async def test_torture_messages_over_udp_and_tcp_spare_a_good_call(tmp_path: Path) -> None:
    write_ulaw_wav(tmp_path / "speech.wav", 6.0, seed=5)
    async with running_service() as svc:
        good = asyncio.create_task(
            run_sipp(scen.plain_call("speech.wav", 4000), tmp_path, svc.port)
        )
        await wait_for(lambda: len(svc.sink.calls) == 1)
        (good_id,) = svc.sink.calls
        for name, message, expected in TORTURE + UDP_ONLY:
            reply = await sip_exchange(
                svc.port, render(message, "UDP"), timeout_s=0.3 if expected is None else 2.0
            )
            assert code_of(reply.split("\r\n", 1)[0]) == expected, ("udp", name, reply[:80])
        statuses, closed_after = await tcp_torture(svc.port, TORTURE)
        for (name, _, expected), status in zip(TORTURE, statuses, strict=True):
            assert code_of(status) == TCP_EXPECTED.get(name, expected), ("tcp", name, status)
        assert closed_after == ["negative Content-Length (ncl)"]  # unframeable: closed
        code, errors = await good
        assert code == 0, errors
        await wait_for(lambda: good_id in svc.sink.closed)
        assert svc.sink.closed[good_id] == "bye"
        assert len(svc.sink.frames_of(good_id, "caller")) >= 150
        assert set(svc.sink.calls) == {good_id}  # no torture message opened a call
        assert_released(svc, [])
