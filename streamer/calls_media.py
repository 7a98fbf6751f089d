"""From an INVITE's body to a media plan: which streams, whose, held or not.

Pure functions, no I/O: the plan says what `CallManager` opens or updates. The rules
for identities, lines and hold are documented in `streamer.calls`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

from alerts.types import Ingress
from streamer.errors import NothingToScore, SdpError
from streamer.sdp import AudioStreamOffer, SessionDescription, audio_streams, parse_sdp
from streamer.sip_headers import uri_user
from streamer.siprec import (
    METADATA_TYPE,
    SDP_TYPE,
    RecordingMetadata,
    aor_key,
    content_type_params,
    find_part,
    parse_metadata,
    participant_label,
    split_multipart,
)

logger = logging.getLogger(__name__)

CALLER_ID = "caller"  # the one participant of a plain SIP call
HOLD_DIRECTIONS_SIP = ("sendonly", "recvonly", "inactive")
HOLD_DIRECTIONS_SIPREC = ("recvonly", "inactive")


@dataclass(frozen=True, slots=True)
class SessionOffer:
    """What the SIP server hands over from an INVITE.

    Attributes:
        call_id: The SIP Call-ID (already validated).
        content_type: The body's Content-Type header value.
        body: The body (SDP, or multipart/mixed for SIPREC).
        caller: From display name, else the From URI.
        line: The monitored line (To user part, else Request-URI user part).
        local_host: Our address to put into the SDP answer.
    """

    call_id: str
    content_type: str
    body: bytes
    caller: str
    line: str
    local_host: str


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """One participant's stream: who, and how to receive it."""

    participant_id: str
    label: str
    offer: AudioStreamOffer
    held: bool


@dataclass(frozen=True, slots=True)
class MediaPlan:
    """Everything accepted from one offer."""

    ingress: Ingress
    line: str
    sdp: SessionDescription
    streams: tuple[StreamPlan, ...]


def is_siprec(content_type: str) -> bool:
    """True when the body is multipart (a SIPREC recording session, RFC 7866)."""
    return content_type_params(content_type)[0].startswith("multipart/")


def plan_media(offer: SessionOffer, ignored_aors: Collection[str] = ()) -> MediaPlan:
    """Decide the media of a call from its INVITE.

    A SIPREC stream sent by a participant whose AOR is in `ignored_aors` (the line's own
    announcements, say) is left out of the plan, so the answer declines it with port 0.

    Raises:
        SdpError: no body, malformed body, no audio or no supported codec.
        NothingToScore: every SIPREC stream is from an ignored participant.
    """
    if not offer.body.strip():
        raise SdpError("no SDP offer in the INVITE")
    if is_siprec(offer.content_type):
        return _plan_siprec(offer, {aor_key(aor) for aor in ignored_aors})
    kind = content_type_params(offer.content_type)[0]
    if kind and kind != SDP_TYPE:
        raise SdpError(f"unsupported body type {kind[:40]!r}")
    sdp = parse_sdp(offer.body)
    first = audio_streams(sdp)[0]  # a plain call has one caller: its first audio stream
    held = _held(first, HOLD_DIRECTIONS_SIP)
    stream = StreamPlan(CALLER_ID, offer.caller, first, held)
    return MediaPlan(Ingress.SIP, offer.line, sdp, (stream,))


def _plan_siprec(offer: SessionOffer, ignored: set[str]) -> MediaPlan:
    parts = split_multipart(offer.content_type, offer.body)
    sdp_body = find_part(parts, SDP_TYPE)
    if sdp_body is None:
        raise SdpError("SIPREC body has no application/sdp part")
    sdp = parse_sdp(sdp_body)
    meta = _metadata(offer.call_id, find_part(parts, METADATA_TYPE))
    streams = []
    for index, audio in enumerate(audio_streams(sdp)):
        sender = meta.stream_sender.get(audio.label)
        if sender is not None and sender.aor and aor_key(sender.aor) in ignored:
            continue
        pid = audio.label or f"stream{index}"
        label = participant_label(sender)
        streams.append(StreamPlan(pid, label, audio, _held(audio, HOLD_DIRECTIONS_SIPREC)))
    if not streams:
        raise NothingToScore("every recorded stream is from a sip.siprec_ignore_aors participant")
    line = next((uri_user(p.aor) for p in meta.participants if uri_user(p.aor)), offer.line)
    return MediaPlan(Ingress.SIPREC, line, sdp, tuple(streams))


def _metadata(call_id: str, xml: bytes | None) -> RecordingMetadata:
    if xml is None:
        logger.warning("SIPREC INVITE without metadata", extra={"call_id": call_id})
        return RecordingMetadata()
    try:
        return parse_metadata(xml)
    except SdpError as exc:  # the audio is still worth scoring without names
        logger.warning("SIPREC metadata ignored: %s", exc, extra={"call_id": call_id})
        return RecordingMetadata()


def _held(offer: AudioStreamOffer, hold_directions: tuple[str, ...]) -> bool:
    return offer.address is None or offer.direction in hold_directions
