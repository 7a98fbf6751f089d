"""In-dialog behaviour with real sipp peers: re-INVITE hold/unhold, and a caller that never ACKs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import sipp_scenarios as scen
from tests.integration.sip_harness import run_sipp, running_service, wait_for, write_ulaw_wav

pytestmark = pytest.mark.integration


def _reinvite(cseq: int, direction: str) -> str:
    return f"""  <send retrans="500">
    <![CDATA[
      INVITE sip:+15551230000@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Alice Tester" <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=alice 53655765 {cseq} IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [rtpstream_audio_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a={direction}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send>
    <![CDATA[
      ACK sip:+15551230000@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Alice Tester" <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""


def _hold_scenario(wav: str) -> str:
    """Talk, hold (no RTP) longer than the RTP timeout, unhold and talk again, BYE."""
    plain = scen.plain_call(wav, 1500)
    talk = f'  <nop><action><exec rtp_stream="{wav},-1,0"/></action></nop>\n'
    pause = '  <nop><action><exec rtp_stream="pause"/></action></nop>\n'
    resume = '  <nop><action><exec rtp_stream="resume"/></action></nop>\n'
    head, bye = plain.split('  <send retrans="500">\n    <![CDATA[\n      BYE', 1)
    assert talk in head
    return (
        head
        + pause
        + _reinvite(3, "sendonly")
        + '  <pause milliseconds="2500"/>\n'
        + _reinvite(4, "sendrecv")
        + resume
        + '  <pause milliseconds="1500"/>\n'
        + '  <send retrans="500">\n    <![CDATA[\n      BYE'
        + bye.replace("CSeq: 2 BYE", "CSeq: 5 BYE")
    )


async def test_hold_suspends_the_rtp_timeout_and_unhold_resumes_audio(tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    write_ulaw_wav(wav, 3.0)
    async with running_service(rtp_timeout_s=1.0) as svc:
        code, errors = await run_sipp(_hold_scenario(str(wav)), tmp_path, svc.port)
        assert code == 0, errors
        (call_id,) = svc.sink.calls
        await wait_for(lambda: call_id in svc.sink.closed)
        assert svc.sink.closed[call_id] == "bye"  # not "rtp-timeout" during the hold
        frames = svc.sink.frames_of(call_id, "caller")
        assert len(frames) >= 100  # audio before the hold and after the unhold
        assert svc.counter("clonewatch_sip_responses_total", method="INVITE", code="200") == 3
        assert svc.calls.pool.in_use == frozenset()


NO_ACK = (
    scen._HEAD.format(name="no-ack")
    + scen._invite(scen._PLAIN_SDP.format(port="[media_port]"))
    + scen._ANSWERED
    # No ACK: the server retransmits its 200, then gives up and hangs up with BYE.
    + '  <recv request="BYE" timeout="15000"/>\n'
    + """  <send>
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
</scenario>
"""
)


async def test_unacknowledged_200_is_retransmitted_then_the_call_is_ended(tmp_path: Path) -> None:
    messages = tmp_path / "messages.log"
    async with running_service(t1_s=0.05) as svc:
        code, errors = await run_sipp(
            NO_ACK, tmp_path, svc.port, "-trace_msg", "-message_file", str(messages)
        )
        assert code == 0, errors
        (call_id,) = svc.sink.calls
        await wait_for(lambda: call_id in svc.sink.closed)
        assert svc.sink.closed[call_id] == "error"
        # 64*T1 = 3.2 s with T1 doubling to T2: several retransmissions before giving up.
        received = messages.read_text().split("message received")[1:]
        received_200 = sum(
            1 for m in received if "SIP/2.0 200 OK" in m.split("-----")[0] and "CSeq: 1 INVITE" in m
        )
        assert received_200 >= 4
        assert svc.calls.active_calls == 0
        assert svc.server.dialogs == {}
