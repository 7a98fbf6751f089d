"""SIP message parsing and serialisation (RFC 3261 section 7, 20 and 25).

`parse_message` turns one framed message (a datagram, or a TCP frame cut by
Content-Length) into a `SipMessage`, or raises `SipParseError` naming what is wrong;
it never raises anything else, whatever the input (the unit tests fuzz it).
Header names are stored in their canonical spelling, compact forms expanded
(RFC 3261 7.3.3), and folded lines joined (RFC 3261 7.3.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from streamer.errors import SipParseError

SIP_VERSION = "SIP/2.0"
MAX_HEADERS = 256  # more than any real message; bounds the work on hostile input
MAX_CSEQ = 2**31 - 1  # RFC 3261 8.1.1.5: the sequence number is < 2**31

COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
}
_SPECIAL_CASE = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
}
REQUIRED_REQUEST_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_STATUS_RE = re.compile(r"^[1-6][0-9][0-9]$")
_LINE_RE = re.compile(r"\r\n|\n")


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name (`v` -> `Via`, `call-id` -> `Call-ID`)."""
    lower = name.lower()
    if lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    if lower in _SPECIAL_CASE:
        return _SPECIAL_CASE[lower]
    return "-".join(part.capitalize() for part in lower.split("-"))


@dataclass
class SipMessage:
    """A SIP request (`method` set) or response (`status` set).

    Attributes:
        method: Request method, "" for a response.
        uri: Request-URI, "" for a response.
        status: Response status code, 0 for a request.
        reason: Response reason phrase.
        headers: (canonical name, value) pairs in message order.
        body: The message body, exactly Content-Length bytes.
    """

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        """True for a request, False for a response."""
        return bool(self.method)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any spelling), or None."""
        wanted = canonical_name(name)
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        """Every value of header `name`, comma-separated lists split (for Via, Contact)."""
        wanted = canonical_name(name)
        values: list[str] = []
        for key, value in self.headers:
            if key == wanted:
                values.extend(split_list(value))
        return values

    def set_header(self, name: str, value: str) -> None:
        """Replace every value of header `name` with one, or append it."""
        wanted = canonical_name(name)
        kept = [(k, v) for k, v in self.headers if k != wanted]
        self.headers = [*kept, (wanted, value)]

    @property
    def call_id(self) -> str:
        """The Call-ID header ("" when absent)."""
        return self.header("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """The CSeq header as (number, method); raises SipParseError when malformed."""
        return parse_cseq(self.header("CSeq") or "")

    def to_bytes(self) -> bytes:
        """Serialise, writing a Content-Length that matches the body."""
        if self.is_request:
            lines = [f"{self.method} {self.uri} {SIP_VERSION}"]
        else:
            lines = [f"{SIP_VERSION} {self.status} {self.reason}"]
        lines.extend(f"{k}: {v}" for k, v in self.headers if k != "Content-Length")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes and <...>."""
    parts: list[str] = []
    depth, quoted, start = 0, False, 0
    for i, ch in enumerate(value):
        if ch == '"' and (i == 0 or value[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and not quoted and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def parse_cseq(value: str) -> tuple[int, str]:
    """Parse `CSeq: 314159 INVITE` into (314159, "INVITE")."""
    fields = value.split()
    if len(fields) != 2 or not fields[0].isdigit() or not _TOKEN_RE.match(fields[1]):
        raise SipParseError(f"malformed CSeq {value[:40]!r}")
    number = int(fields[0])
    if number > MAX_CSEQ:
        raise SipParseError("CSeq number too large")
    return number, fields[1]


def parse_message(data: bytes) -> SipMessage:
    """Parse one complete SIP message.

    Args:
        data: The whole message; for UDP one datagram, for TCP one frame.

    Returns:
        The message, with its body cut to Content-Length.

    Raises:
        SipParseError: the message is malformed; the text says where.
    """
    head, body = _split_head(data)
    lines = _unfold(head)
    if not lines or not lines[0]:
        raise SipParseError("empty start line")
    msg = _parse_start_line(lines[0])
    msg.headers = [_parse_header_line(line) for line in lines[1:]]
    msg.body = _cut_body(msg, body)
    if msg.is_request:
        _check_request(msg)
    return msg


def _split_head(data: bytes) -> tuple[str, bytes]:
    data = data.lstrip(b"\r\n")  # RFC 3261 7.5: ignore CRLFs before the start line
    idx = data.find(b"\r\n\r\n")
    sep = 4
    if idx < 0:
        idx, sep = data.find(b"\n\n"), 2
    if idx < 0:
        raise SipParseError("no empty line after the headers")
    try:
        head = data[:idx].decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    return head, data[idx + sep :]


def _unfold(head: str) -> list[str]:
    lines: list[str] = []
    for line in _LINE_RE.split(head):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] = lines[-1].rstrip() + " " + line.strip()
        else:
            lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise SipParseError(f"more than {MAX_HEADERS} header lines")
    return lines


def _parse_start_line(line: str) -> SipMessage:
    if line.upper().startswith("SIP/"):
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if version.upper() != SIP_VERSION:
            raise SipParseError(f"unsupported SIP version {version[:20]!r}")
        if not _STATUS_RE.match(code):
            raise SipParseError(f"malformed status code {code[:10]!r}")
        return SipMessage(status=int(code), reason=reason.strip())
    parts = line.split(" ")
    if len(parts) != 3:
        raise SipParseError("malformed request line")
    method, uri, version = parts
    if not _TOKEN_RE.match(method):
        raise SipParseError(f"malformed method {method[:20]!r}")
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"unsupported SIP version {version[:20]!r}")
    if ":" not in uri or not uri.isprintable() or uri.startswith(":"):
        raise SipParseError("malformed Request-URI")
    return SipMessage(method=method.upper(), uri=uri)


