"""Hypothesis fuzzing of the SIPREC and SDP parsers: only SdpError may escape."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.calls_media import SessionOffer, plan_media
from streamer.errors import SdpError
from streamer.sdp import audio_streams, build_answer, parse_sdp
from streamer.siprec import parse_metadata, split_multipart

pytestmark = pytest.mark.unit

FUZZ = settings(max_examples=150, deadline=None)
TOKENS = st.sampled_from(
    ["0", "8", "101", "-1", "65536", "99999999999", "", " ", "IN", "IP4", "IP6", "0.0.0.0",
     "127.0.0.1", "::1", "RTP/AVP", "audio", "video", "PCMU/8000", "telephone-event/8000",
     "label:1", "sendonly", "inactive", "rtpmap:0", "rtpmap:x", "\u00e9", "\x00", "/"]
)  # fmt: skip
SDP_LINE = st.one_of(
    st.builds(
        lambda kind, words: f"{kind}={' '.join(words)}",
        st.sampled_from(list("vosctmab")),
        st.lists(TOKENS, max_size=6),
    ),
    st.builds(
        lambda port, pts: f"m=audio {port} RTP/AVP {' '.join(pts)}",
        st.sampled_from(["0", "40000", "65535", "70000", "x"]),
        st.lists(TOKENS, min_size=1, max_size=4),
    ),
    st.sampled_from(["c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0", "a=rtpmap:101 telephone-event/8000",
                     "a=label:96", "a=sendonly", "a=rtpmap:96 PCMA/8000"]),
)  # fmt: skip
XML_BITS = st.sampled_from(
    ["<recording>", "</recording>", "<participant participant_id='p'>", "</participant>",
     "<nameID aor='sip:a@b'>", "</nameID>", "<name>", "</name>", "<stream stream_id='s'>",
     "</stream>", "<label>1</label>", "<participantstreamassoc participant_id='p'>",
     "<send>s</send>", "</participantstreamassoc>", "<send/>", "x", "&amp;", "&bogus;",
     "<![CDATA[", "]]>", "<?xml version='1.0'?>", "<!--", "-->", "\u00ff", "<a:b xmlns:a='u'>"]
)  # fmt: skip


def offer(content_type: str, body: bytes) -> SessionOffer:
    return SessionOffer("fuzz", content_type, body, "caller", "line", "127.0.0.1")


@FUZZ
@given(st.text(max_size=80), st.binary(max_size=400))
def test_fuzz_split_multipart(content_type: str, body: bytes) -> None:
    try:
        split_multipart(content_type, body)
    except SdpError:
        pass


@FUZZ
@given(st.one_of(st.binary(max_size=400), st.lists(XML_BITS, max_size=30).map(
    lambda bits: "".join(bits).encode())))  # fmt: skip
def test_fuzz_parse_metadata(xml: bytes) -> None:
    try:
        parse_metadata(xml)
    except SdpError:
        pass


@FUZZ
@given(st.lists(SDP_LINE, max_size=14), st.lists(XML_BITS, max_size=20), st.booleans())
def test_fuzz_siprec_offer_and_answer(lines: list[str], bits: list[str], crlf: bool) -> None:
    """A well-framed multipart body with fuzzed SDP and metadata: plan, then answer."""
    eol = "\r\n" if crlf else "\n"
    sdp = eol.join(["v=0", *lines]) + eol
    body = (
        f"--b{eol}Content-Type: application/sdp{eol}{eol}{sdp}{eol}"
        f"--b{eol}Content-Type: application/rs-metadata+xml{eol}{eol}{''.join(bits)}{eol}--b--"
    )
    try:
        plan = plan_media(offer("multipart/mixed; boundary=b", body.encode()))
    except SdpError:
        return
    accepted = {s.offer.index: (s.offer, 20000 + 2 * i) for i, s in enumerate(plan.streams)}
    answer = build_answer(plan.sdp, accepted, "127.0.0.1", 1, 2)
    assert audio_streams(parse_sdp(answer))  # our own answer always parses back


@FUZZ
@given(st.lists(SDP_LINE, max_size=14))
def test_fuzz_structured_sdp(lines: list[str]) -> None:
    try:
        streams = audio_streams(parse_sdp("\r\n".join(["v=0", *lines])))
    except SdpError:
        return
    assert streams and all(s.payload_types for s in streams)
