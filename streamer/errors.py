"""Exceptions of the ingress package; each is raised with the context that caused it."""


class IngressError(Exception):
    """Base class of ingress failures."""


class ConfigError(IngressError):
    """The configuration is unreadable or a value is invalid; the message names the key."""


class SipParseError(IngressError, ValueError):
    """A SIP message is malformed (the message says where)."""


class SdpError(IngressError, ValueError):
    """An SDP body is malformed or offers nothing we accept."""


class NothingToScore(SdpError):
    """Every stream of a well-formed offer is declined by configuration (not bad input)."""


class RtpParseError(IngressError, ValueError):
    """An RTP packet is malformed, e.g. "header 8 < 12 bytes"."""


class AudioFileError(IngressError):
    """A recording or capture cannot be read."""
