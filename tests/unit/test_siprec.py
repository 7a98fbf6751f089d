"""SIPREC bodies: multipart splitting, RFC 7865 metadata, stream-to-participant mapping."""

from __future__ import annotations

import pytest

from alerts.types import Ingress
from streamer.calls_media import SessionOffer, plan_media
from streamer.errors import NothingToScore, SdpError
from streamer.siprec import parse_metadata, split_multipart

pytestmark = pytest.mark.unit

SDP = (
    "v=0\r\no=src 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n"
    "m=audio 6002 RTP/AVP 8\r\na=label:2\r\na=sendonly\r\n"
)
# RFC 7865 section 6 shape: nameID with aor, participantstreamassoc send/recv.
METADATA = """<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
  <datamode>complete</datamode>
  <participant participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <nameID aor="sip:+15551234567@atlanta.example.com"><name xml:lang="it">Alice</name></nameID>
  </participant>
  <participant participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <nameID aor="sip:bob@biloxy.example.com"/>
  </participant>
  <stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="x"><label>1</label></stream>
  <stream stream_id="i1Pz3to5hGk8fuXl+PbwCw==" session_id="x"><label>2</label></stream>
  <participantstreamassoc participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <send>UAAMm5GRQKSCMVvLyl4rFw==</send><recv>i1Pz3to5hGk8fuXl+PbwCw==</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <send>i1Pz3to5hGk8fuXl+PbwCw==</send><recv>UAAMm5GRQKSCMVvLyl4rFw==</recv>
  </participantstreamassoc>
</recording>"""


def multipart(boundary: str = "OSS-unique-boundary-42", metadata: str = METADATA) -> bytes:
    return (
        f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n"
        f"--{boundary}\r\nContent-Type: application/rs-metadata+xml\r\n"
        f"Content-Disposition: recording-session\r\n\r\n{metadata}\r\n--{boundary}--\r\n"
    ).encode()


def test_multipart_parts_and_types() -> None:
    parts = split_multipart('multipart/mixed;boundary="OSS-unique-boundary-42"', multipart())
    assert [p.content_type for p in parts] == ["application/sdp", "application/rs-metadata+xml"]
    assert parts[0].body.decode() == SDP


@pytest.mark.parametrize(
    "content_type", ["application/sdp", "multipart/mixed", "multipart/mixed;boundary=nothere"]
)
def test_bad_multipart(content_type: str) -> None:
    with pytest.raises(SdpError):
        split_multipart(content_type, multipart())


def test_metadata_maps_streams_to_participants() -> None:
    meta = parse_metadata(METADATA.encode())
    assert meta.stream_sender["1"].name == "Alice"
    assert meta.stream_sender["2"].aor == "sip:bob@biloxy.example.com"
    assert [p.aor for p in meta.participants][0].startswith("sip:+1555")


def test_metadata_refuses_dtd_and_bad_xml() -> None:
    with pytest.raises(SdpError, match="DTD"):
        parse_metadata(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><recording/>')
    with pytest.raises(SdpError, match="well-formed"):
        parse_metadata(b"<recording><participant>")


def siprec_offer() -> SessionOffer:
    return SessionOffer(
        "c", "multipart/mixed; boundary=OSS-unique-boundary-42", multipart(), "SRC", "srs",
        "127.0.0.1",
    )  # fmt: skip


def test_siprec_plan_names_each_labelled_stream() -> None:
    plan = plan_media(siprec_offer())
    assert plan.ingress is Ingress.SIPREC and plan.line == "+15551234567"
    got = [(s.participant_id, s.label, s.held) for s in plan.streams]
    assert got == [("1", "Alice", False), ("2", "sip:bob@biloxy.example.com", False)]


def test_siprec_without_usable_metadata_still_records() -> None:
    offer = SessionOffer(
        "c", "multipart/mixed;boundary=b", multipart("b", "<broken"), "SRC", "srs", "h"
    )
    plan = plan_media(offer)
    assert [(s.participant_id, s.label) for s in plan.streams] == [("1", ""), ("2", "")]
    assert plan.line == "srs"


@pytest.mark.parametrize(
    "ignored", ["sip:bob@biloxy.example.com", "<SIP:Bob@Biloxy.example.com;transport=tcp>"]
)
def test_siprec_plan_leaves_out_ignored_participants(ignored: str) -> None:
    plan = plan_media(siprec_offer(), [ignored])
    assert [(s.participant_id, s.label) for s in plan.streams] == [("1", "Alice")]
    assert plan.line == "+15551234567"  # the line is still named from the metadata


def test_siprec_plan_with_every_participant_ignored_is_refused() -> None:
    aors = ["sip:bob@biloxy.example.com", "sip:+15551234567@atlanta.example.com"]
    with pytest.raises(NothingToScore, match="siprec_ignore_aors"):
        plan_media(siprec_offer(), aors)


def test_ignored_aors_do_not_touch_streams_without_metadata() -> None:
    offer = SessionOffer(
        "c", "multipart/mixed;boundary=b", multipart("b", "<broken"), "SRC", "srs", "h"
    )
    plan = plan_media(offer, ["sip:bob@biloxy.example.com"])
    assert [s.participant_id for s in plan.streams] == ["1", "2"]
