"""sipp scenarios (UAC side) used by the SIP integration tests."""

from __future__ import annotations

_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n'
_INVITE_BRANCH = "branch=z9hG4bK-inv-[call_number]-[pid]"  # CANCEL and non-2xx ACK reuse it
_INVITE_HEADERS = """      Via: SIP/2.0/[transport] [local_ip]:[local_port];BRANCH
      From: "Alice Tester" <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:+15551230000@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
""".replace("BRANCH", _INVITE_BRANCH)
_PLAIN_SDP = """      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=alice 53655765 2353687637 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio {port} RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=sendrecv
"""
_ACK = """  <send>
    <![CDATA[
      ACK sip:+15551230000@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Alice Tester" <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""
_BYE = """  <send retrans="500">
    <![CDATA[
      BYE sip:+15551230000@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Alice Tester" <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
"""
_BYE_START = '  <send retrans="500">\n    <![CDATA[\n      BYE'
_ANSWERED = """  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
"""


def _invite(body: str) -> str:
    return (
        '  <send retrans="500">\n    <![CDATA[\n'
        "      INVITE sip:+15551230000@[remote_ip]:[remote_port] SIP/2.0\n"
        + _INVITE_HEADERS
        + body
        + "    ]]>\n  </send>\n"
    )


def plain_call(wav: str, talk_ms: int) -> str:
    """INVITE with PCMU, rtp_stream plays `wav` for `talk_ms`, then BYE."""
    return (
        _HEAD.format(name="plain")
        + _invite(_PLAIN_SDP.format(port="[rtpstream_audio_port]"))
        + _ANSWERED
        + _ACK
        + f'  <nop><action><exec rtp_stream="{wav},-1,0"/></action></nop>\n'
        + f'  <pause milliseconds="{talk_ms}"/>\n'
        + _BYE
        + "</scenario>\n"
    )


def siprec_body(ports: tuple[int, int], metadata: str, version: int = 1) -> str:
    """The multipart/mixed body (SDP + rs-metadata) of a SIPREC INVITE, two sendonly streams."""
    return f"""      Content-Type: multipart/mixed;boundary=foobar
      Require: siprec
      Content-Length: [len]

      --foobar
      Content-Type: application/sdp

      v=0
      o=src 1 {version} IN IP4 [local_ip]
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio {ports[0]} RTP/AVP 0 8
      a=label:96
      a=sendonly
      m=audio {ports[1]} RTP/AVP 8
      a=label:97
      a=sendonly
      --foobar
      Content-Type: application/rs-metadata+xml
      Content-Disposition: recording-session

{metadata}
      --foobar--
"""


def siprec_call(ports: tuple[int, int], metadata: str, talk_ms: int, answer_has: str = "") -> str:
    """A SIPREC INVITE (multipart SDP + metadata) with two labelled sendonly streams.

    With `answer_has`, the scenario fails unless the 200's SDP matches that regexp.
    """
    answered = _ANSWERED
    if answer_has:
        check = (
            '  <recv response="200" rtd="true">\n    <action>\n'
            f'      <ereg regexp="{answer_has}" search_in="body" check_it="true" assign_to="m"/>\n'
            '    </action>\n  </recv>\n  <Reference variables="m"/>\n'
        )
        answered = answered.replace('  <recv response="200" rtd="true"/>\n', check)
    return (
        _HEAD.format(name="siprec")
        + _invite(siprec_body(ports, metadata)).replace(
            "+15551230000@[remote_ip]", "srs@[remote_ip]", 1
        )
        + answered
        + _ACK
        + f'  <pause milliseconds="{talk_ms}"/>\n'
        + _BYE
        + "</scenario>\n"
    )


def in_dialog_invite(cseq: int, body: str) -> str:
    """A re-INVITE (CSeq `cseq`) in the dialog of the last 200, its 200 and the ACK."""
    head = _INVITE_HEADERS.replace("To: <sip:+15551230000@[remote_ip]:[remote_port]>", "[last_To:]")
    head = head.replace("CSeq: 1 INVITE", f"CSeq: {cseq} INVITE").replace(
        _INVITE_BRANCH, "branch=[branch]"
    )
    ack = _ACK.replace("CSeq: 1 ACK", f"CSeq: {cseq} ACK")
    return (
        '  <send retrans="500">\n    <![CDATA[\n'
        "      INVITE sip:srs@[remote_ip]:[remote_port] SIP/2.0\n"
        + head
        + body
        + "    ]]>\n  </send>\n"
        + '  <recv response="100" optional="true"/>\n  <recv response="200"/>\n'
        + ack
    )


def siprec_reinvite_call(
    first: tuple[tuple[int, int], str], second: tuple[tuple[int, int], str], talk_ms: int
) -> str:
    """SIPREC session; after `talk_ms` a re-INVITE with new SDP ports and metadata; BYE later."""
    call = siprec_call(first[0], first[1], talk_ms)
    head, bye = call.split(_BYE_START, 1)
    return (
        head
        + in_dialog_invite(2, siprec_body(second[0], second[1], version=2))
        + f'  <pause milliseconds="{talk_ms}"/>\n'
        + _BYE_START
        + bye.replace("CSeq: 2 BYE", "CSeq: 3 BYE")
    )


def answered_call(body_sdp_port: str = "[media_port]") -> str:
    """INVITE, 200, ACK, then wait for the server's BYE (shutdown) and answer it 200."""
    return (
        _HEAD.format(name="answered")
        + _invite(_PLAIN_SDP.format(port=body_sdp_port))
        + _ANSWERED
        + _ACK
        + _AWAIT_BYE
        + "</scenario>\n"
    )


_AWAIT_BYE = """  <recv request="BYE" timeout="15000"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"""


def siprec_until_bye(ports: tuple[int, int], metadata: str) -> str:
    """A SIPREC session that waits for the server's BYE and answers it 200."""
    call = siprec_call(ports, metadata, 0)
    head = call.split('  <pause milliseconds="0"/>', 1)[0]
    return head + _AWAIT_BYE + "</scenario>\n"


def cancelled_call() -> str:
    """INVITE, wait for 180, CANCEL (same branch), expect 200 then 487, ACK the 487."""
    same_branch = _INVITE_BRANCH
    cancel = f"""  <send>
    <![CDATA[
      CANCEL sip:+15551230000@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];{same_branch}
      From: "Alice Tester" <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:+15551230000@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
  <recv response="487"/>
"""
    ack = _ACK.replace("branch=[branch]", same_branch)
    return (
        _HEAD.format(name="cancel")
        + _invite(_PLAIN_SDP.format(port="[media_port]"))
        + '  <recv response="100" optional="true"/>\n  <recv response="180"/>\n'
        + cancel
        + ack
        + "</scenario>\n"
    )


def silent_call() -> str:
    """Answered, no RTP at all: expects our BYE (RTP timeout) and answers it 200."""
    return answered_call()


def unacknowledged_call() -> str:
    """INVITE and its 200, never ACKed: expects our BYE once we give up, answers it 200."""
    return (
        _HEAD.format(name="no-ack")
        + _invite(_PLAIN_SDP.format(port="[media_port]"))
        + _ANSWERED
        + _AWAIT_BYE
        + "</scenario>\n"
    )


def _direction_sdp(direction: str, version: int) -> str:
    sdp = _PLAIN_SDP.format(port="[rtpstream_audio_port]")
    return sdp.replace("a=sendrecv", f"a={direction}").replace(
        "53655765 2353687637", f"53655765 {version}"
    )


def hold_unhold_call(wav: str, talk_ms: int, hold_ms: int) -> str:
    """Talk, hold (re-INVITE sendonly, RTP paused) for `hold_ms`, unhold, talk again, BYE."""
    head, bye = plain_call(wav, talk_ms).split(_BYE_START, 1)
    return (
        head
        + '  <nop><action><exec rtp_stream="pause"/></action></nop>\n'
        + in_dialog_invite(2, _direction_sdp("sendonly", 2))
        + f'  <pause milliseconds="{hold_ms}"/>\n'
        + in_dialog_invite(3, _direction_sdp("sendrecv", 3))
        + '  <nop><action><exec rtp_stream="resume"/></action></nop>\n'
        + f'  <pause milliseconds="{talk_ms}"/>\n'
        + _BYE_START
        + bye.replace("CSeq: 2 BYE", "CSeq: 4 BYE")
    )


def rejected_call(sdp_media: str) -> str:
    """INVITE with the given m= section(s); expects 488 and ACKs it."""
    body = (
        "      Content-Type: application/sdp\n      Content-Length: [len]\n\n"
        "      v=0\n      o=a 1 1 IN IP4 [local_ip]\n      s=-\n"
        "      c=IN IP4 [media_ip]\n      t=0 0\n" + sdp_media
    )
    ack = _ACK.replace("branch=[branch]", _INVITE_BRANCH)
    return (
        _HEAD.format(name="rejected")
        + _invite(body)
        + '  <recv response="100" optional="true"/>\n  <recv response="488"/>\n'
        + ack
        + "</scenario>\n"
    )
