"""SIP calls out of pcap/pcapng captures, replayed as calls of AudioFrames.

Calls are found from their SIP signalling, over UDP or TCP (TCP streams reassembled and
framed by Content-Length, `streamer.pcap_tcp`): every SDP seen in an INVITE, a 2xx
answering one, or an ACK (late offer) says where one side of the call receives RTP, so
RTP sent *to* those addresses is the other side's audio (RFC 3264 section 5). RTP whose
destination matches no SDP is matched by its source against the sender's own SDP
(symmetric RTP, as behind NAT). Ports reused by later calls in one capture are told
apart by time: a stream belongs to the call whose signalling came last before it.

Participants: "caller" (the INVITE's From side) and "callee" for a call with one audio
stream per side; a side with several audio streams (SIPREC) names each by its `a=label`,
labelled from the RFC 7865 metadata when present. The call id is the SIP Call-ID.

Each participant's RTP is split by SSRC, put in sequence order, de-duplicated and laid
out on its RTP timestamps (gaps and comfort-noise stretches become silence), then G.711
is decoded. Any other codec is an error for that stream only, raised once the call's
supported streams have been replayed.
"""

from __future__ import annotations

import functools
import logging
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from alerts.types import CallInfo, Ingress, ParticipantInfo
from streamer.errors import AudioFileError, RtpParseError, SdpError, SipParseError
from streamer.g711 import alaw_decode, ulaw_decode
from streamer.pcap_file import Datagram, read_capture
from streamer.pcap_rtp import StreamPackets, decode_stream
from streamer.pcap_tcp import sip_over_tcp
from streamer.replay_source import FrameBatches, ReplayCall, ReplaySource, pcm_batches
from streamer.rtp import is_rtcp, parse_rtp
from streamer.sdp import SessionDescription, parse_sdp
from streamer.sip_headers import parse_name_addr
from streamer.sip_message import SipMessage, parse_message
from streamer.siprec import (
    METADATA_TYPE,
    SDP_TYPE,
    RecordingMetadata,
    find_part,
    parse_metadata,
    participant_label,
    split_multipart,
)

logger = logging.getLogger(__name__)

G711_RATE_HZ = 8000
DECODERS = {"PCMU": ulaw_decode, "PCMA": alaw_decode}
SIDES = ("caller", "callee")


@dataclass
class _Dialog:
    """What the signalling of one Call-ID said."""

    call_id: str
    started_s: float
    caller_tag: str
    labels: dict[str, str]  # side -> From/To display or URI
    sdps: list[tuple[float, str, SessionDescription]] = field(default_factory=list)
    metadata: RecordingMetadata | None = None


@dataclass
class _Stream:
    """One participant's RTP: where it is sent to and from, and the packets found."""

    call_id: str
    participant_id: str
    label: str
    codecs: dict[int, str]
    packets: StreamPackets = field(default_factory=list)


def open_capture(path: Path) -> ReplaySource:
    """Find the SIP calls of a capture and pair its RTP with their participants (blocking).

    Raises:
        AudioFileError: Not a capture, a corrupt one, or one without a SIP call with SDP.
    """
    datagrams, segments = read_capture(path)
    over_tcp = sip_over_tcp(segments)
    signalling = sorted([*datagrams, *over_tcp], key=lambda d: d.ts_s)
    dialogs = _find_dialogs(signalling)
    if not dialogs:
        raise AudioFileError(
            f"{path}: no SIP call with SDP found in {len(datagrams)} UDP datagrams"
            f" and {len(over_tcp)} SIP messages over TCP"
        )
    streams = _match_rtp(datagrams, dialogs)
    calls = _replay_calls(path, dialogs, streams)
    ends = [d.ts_s for d in datagrams]
    return ReplaySource(path, calls, max(ends) - min(ends) if ends else 0.0)


def _find_dialogs(datagrams: list[Datagram]) -> dict[str, _Dialog]:
    dialogs: dict[str, _Dialog] = {}
    for datagram in datagrams:
        if not datagram.payload[:1].isalpha():
            continue  # RTP and RTCP start with version bits 10
        try:
            msg = parse_message(datagram.payload)
            _note_message(dialogs, msg, datagram.ts_s)
        except (SipParseError, SdpError) as exc:
            logger.debug("skipping SIP message: %s", exc, extra={"stage": "replay"})
    return {cid: d for cid, d in dialogs.items() if d.sdps}


def _note_message(dialogs: dict[str, _Dialog], msg: SipMessage, ts_s: float) -> None:
    call_id = msg.call_id
    _, method = msg.cseq
    if msg.method == "INVITE" and call_id not in dialogs:
        from_ = parse_name_addr(msg.header("From") or "")
        to = parse_name_addr(msg.header("To") or "")
        labels = {"caller": from_.display or from_.uri, "callee": to.display or to.uri}
        dialogs[call_id] = _Dialog(call_id, ts_s, from_.tag, labels)
    dialog = dialogs.get(call_id)
    if dialog is None or not msg.body or method not in ("INVITE", "ACK"):
        return
    if not msg.is_request and not 200 <= msg.status < 300:
        return
    from_tag = parse_name_addr(msg.header("From") or "").tag
    sent_by_caller = (from_tag == dialog.caller_tag) == msg.is_request
    sdp, metadata = _session_body(msg)
    dialog.sdps.append((ts_s, "caller" if sent_by_caller else "callee", sdp))
    if metadata is not None:
        dialog.metadata = metadata


