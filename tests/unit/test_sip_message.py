"""SIP parser: RFC 4475-style torture messages, serialisation, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.errors import SipParseError
from streamer.sip_headers import parse_name_addr, parse_via, uri_user
from streamer.sip_message import SipMessage, canonical_name, parse_message, salvage_request

pytestmark = pytest.mark.unit

# RFC 4475 3.1.1.1 (wsinv), shortened: folding, compact forms, odd spacing, case.
WSINV = (
    b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
    b"TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
    b'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n'
    b"  ;\r\n  tag = 98asjd8\r\n"
    b"MaX-fOrWaRdS: 0068\r\n"
    b"Call-ID\r\n \t:\r\n  0ha0isndaksdj@192.0.2.1\r\n"
    b"cseq: 0009\r\n  INVITE\r\n"
    b"Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n"
    b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
    b"  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
    b" z9hG4bK30239\r\n"
    b'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\r\n'
    b"      newvalue ;\r\n  secondparam ; q = 0.33\r\n"
    b"l: 4\r\n\r\nabcd"
)


def test_wsinv_folding_and_compact_forms() -> None:
    msg = parse_message(WSINV)
    assert msg.method == "INVITE"
    assert msg.call_id == "0ha0isndaksdj@192.0.2.1"
    assert msg.cseq == (9, "INVITE")
    assert msg.header("Max-Forwards") == "0068"
    assert len(msg.header_values("Via")) == 3
    assert msg.body == b"abcd"
    assert parse_name_addr(msg.header("Contact") or "").uri == "sip:jdrosen@example.com"


def test_request_and_response_round_trip() -> None:
    raw = (
        b"BYE sip:bob@127.0.0.1:5070 SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
        b"f: <sip:a@b>;tag=1\r\nt: Bob <sip:+1555@c>;tag=2\r\ni: abc\r\nCSeq: 7 BYE\r\n\r\n"
    )
    msg = parse_message(raw)
    again = parse_message(msg.to_bytes())
    assert again.headers[:5] == msg.headers[:5]
    assert again.header("Content-Length") == "0"
    assert uri_user(parse_name_addr(msg.header("To") or "").uri) == "+1555"
    resp = parse_message(b"SIP/2.0 180 Ringing\r\nCall-ID: x\r\n\r\n")
    assert (resp.status, resp.reason, resp.is_request) == (180, "Ringing", False)


def test_body_is_cut_to_content_length() -> None:
    msg = parse_message(
        b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1"
        b"\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 3\r\n\r\nabcdef"
    )
    assert msg.body == b"abc"


HEAD = (
    b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\n"
    b"Call-ID: c\r\n"
)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "no empty line"),
        (b"INVITE sip:x@y SIP/7.0\r\n" + HEAD + b"CSeq: 1 INVITE\r\n\r\n", "version"),
        (b"INVITE  sip:x@y SIP/2.0\r\n" + HEAD + b"CSeq: 1 INVITE\r\n\r\n", "request line"),
        (b"INV@TE sip:x@y SIP/2.0\r\n" + HEAD + b"CSeq: 1 INV@TE\r\n\r\n", "method"),
        (b"INVITE nourl SIP/2.0\r\n" + HEAD + b"CSeq: 1 INVITE\r\n\r\n", "Request-URI"),
        (b"INVITE sip:x@y SIP/2.0\r\n" + HEAD + b"CSeq: 1 BYE\r\n\r\n", "CSeq method"),
        (b"INVITE sip:x@y SIP/2.0\r\n" + HEAD + b"CSeq: 99999999999 INVITE\r\n\r\n", "CSeq"),
        (b"INVITE sip:x@y SIP/2.0\r\n" + HEAD + b"\r\n", "missing CSeq"),
        (b"INVITE sip:x@y SIP/2.0\r\n" + HEAD + b"CSeq: 1 INVITE\r\nNoColon\r\n\r\n", "header"),
        (
            b"INVITE sip:x@y SIP/2.0\r\n"
            + HEAD
            + b"CSeq: 1 INVITE\r\nContent-Length: 50\r\n\r\nab",
            "Content-Length",
        ),
        (
            b"INVITE sip:x@y SIP/2.0\r\n" + HEAD + b"CSeq: 1 INVITE\r\nl: 1\r\nl: 2\r\n\r\nab",
            "conflicting",
        ),
        (b"SIP/2.0 2000 OK\r\nCall-ID: x\r\n\r\n", "status"),
        (b"INVITE sip:x@y SIP/2.0\r\n\xff\xfe: x\r\n\r\n", "UTF-8"),
    ],
)
def test_malformed_messages_say_why(raw: bytes, why: str) -> None:
    with pytest.raises(SipParseError, match=why):
        parse_message(raw)


def test_salvage_keeps_enough_to_answer_400() -> None:
    raw = b"INVITE sip:x@y SIP/2.0\r\n" + HEAD + b"CSeq: 1 INVITE\r\nbroken line\r\n\r\n"
    salvaged = salvage_request(raw)
    assert salvaged is not None and salvaged.call_id == "c"
    assert salvage_request(b"SIP/2.0 200 OK\r\n\r\n") is None
    assert salvage_request(b"\x00\x01garbage") is None


def test_via_and_names() -> None:
    via = parse_via("SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKabc;rport")
    assert (via.transport, via.host, via.port, via.branch) == (
        "TCP",
        "2001:db8::1",
        5061,
        "z9hG4bKabc",
    )
    assert via.params["rport"] == ""
    with pytest.raises(SipParseError):
        parse_via("HTTP/1.1 host")
    assert canonical_name("call-id") == "Call-ID" and canonical_name("x-foo-bar") == "X-Foo-Bar"
    na = parse_name_addr('"Alice, A" <sip:alice@a.com;transport=tcp>;tag=9')
    assert (na.display, na.uri, na.tag) == ("Alice, A", "sip:alice@a.com;transport=tcp", "9")
    msg = SipMessage(method="X", headers=[("Contact", '"A, B" <sip:a@b>, <sip:c@d>')])
    assert msg.header_values("m") == ['"A, B" <sip:a@b>', "<sip:c@d>"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_only_raise_sip_parse_error(data: bytes) -> None:
    try:
        parse_message(data)
    except SipParseError:
        pass
    salvage_request(data)


LINES = st.sampled_from(
    [b"INVITE sip:a@b SIP/2.0", b"SIP/2.0 200 OK", b"Via: SIP/2.0/UDP h;branch=z9hG4bK1",
     b"From: <sip:a@b>;tag=1", b"To: x", b"Call-ID: c", b"CSeq: 1 INVITE", b"l: 3", b" folded",
     b"Content-Length: x", b"CSeq: 1", b":", b"", b"\t", b"v:", b"BYE x SIP/2.0"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(LINES, max_size=12), st.binary(max_size=20))
def test_fuzz_structured_messages_only_raise_sip_parse_error(
    lines: list[bytes], body: bytes
) -> None:
    try:
        msg = parse_message(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    except SipParseError:
        return
    again = parse_message(msg.to_bytes())  # what we serialise, we parse back the same
    assert [h for h in again.headers if h[0] != "Content-Length"] == [
        h for h in msg.headers if h[0] != "Content-Length"
    ]
    assert again.body == msg.body
