"""SIPREC re-INVITE with sipp: updated metadata renames and re-associates, new SDP moves media."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from alerts.types import ParticipantInfo
from tests.fakes.audio import speech_like
from tests.fakes.sinks import FakeFrameSink
from tests.integration import sipp_scenarios as scen
from tests.integration.sip_harness import (
    rtp_packets,
    run_sipp,
    running_service,
    send_rtp,
    silence_check,
    udp_socket,
    wait_for,
)
from tests.integration.test_sip_sipp import METADATA, assert_released

pytestmark = pytest.mark.integration

# Alice is renamed, and stream st2 (label 97) is now sent by a new participant, Carol.
METADATA_V2 = (
    METADATA.replace("Alice Caller", "Alice Renamed")
    .replace(
        '<participant participant_id="pB">',
        '<participant participant_id="pC"><nameID aor="sip:carol@example.com">'
        "<name>Carol</name></nameID></participant>\n  "
        '<participant participant_id="pB">',
    )
    .replace(
        '<participantstreamassoc participant_id="pB"><send>st2</send>',
        '<participantstreamassoc participant_id="pC"><send>st2</send>',
    )
)
SILENT_ULAW = bytes([0xFF]) * 160


@dataclass
class HistorySink(FakeFrameSink):
    """A FakeFrameSink that also keeps every `add_participant`, in order."""

    added: list[ParticipantInfo] = field(default_factory=list)

    def add_participant(self, participant: ParticipantInfo) -> None:
        self.added.append(participant)
        super().add_participant(participant)


def silent_packets(packets: list[bytes]) -> list[bytes]:
    """The same RTP headers with a silent mu-law payload (tells old-port audio apart)."""
    return [p[:12] + SILENT_ULAW for p in packets]


async def test_siprec_reinvite_applies_metadata_and_moves_media(tmp_path: Path) -> None:
    old = [udp_socket(), udp_socket()]
    moved = udp_socket()
    first_ports = (old[0].getsockname()[1], old[1].getsockname()[1])
    second_ports = (moved.getsockname()[1], first_ports[1])  # stream 96 moves, 97 stays
    sink = HistorySink()
    async with running_service(sink=sink) as svc:

        async def talk() -> dict[str, int]:
            await wait_for(lambda: len(sink.participants) == 2)
            (call_id,) = sink.calls
            ours = svc.calls.participants(call_id)
            stream96 = rtp_packets(111, 0, 2.0, seed=1)
            stream97 = rtp_packets(222, 8, 2.0, seed=2)
            await asyncio.gather(
                send_rtp(old[0], ours["96"], stream96[:50]),
                send_rtp(old[1], ours["97"], stream97[:50]),
            )
            # the re-INVITE's media is applied before its last participant is relabelled
            await wait_for(lambda: sink.participants[(call_id, "97")].label == "Carol")
            await asyncio.gather(
                send_rtp(moved, ours["96"], stream96[50:]),
                send_rtp(old[0], ours["96"], silent_packets(stream96[50:])),
                send_rtp(old[1], ours["97"], stream97[50:]),
            )
            return ours

        talker = asyncio.create_task(talk())
        scenario = scen.siprec_reinvite_call(
            (first_ports, METADATA), (second_ports, METADATA_V2), 2000
        )
        code, errors = await run_sipp(scenario, tmp_path, svc.port)
        ours = await talker
        for sock in [*old, moved]:
            sock.close()
        assert code == 0, errors
        (call_id,) = sink.calls
        labels = [(p.participant_id, p.label) for p in sink.added]
        assert labels == [
            ("96", "Alice Caller"),
            ("97", "sip:bob@example.com"),
            ("96", "Alice Renamed"),
            ("97", "Carol"),
        ]
        await wait_for(lambda: call_id in sink.closed)
        assert sink.closed[call_id] == "bye"
        assert svc.calls.participants(call_id) == {}  # ended
        frames96 = sink.frames_of(call_id, "96")
        loud = [f for f in frames96 if silence_check(f.pcm) > 300]
        sent = speech_like(2.0, 8000, seed=1).reshape(-1, 160)
        sent_loud = np.abs(sent.astype(np.float64)).mean(axis=1) > 300
        first_half, second_half = int(sent_loud[:50].sum()), int(sent_loud[50:].sum())
        assert second_half > 20  # so the check below needs the new port's audio
        # both halves came through (old port, then new), not the old port's silence
        assert len(loud) >= first_half + second_half - 4, (len(loud), first_half, second_half)
        assert len(sink.frames_of(call_id, "97")) >= 85
        dropped = svc.counter("clonewatch_rtp_packets_dropped_total", reason="unknown_source")
        assert dropped == 50  # every old-port packet after the re-INVITE, nothing else
        assert svc.counter("clonewatch_sip_responses_total", method="INVITE", code="200") == 2
        assert_released(svc, list(ours.values()))
