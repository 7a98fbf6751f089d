"""SIPREC (RFC 7866) bodies: multipart/mixed with SDP and recording metadata (RFC 7865).

A recording session INVITE carries `multipart/mixed` with an `application/sdp` part and
an `application/rs-metadata+xml` part. Each labelled `m=audio` stream (RFC 4574
`a=label`) is one participant; the metadata says who sends it:
`stream/label` -> `stream_id`, `participantstreamassoc/send` -> `participant_id`,
`participant/nameID` -> name and AOR. Older drafts' spellings (`id` attributes,
`<aor>`, `<send>` inside `<participant>`) are accepted too.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from streamer.errors import SdpError

MULTIPART_MIXED = "multipart/mixed"
SDP_TYPE = "application/sdp"
METADATA_TYPE = "application/rs-metadata+xml"
MAX_PARTS = 16


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One part of a multipart body: its Content-Type (lower case, no params) and bytes."""

    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Participant:
    """A participant of the recorded call, from the metadata."""

    participant_id: str
    name: str
    aor: str


@dataclass
class RecordingMetadata:
    """What clonewatch uses of RFC 7865 metadata.

    Attributes:
        participants: In document order.
        stream_sender: Stream label -> the participant who sends that stream.
    """

    participants: list[Participant] = field(default_factory=list)
    stream_sender: dict[str, Participant] = field(default_factory=dict)


def content_type_params(value: str) -> tuple[str, dict[str, str]]:
    """Split `multipart/mixed; boundary="x"` into ("multipart/mixed", {"boundary": "x"})."""
    kind, *params = value.split(";")
    parsed: dict[str, str] = {}
    for param in params:
        key, _, val = param.partition("=")
        parsed[key.strip().lower()] = val.strip().strip('"')
    return kind.strip().lower(), parsed


def split_multipart(content_type: str, body: bytes) -> list[BodyPart]:
    """Split a multipart/mixed body (RFC 2046 5.1) into its parts.

    Raises:
        SdpError: not multipart, no boundary, or no closing delimiter.
    """
    kind, params = content_type_params(content_type)
    boundary = params.get("boundary", "")
    if not kind.startswith("multipart/") or not boundary or len(boundary) > 70:
        raise SdpError(f"not a multipart body with a boundary: {content_type[:60]!r}")
    delimiter = b"--" + boundary.encode("ascii", errors="replace")
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise SdpError("multipart body has no parts or no closing boundary")
    parts = [_parse_part(chunk) for chunk in chunks[1:-1]]
    if len(parts) > MAX_PARTS:
        raise SdpError(f"more than {MAX_PARTS} body parts")
    return parts


def _parse_part(chunk: bytes) -> BodyPart:
    chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
    head, sep, content = chunk.partition(b"\r\n\r\n")
    if not sep:
        head, sep, content = chunk.partition(b"\n\n")
    if not sep:  # no headers: RFC 2046 says text/plain; keep it, callers look by type
        return BodyPart("text/plain", chunk)
    content_type = "text/plain"
    for line in head.decode("utf-8", errors="replace").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-type":
            content_type = content_type_params(value)[0]
    if content.endswith(b"\r\n"):  # the CRLF before the next delimiter belongs to it
        content = content[:-2]
    return BodyPart(content_type, content)


def find_part(parts: list[BodyPart], content_type: str) -> bytes | None:
    """The body of the first part of `content_type`, or None."""
    for part in parts:
        if part.content_type == content_type:
            return part.body
    return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in elem if _local(child.tag) == name]


def _text(elem: ET.Element, name: str) -> str:
    for child in elem.iter():
        if _local(child.tag) == name and child.text and child.text.strip():
            return child.text.strip()
    return ""


def _ident(elem: ET.Element, *names: str) -> str:
    for name in names:
        if elem.get(name):
            return elem.get(name, "")
    return ""


def parse_metadata(xml: bytes) -> RecordingMetadata:
    """Parse RFC 7865 recording metadata.

    Raises:
        SdpError: not well-formed XML, or a DTD (refused: entity expansion attacks).
    """
    if b"<!DOCTYPE" in xml.upper() or b"<!ENTITY" in xml.upper():
        raise SdpError("recording metadata with a DTD is refused")
    try:
        root = ET.fromstring(xml)  # no DTD: checked above
    except ET.ParseError as exc:
        raise SdpError(f"recording metadata is not well-formed XML: {exc}") from None
    participants: dict[str, Participant] = {}
    sends: dict[str, str] = {}  # stream_id -> participant_id
    for elem in _children(root, "participant"):
        pid = _ident(elem, "participant_id", "id")
        name_id = _first(elem, "nameID")  # an Element without children is falsy: no `or`
        aor = _ident(elem if name_id is None else name_id, "aor") or _text(elem, "aor")
        participants[pid] = Participant(pid, _text(elem, "name"), aor)
        for send in _children(elem, "send"):
            sends[(send.text or "").strip()] = pid
    for assoc in _children(root, "participantstreamassoc"):
        for send in _children(assoc, "send"):
            sends[(send.text or "").strip()] = _ident(assoc, "participant_id", "id")
    meta = RecordingMetadata(participants=list(participants.values()))
    for stream in _children(root, "stream"):
        sender = participants.get(sends.get(_ident(stream, "stream_id", "id"), ""))
        label = _text(stream, "label")
        if label and sender is not None:
            meta.stream_sender[label] = sender
    return meta


def _first(elem: ET.Element, name: str) -> ET.Element | None:
    found = _children(elem, name)
    return found[0] if found else None


def aor_key(aor: str) -> str:
    """An AOR as compared with configured ones: no brackets or URI parameters, lower case.

    `<sip:IVR@Bank.example;transport=tcp>` -> `sip:ivr@bank.example`.
    """
    return aor.strip().strip("<>").split(";")[0].strip().lower()


def participant_label(participant: Participant | None) -> str:
    """How a participant is shown: the name, else the AOR, else ""."""
    if participant is None:
        return ""
    return participant.name or participant.aor
