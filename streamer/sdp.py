"""SDP (RFC 4566) parsing and the answerer's side of offer/answer (RFC 3264).

clonewatch only listens: every accepted audio stream is answered `a=recvonly` (or
`inactive` when the offerer will not send) on one of our RTP ports. G.711 µ-law and
A-law (static payload types 0 and 8, or by rtpmap) are accepted; telephone-event and
comfort noise are answered too, so the peer may send them, and are ignored by RTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from streamer.errors import SdpError

MAX_SDP_LINES = 1024
STATIC_PAYLOAD_TYPES = {0: "PCMU/8000", 8: "PCMA/8000", 13: "CN/8000"}  # RFC 3551 table 4
SUPPORTED_CODECS = {"PCMU", "PCMA"}
ANCILLARY_CODECS = {"TELEPHONE-EVENT", "CN"}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
NULL_ADDRESSES = ("0.0.0.0", "::")  # RFC 3264 8.4 (obsolete hold form, still common)


@dataclass
class MediaDescription:
    """One `m=` section.

    Attributes:
        media: "audio", "video", ...
        port: Transport port (0 = stream rejected or disabled).
        proto: "RTP/AVP" etc.
        formats: Format list, as strings (payload types for RTP).
        connection: Address from the media-level `c=` line, or None.
        attributes: (name, value) of each `a=` line, in order.
    """

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    attributes: list[tuple[str, str]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        """The value of the first `a=name[:value]`, "" for a flag, None when absent."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    def codecs(self) -> dict[int, str]:
        """Payload type -> upper-case encoding name ("PCMU"), from rtpmap and static types."""
        names = {pt: enc.split("/")[0].upper() for pt, enc in STATIC_PAYLOAD_TYPES.items()}
        for key, value in self.attributes:
            if key == "rtpmap":
                pt, _, encoding = value.partition(" ")
                if pt.isdigit() and encoding:
                    names[int(pt)] = encoding.split("/")[0].upper()
        return {int(f): names[int(f)] for f in self.formats if f.isdigit() and int(f) in names}


