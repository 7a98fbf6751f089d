"""Structured SIP header values: name-addr (From, To, Contact), Via, and SIP URIs.

RFC 3261 section 20 and 25.1; lenient where real peers differ, strict only where a
wrong value would make us answer the wrong peer.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from streamer.errors import SipParseError

DEFAULT_SIP_PORT = 5060


@dataclass(frozen=True, slots=True)
class NameAddr:
    """`"Alice" <sip:alice@example.com>;tag=88sja8x` split into its parts."""

    display: str
    uri: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """The `tag` parameter, "" when absent."""
        return self.params.get("tag", "")


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: `SIP/2.0/UDP host:port;branch=z9hG4bK...;rport`."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def branch(self) -> str:
        """The branch parameter, "" when absent (pre-RFC 3261 peers)."""
        return self.params.get("branch", "")


def _parse_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in text.split(";"):
        key, _, value = item.partition("=")
        key = key.strip().lower()
        if key:
            params[key] = value.strip().strip('"')
    return params


def parse_name_addr(value: str) -> NameAddr:
    """Parse a From, To or Contact value.

    Raises:
        SipParseError: the value has no URI.
    """
    value = value.strip()
    if "<" in value:
        display, _, rest = value.partition("<")
        uri, close, params = rest.partition(">")
        if not close:
            raise SipParseError(f"unclosed '<' in {value[:40]!r}")
        display = display.strip().strip('"').strip()
    else:
        display = ""
        uri, _, params = value.partition(";")
        params = ";" + params if params else ""
    uri = uri.strip()
    if ":" not in uri:
        raise SipParseError(f"no URI in {value[:40]!r}")
    return NameAddr(display, uri, _parse_params(params.lstrip(";")))


def parse_via(value: str) -> Via:
    """Parse one Via value.

    Raises:
        SipParseError: the value is malformed.
    """
    proto, _, rest = value.strip().partition(" ")
    parts = proto.split("/")
    if len(parts) != 3 or parts[0].upper() != "SIP":
        raise SipParseError(f"malformed Via protocol {proto[:30]!r}")
    sent_by, _, params = rest.strip().partition(";")
    host, port = split_hostport(sent_by.strip())
    return Via(parts[2].upper(), host, port, _parse_params(params))


def split_hostport(text: str) -> tuple[str, int | None]:
    """Split `host`, `host:port` or `[v6]:port`.

    Raises:
        SipParseError: empty host or bad port.
    """
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.partition(":")
    if not host or " " in host:
        raise SipParseError(f"malformed host {text[:40]!r}")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SipParseError(f"malformed port {port_text[:10]!r}")
    return host, int(port_text)


def uri_user(uri: str) -> str:
    """The user part of a SIP URI (`sip:+1555@host` -> `+1555`), "" when there is none."""
    _, _, rest = uri.partition(":")
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    if "@" not in rest:
        return ""
    return rest.rsplit("@", 1)[0].split(":", 1)[0]


def uri_hostport(uri: str) -> tuple[str, int | None]:
    """The host and port of a SIP URI (`sip:u@10.0.0.1:5070;transport=tcp`).

    Raises:
        SipParseError: the URI has no usable host.
    """
    _, _, rest = uri.partition(":")
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    return split_hostport(rest.rsplit("@", 1)[-1])


def is_ip_address(host: str) -> bool:
    """True when `host` is an IPv4 or IPv6 literal."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
