"""What `clonewatch call` sends: the recording as 8 kHz tracks, and the SDP/SIPREC offer.

A plain SIP call offers one `m=audio` (PCMU and PCMA) and sends the recording mixed to
mono. A SIPREC call (RFC 7866) offers one labelled `a=sendonly` stream per channel in a
`multipart/mixed` body beside RFC 7865 metadata that names one participant per channel,
so the recorder scores each channel on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import numpy.typing as npt
import soundfile as sf

from streamer.errors import AudioFileError
from streamer.resample import Resampler

G711_RATE_HZ = 8000
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}
SIPREC_BOUNDARY = "clonewatch-siprec-boundary"
METADATA_NS = "urn:ietf:params:xml:ns:recording:1"


@dataclass(frozen=True, slots=True)
class Recording:
    """A recording ready to send: one 8 kHz int16 track per channel, with labels."""

    path: Path
    tracks: tuple[npt.NDArray[np.int16], ...]
    labels: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        """Seconds of the longest track."""
        return max((len(t) for t in self.tracks), default=0) / G711_RATE_HZ

    def mono(self) -> npt.NDArray[np.int16]:
        """The channels mixed down to one (their mean)."""
        if len(self.tracks) == 1:
            return self.tracks[0]
        longest = max(len(t) for t in self.tracks)
        total = np.zeros(longest, np.int32)
        for track in self.tracks:
            total[: len(track)] += track
        return (total // len(self.tracks)).astype(np.int16)


def load_recording(path: Path) -> Recording:
    """Read a recording and resample every channel to 8 kHz (blocking).

    Raises:
        AudioFileError: Unreadable or empty; the message names the file.
    """
    try:
        data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"{path}: not a readable audio file ({exc})") from exc
    if len(data) == 0:
        raise AudioFileError(f"{path}: no audio in file")
    tracks = tuple(
        Resampler(int(rate), G711_RATE_HZ).process(np.ascontiguousarray(data[:, ch]), last=True)
        for ch in range(data.shape[1])
    )
    labels = tuple(f"channel {ch + 1}" for ch in range(data.shape[1]))
    return Recording(path, tracks, labels)


def audio_sdp(host: str, ports: list[int], codec: str, session_id: int, siprec: bool) -> str:
    """An SDP offer: one `m=audio` per port; SIPREC streams are labelled 1.. and sendonly."""
    ip = "IP6" if ":" in host else "IP4"
    pts = [PAYLOAD_TYPES[codec]] + [pt for name, pt in PAYLOAD_TYPES.items() if name != codec]
    lines = [
        "v=0",
        f"o=clonewatch {session_id} 1 IN {ip} {host}",
        "s=clonewatch call",
        f"c=IN {ip} {host}",
        "t=0 0",
    ]
    for i, port in enumerate(ports):
        lines.append(f"m=audio {port} RTP/AVP {' '.join(str(pt) for pt in pts)}")
        lines += [f"a=rtpmap:{pt} {name}/8000" for name, pt in PAYLOAD_TYPES.items()]
        lines.append("a=ptime:20")
        if siprec:
            lines.append(f"a=label:{i + 1}")
        lines.append("a=sendonly")
    return "\r\n".join(lines) + "\r\n"


def siprec_metadata(call_id: str, labels: tuple[str, ...], aor_host: str) -> str:
    """RFC 7865 metadata: one participant per channel, each sending the stream labelled i+1."""
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?><recording xmlns="{METADATA_NS}">',
        "<datamode>complete</datamode>",
        f'<session session_id="s1"><sipSessionID>{escape(call_id)}</sipSessionID></session>',
    ]
    for i, label in enumerate(labels):
        aor = f"sip:ch{i}@{aor_host}"
        parts.append(
            f'<participant participant_id="p{i}"><nameID aor="{escape(aor)}">'
            f"<name>{escape(label)}</name></nameID></participant>"
            f'<stream stream_id="st{i}" session_id="s1"><label>{i + 1}</label></stream>'
            f'<participantstreamassoc participant_id="p{i}"><send>st{i}</send>'
            "</participantstreamassoc>"
        )
    parts.append("</recording>")
    return "".join(parts)


def siprec_body(sdp: str, metadata: str) -> tuple[str, bytes]:
    """(Content-Type, body) of a SIPREC INVITE: multipart/mixed with SDP and metadata."""
    body = (
        f"--{SIPREC_BOUNDARY}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
        f"--{SIPREC_BOUNDARY}\r\nContent-Type: application/rs-metadata+xml\r\n"
        f"Content-Disposition: recording-session\r\n\r\n{metadata}\r\n"
        f"--{SIPREC_BOUNDARY}--\r\n"
    )
    return f'multipart/mixed;boundary="{SIPREC_BOUNDARY}"', body.encode("utf-8")