@dataclass
class SessionDescription:
    """A parsed SDP body: session-level lines and the media sections."""

    origin: str = ""
    connection: str | None = None
    attributes: list[tuple[str, str]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AudioStreamOffer:
    """One audio stream of an offer that we accept.

    Attributes:
        index: Position of its m-line in the offer.
        label: Its `a=label` (SIPREC, RFC 4574), "" when none.
        address: The peer's RTP address, None for the null address (hold) or none given.
        port: The peer's RTP port.
        payload_types: Accepted payload type -> "PCMU"/"PCMA"/"TELEPHONE-EVENT"/"CN".
        direction: The offer's direction for this stream (RFC 3264 6.1).
    """

    index: int
    label: str
    address: str | None
    port: int
    payload_types: dict[int, str]
    direction: str


def parse_sdp(body: bytes | str) -> SessionDescription:
    """Parse an SDP body.

    Raises:
        SdpError: the body is not SDP or a line is malformed.
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        raise SdpError("SDP must start with v=0")
    if len(lines) > MAX_SDP_LINES:
        raise SdpError(f"more than {MAX_SDP_LINES} SDP lines")
    sdp = SessionDescription()
    for line in lines[1:]:
        kind, eq, value = line.partition("=")
        if not eq or len(kind) != 1:
            raise SdpError(f"malformed SDP line {line[:40]!r}")
        _apply_line(sdp, kind, value)
    return sdp


def _apply_line(sdp: SessionDescription, kind: str, value: str) -> None:
    current = sdp.media[-1] if sdp.media else None
    if kind == "m":
        sdp.media.append(_parse_media(value))
    elif kind == "c":
        address = _parse_connection(value)
        if current is None:
            sdp.connection = address
        else:
            current.connection = address
    elif kind == "a":
        name, _, attr_value = value.partition(":")
        target = sdp.attributes if current is None else current.attributes
        target.append((name.strip().lower(), attr_value.strip()))
    elif kind == "o":
        sdp.origin = value


def _parse_media(value: str) -> MediaDescription:
    fields = value.split()
    if len(fields) < 4:
        raise SdpError(f"malformed m= line {value[:40]!r}")
    port_text = fields[1].split("/")[0]
    if not port_text.isdigit() or int(port_text) > 65535:
        raise SdpError(f"malformed m= port {fields[1][:10]!r}")
    return MediaDescription(fields[0].lower(), int(port_text), fields[2], fields[3:])


def _parse_connection(value: str) -> str:
    fields = value.split()
    if len(fields) != 3 or fields[0] != "IN" or fields[1] not in ("IP4", "IP6"):
        raise SdpError(f"malformed c= line {value[:40]!r}")
    return fields[2].split("/")[0]


def direction_of(sdp: SessionDescription, media: MediaDescription) -> str:
    """The stream's direction: media-level attribute, else session-level, else sendrecv."""
    for attrs in (media.attributes, sdp.attributes):
        for key, _ in attrs:
            if key in DIRECTIONS:
                return key
    return "sendrecv"


def audio_streams(sdp: SessionDescription) -> list[AudioStreamOffer]:
    """The offered audio streams we accept (RTP, active, with PCMU or PCMA).

    Raises:
        SdpError: nothing is acceptable (no audio, or no supported codec).
    """
    accepted: list[AudioStreamOffer] = []
    saw_audio = False
    for index, media in enumerate(sdp.media):
        if media.media != "audio" or media.port == 0 or "RTP/AVP" not in media.proto.upper():
            continue
        saw_audio = True
        codecs = {
            pt: n for pt, n in media.codecs().items() if n in SUPPORTED_CODECS | ANCILLARY_CODECS
        }
        if not SUPPORTED_CODECS & set(codecs.values()):
            continue
        address = media.connection or sdp.connection
        accepted.append(
            AudioStreamOffer(
                index=index,
                label=media.attribute("label") or "",
                address=None if address is None or address in NULL_ADDRESSES else address,
                port=media.port,
                payload_types=codecs,
                direction=direction_of(sdp, media),
            )
        )
    if not accepted:
        raise SdpError("no supported audio codec offered" if saw_audio else "no audio stream")
    return accepted


def answer_direction(offer_direction: str) -> str:
    """Our direction for a stream: we receive only (RFC 3264 6.1)."""
    return "recvonly" if offer_direction in ("sendrecv", "sendonly") else "inactive"


def build_answer(
    offer: SessionDescription,
    accepted: Mapping[int, tuple[AudioStreamOffer, int]],
    host: str,
    session_id: int,
    version: int,
) -> str:
    """The SDP answer: one m-line per offered m-line, in order (RFC 3264 6).

    Args:
        offer: The parsed offer.
        accepted: m-line index -> (the accepted stream, our RTP port); others are rejected
            with port 0.
        host: Our IP address for `o=` and `c=`.
        session_id: Stable per call (`o=` sess-id).
        version: Incremented on every new answer of the call (`o=` sess-version).
    """
    ip = "IP6" if ":" in host else "IP4"
    lines = [
        "v=0",
        f"o=clonewatch {session_id} {version} IN {ip} {host}",
        "s=clonewatch",
        f"c=IN {ip} {host}",
        "t=0 0",
    ]
    for index, media in enumerate(offer.media):
        if index not in accepted:
            lines.append(f"m={media.media} 0 {media.proto} {media.formats[0]}")
            continue
        stream, port = accepted[index]
        pts = list(stream.payload_types)
        lines.append(f"m=audio {port} {media.proto} {' '.join(str(pt) for pt in pts)}")
        for pt in pts:
            lines.append(f"a=rtpmap:{pt} {_rtpmap_value(media, pt)}")
        if stream.label:
            lines.append(f"a=label:{stream.label}")
        lines.append(f"a={answer_direction(stream.direction)}")
    return "\r\n".join(lines) + "\r\n"


def _rtpmap_value(media: MediaDescription, pt: int) -> str:
    for key, value in media.attributes:
        if key == "rtpmap" and value.split(" ", 1)[0] == str(pt):
            return value.split(" ", 1)[1]
    return STATIC_PAYLOAD_TYPES[pt]