def _session_body(msg: SipMessage) -> tuple[SessionDescription, RecordingMetadata | None]:
    content_type = msg.header("Content-Type") or SDP_TYPE
    if not content_type.lower().startswith("multipart/"):
        return parse_sdp(msg.body), None
    parts = split_multipart(content_type, msg.body)
    sdp = find_part(parts, SDP_TYPE)
    if sdp is None:
        raise SdpError("multipart body without application/sdp")
    xml = find_part(parts, METADATA_TYPE)
    return parse_sdp(sdp), parse_metadata(xml) if xml is not None else None


@dataclass
class _Index:
    """(address, port) -> streams by the time their SDP was seen, for port reuse."""

    by_key: dict[tuple[str, int], list[tuple[float, _Stream]]] = field(default_factory=dict)

    def add(self, key: tuple[str, int], since_s: float, stream: _Stream) -> None:
        entries = self.by_key.setdefault(key, [])
        entries.append((since_s, stream))
        entries.sort(key=lambda e: e[0])

    def find(self, key: tuple[str, int], ts_s: float) -> _Stream | None:
        entries = self.by_key.get(key)
        if not entries:
            return None
        i = bisect_right([since for since, _ in entries], ts_s)
        return entries[max(i - 1, 0)][1]


def _match_rtp(datagrams: list[Datagram], dialogs: dict[str, _Dialog]) -> list[_Stream]:
    to_index, from_index = _Index(), _Index()
    streams: list[_Stream] = []
    for dialog in dialogs.values():
        streams.extend(_dialog_streams(dialog, to_index, from_index))
    for datagram in datagrams:
        payload = datagram.payload
        if not payload or payload[0] >> 6 != 2 or is_rtcp(payload):
            continue
        stream = to_index.find(datagram.dst, datagram.ts_s) or from_index.find(
            datagram.src, datagram.ts_s
        )
        if stream is None:
            continue
        try:
            stream.packets.append((datagram.ts_s, parse_rtp(payload)))
        except RtpParseError as exc:
            logger.debug("skipping RTP: %s", exc, extra={"call_id": stream.call_id})
    return streams


def _dialog_streams(dialog: _Dialog, to_index: _Index, from_index: _Index) -> list[_Stream]:
    """One stream per (sending side, audio m-line), indexed by where its RTP goes."""
    streams: dict[tuple[str, int], _Stream] = {}
    for ts_s, receiver, sdp in dialog.sdps:
        sender = SIDES[1 - SIDES.index(receiver)]
        audio = [(i, m) for i, m in enumerate(sdp.media) if m.media == "audio" and m.port]
        for i, media in audio:
            key = (sender, i)
            if key not in streams:
                pid, label = _name(dialog, sender, media.attribute("label"), i, len(audio))
                streams[key] = _Stream(dialog.call_id, pid, label, {})
            stream = streams[key]
            stream.codecs.update(media.codecs())  # the receiver's numbering is what is sent
            address = media.connection or sdp.connection
            if address is not None:
                to_index.add((address, media.port), ts_s, stream)
        for i, media in audio:  # symmetric RTP: the receiver sends from where it receives
            address = media.connection or sdp.connection
            mine = streams.get((receiver, i))
            if address is not None and mine is not None:
                from_index.add((address, media.port), ts_s, mine)
    return list(streams.values())


def _name(
    dialog: _Dialog, side: str, label: str | None, index: int, streams: int
) -> tuple[str, str]:
    """Participant id and label of the `index`th of `streams` audio streams of a side."""
    if streams == 1:
        return side, dialog.labels[side]
    pid = label or f"{side}{index}"
    if dialog.metadata is not None and label:
        return pid, participant_label(dialog.metadata.stream_sender.get(label))
    return pid, ""


def _replay_calls(
    path: Path, dialogs: dict[str, _Dialog], streams: list[_Stream]
) -> tuple[ReplayCall, ...]:
    firsts = [s.packets[0][0] for s in streams if s.packets]
    origin = min(firsts) if firsts else 0.0
    calls: list[ReplayCall] = []
    for dialog in sorted(dialogs.values(), key=lambda d: d.started_s):
        mine = [s for s in streams if s.call_id == dialog.call_id and s.packets]
        start = min((s.packets[0][0] for s in mine), default=origin)
        calls.append(
            ReplayCall(
                info=CallInfo(dialog.call_id, Ingress.REPLAY, ""),
                participants=tuple(
                    ParticipantInfo(dialog.call_id, s.participant_id, s.label) for s in mine
                ),
                read=functools.partial(_read_call, path, dialog.call_id, mine),
                offset_s=max(start - origin, 0.0),
                participant_offsets_s={s.participant_id: s.packets[0][0] - start for s in mine},
            )
        )
    return tuple(calls)


def _read_call(path: Path, call_id: str, streams: list[_Stream]) -> FrameBatches:
    """Decode every stream of a call, yield its frames, then raise for unsupported ones."""
    tracks: dict[str, npt.NDArray[np.int16]] = {}
    problems: list[str] = []
    for stream in streams:
        pcm, unsupported = decode_stream(stream.packets, stream.codecs, DECODERS)
        tracks[stream.participant_id] = pcm
        if unsupported:
            names = ", ".join(sorted(unsupported))
            problems.append(
                f"{path}: call {call_id} participant {stream.participant_id}: "
                f"unsupported codec {names} (only PCMU and PCMA are decoded)"
            )
    yield from pcm_batches(call_id, tracks, G711_RATE_HZ)
    if problems:
        raise AudioFileError("; ".join(problems))