def _parse_header_line(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    name = name.rstrip(" \t")
    if not colon or not _TOKEN_RE.match(name):
        raise SipParseError(f"malformed header line {line[:40]!r}")
    return canonical_name(name), value.strip()


def _cut_body(msg: SipMessage, body: bytes) -> bytes:
    values = {v.strip() for k, v in msg.headers if k == "Content-Length"}
    if not values:
        return body
    if len(values) > 1:
        raise SipParseError("conflicting Content-Length headers")
    value = values.pop()
    if not value.isdigit() or len(value) > 9:
        raise SipParseError(f"malformed Content-Length {value[:20]!r}")
    length = int(value)
    if length > len(body):
        raise SipParseError(f"Content-Length {length} > body {len(body)} bytes")
    return body[:length]


def _check_request(msg: SipMessage) -> None:
    for name in REQUIRED_REQUEST_HEADERS:
        if not msg.header(name):
            raise SipParseError(f"missing {name} header")
    _, method = msg.cseq
    if method.upper() != msg.method:
        raise SipParseError("CSeq method does not match the request method")
    mf = msg.header("Max-Forwards")
    if mf is not None and (not mf.isdigit() or int(mf) > 255):
        raise SipParseError(f"malformed Max-Forwards {mf[:20]!r}")


def salvage_request(data: bytes) -> SipMessage | None:
    """Best effort for a message `parse_message` rejected: enough to answer it with 400.

    Returns a request with the start line and whichever headers still parse, or None
    when it is not a request or lacks what a response needs (Via, From, To, Call-ID,
    CSeq). Never raises.
    """
    try:
        text = data[:65536].decode("utf-8", errors="replace")
        lines = _unfold(text.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0])
        method = lines[0].split(" ", 1)[0].upper()
        if not _TOKEN_RE.match(method) or method in ("SIP/2.0", "ACK"):
            return None
        msg = SipMessage(method=method, uri=(lines[0].split(" ") + ["", ""])[1])
        for line in lines[1:]:
            try:
                msg.headers.append(_parse_header_line(line))
            except SipParseError:
                continue
        if all(msg.header(n) for n in REQUIRED_REQUEST_HEADERS):
            return msg
    except (SipParseError, IndexError):
        pass
    return None
