"""SDP parsing and the answerer's side of offer/answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.types import Ingress
from streamer.calls_media import SessionOffer, plan_media
from streamer.errors import SdpError
from streamer.sdp import audio_streams, build_answer, parse_sdp

pytestmark = pytest.mark.unit

OFFER = """v=0
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com
s=
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 18 8 0 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
m=video 51372 RTP/AVP 31
"""


def test_accepts_g711_and_telephone_event_rejects_video() -> None:
    sdp = parse_sdp(OFFER)
    (audio,) = audio_streams(sdp)
    assert audio.payload_types == {8: "PCMA", 0: "PCMU", 101: "TELEPHONE-EVENT"}
    assert (audio.address, audio.port, audio.direction) == ("192.0.2.10", 49170, "sendrecv")
    answer = build_answer(sdp, {0: (audio, 20000)}, "127.0.0.1", 7, 1)
    lines = answer.splitlines()
    assert "m=audio 20000 RTP/AVP 8 0 101" in lines
    assert "m=video 0 RTP/AVP 31" in lines  # rejected in place (RFC 3264 6)
    assert "a=recvonly" in lines and "c=IN IP4 127.0.0.1" in lines
    assert "a=rtpmap:0 PCMU/8000" in lines and "a=rtpmap:101 telephone-event/8000" in lines


def test_dynamic_payload_type_by_rtpmap_and_session_direction() -> None:
    sdp = parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\na=sendonly\r\n"
        "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 pcmu/8000\r\n"
    )
    (audio,) = audio_streams(sdp)
    assert audio.payload_types == {96: "PCMU"} and audio.direction == "sendonly"
    assert "a=recvonly" in build_answer(sdp, {0: (audio, 2)}, "::1", 1, 2)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("hello", "v=0"),
        ("v=0\nm=audio x RTP/AVP 0\n", "m= port"),
        ("v=0\nc=IN IP4\n", "c= line"),
        ("v=0\nbad line\n", "malformed SDP line"),
        ("v=0\nc=IN IP4 1.2.3.4\nm=video 5 RTP/AVP 96\n", "no audio"),
        ("v=0\nc=IN IP4 1.2.3.4\nm=audio 5 RTP/AVP 18 9\n", "no supported audio codec"),
    ],
)
def test_unacceptable_offers(body: str, why: str) -> None:
    with pytest.raises(SdpError, match=why):
        audio_streams(parse_sdp(body))


def offer(body: str, content_type: str = "application/sdp") -> SessionOffer:
    return SessionOffer("c1", content_type, body.encode(), "Alice", "+1555", "127.0.0.1")


@pytest.mark.parametrize(
    ("extra", "address", "held"),
    [
        ("a=sendrecv", "1.2.3.4", False),
        ("a=sendonly", "1.2.3.4", True),
        ("a=inactive", "1.2.3.4", True),
        ("a=sendrecv", "0.0.0.0", True),
    ],
)
def test_plain_sip_hold_detection(extra: str, address: str, held: bool) -> None:
    body = f"v=0\nc=IN IP4 {address}\nm=audio 5000 RTP/AVP 0\n{extra}\n"
    plan = plan_media(offer(body))
    assert plan.ingress is Ingress.SIP and plan.line == "+1555"
    (stream,) = plan.streams
    assert (stream.participant_id, stream.label, stream.held) == ("caller", "Alice", held)
    assert stream.offer.address == (None if address == "0.0.0.0" else address)


def test_plan_refuses_empty_and_foreign_bodies() -> None:
    with pytest.raises(SdpError, match="no SDP offer"):
        plan_media(offer(""))
    with pytest.raises(SdpError, match="unsupported body type"):
        plan_media(offer("v=0\n", "text/html"))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_sdp_only_raises_sdp_error(text: str) -> None:
    try:
        audio_streams(parse_sdp("v=0\n" + text))
    except SdpError:
        pass
