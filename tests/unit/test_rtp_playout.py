"""RTP playout: packets in, continuous 20 ms frames out, placed by RTP timestamp."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from streamer.resample import FrameAssembler
from streamer.rtp import JitterBuffer, RtpPacket
from streamer.rtp_playout import RtpPlayout
from tests.fakes.sinks import FakeFrameSink
from tests.rtp_packets import PCMA, packetize, sine, snr_db, upsampled_reference

pytestmark = pytest.mark.unit


def make() -> tuple[RtpPlayout, FakeFrameSink]:
    sink = FakeFrameSink()
    return RtpPlayout(FrameAssembler("c", "p"), sink, JitterBuffer(16, 4)), sink


def run(playout: RtpPlayout, packets: list[RtpPacket]) -> None:
    for i, p in enumerate(packets):
        playout.receive(p, arrival_s=100.0 + i * 0.02)
    playout.flush(arrival_s=200.0)


def audio(sink: FakeFrameSink) -> npt.NDArray[np.int16]:
    return np.frombuffer(b"".join(f.pcm for f in sink.frames), dtype="<i2")


def assert_continuous(sink: FakeFrameSink) -> None:
    assert [f.seq for f in sink.frames] == list(range(len(sink.frames)))
    assert [f.start_s for f in sink.frames] == pytest.approx(
        [i * 0.02 for i in range(len(sink.frames))]
    )


@pytest.mark.parametrize("ptime_ms", [10, 20, 30])
@pytest.mark.parametrize("payload_type", [0, PCMA])
def test_packets_become_continuous_frames_of_the_same_audio(
    ptime_ms: int, payload_type: int
) -> None:
    playout, sink = make()
    pcm = sine(1.2)
    run(playout, packetize(pcm, ptime_ms=ptime_ms, payload_type=payload_type))
    assert len(sink.frames) == 60
    assert_continuous(sink)
    assert snr_db(audio(sink)[100:-100], upsampled_reference(pcm)[100:-100]) > 25


def test_lost_packet_becomes_silence_in_its_place() -> None:
    playout, sink = make()
    pcm = sine(1.0)
    packets = packetize(pcm)
    run(playout, packets[:10] + packets[11:])
    assert len(sink.frames) == 50
    assert playout.stats.lost == 1
    out = audio(sink).astype(np.int64)
    hole = out[10 * 320 + 40 : 11 * 320 - 40]  # packet 10 = 0.20..0.22 s (resampler edges)
    assert np.abs(hole).max() < 3000
    assert np.abs(out[12 * 320 : 13 * 320]).max() > 9000


def test_reordering_is_undone() -> None:
    playout, sink = make()
    pcm = sine(1.0)
    packets = packetize(pcm)
    for i in range(0, 48, 4):
        packets[i + 1], packets[i + 2] = packets[i + 2], packets[i + 1]
    run(playout, packets)
    assert playout.stats.reordered == 12 and playout.stats.lost == 0
    assert snr_db(audio(sink)[100:-100], upsampled_reference(pcm)[100:-100]) > 25


def test_comfort_noise_and_dtmf_are_ignored_and_their_time_is_silence() -> None:
    playout, sink = make()
    playout.set_payload_types({0: "PCMU", 13: "CN", 101: "TELEPHONE-EVENT"})
    packets = packetize(sine(1.0))
    for i in (20, 21):  # comfort noise replaces two audio packets
        packets[i] = RtpPacket(13, packets[i].sequence_number, packets[i].timestamp, 1, b"\x40")
    packets[30] = RtpPacket(
        101,
        packets[30].sequence_number,
        packets[30].timestamp,
        packets[30].ssrc,
        b"\x05\x0a\x00\xa0",
    )
    run(playout, packets)
    assert playout.ignored == 3 and playout.unsupported == 0
    assert len(sink.frames) == 50
    assert np.abs(np.frombuffer(sink.frames[30].pcm, "<i2")[40:-40]).max() < 200  # filter ringing
    assert np.abs(np.frombuffer(sink.frames[29].pcm, "<i2")).max() > 9000


def test_unoffered_payload_type_is_counted_not_played() -> None:
    playout, sink = make()
    playout.set_payload_types({8: "PCMA"})
    run(playout, packetize(sine(0.2)))  # PCMU, not offered
    assert playout.unsupported == 10
    assert sink.frames == []


def test_ssrc_change_continues_media_time_without_a_gap() -> None:
    playout, sink = make()
    first = packetize(sine(0.4), ssrc=1, first_seq=100, first_ts=1000)
    second = packetize(sine(0.4), ssrc=2, first_seq=60000, first_ts=99_999_999)
    run(playout, first + second)
    assert len(sink.frames) == 40
    assert_continuous(sink)
    assert playout.stats.resets == 1


def test_timestamp_and_sequence_wrap_around() -> None:
    playout, sink = make()
    pcm = sine(1.0)
    run(playout, packetize(pcm, first_seq=65530, first_ts=2**32 - 800))
    assert len(sink.frames) == 50 and playout.stats.lost == 0
    assert snr_db(audio(sink)[100:-100], upsampled_reference(pcm)[100:-100]) > 25


def test_silence_suppression_gap_is_filled_but_a_huge_jump_is_not() -> None:
    playout, sink = make()
    packets = packetize(sine(0.4))
    later = [
        RtpPacket(0, p.sequence_number + 20, p.timestamp + 8000 + 3200, p.ssrc, p.payload)
        for p in packets
    ]  # 1 s of no packets, sequence continuous (RFC 3551 §4.1 talkspurts)
    jump = RtpPacket(
        0,
        later[-1].sequence_number + 1,
        later[-1].timestamp + 8000 * 3600,
        0x1234ABCD,
        b"\xff" * 160,
    )
    run(playout, packets + later + [jump])
    assert len(sink.frames) == 20 + 50 + 20 + 1
    assert playout.discontinuities == 1


def test_reanchor_skips_the_hold_gap() -> None:
    playout, sink = make()
    packets = packetize(sine(1.0))
    for p in packets[:10]:
        playout.receive(p, 1.0)
    playout.reanchor()
    for p in packets[30:]:
        playout.receive(p, 2.0)
    playout.flush(3.0)
    assert len(sink.frames) == 30
    assert playout.stats.lost == 20  # sequence numbers skipped are still counted


def test_jitter_estimate_follows_arrival_variation() -> None:
    steady, _ = make()
    noisy, _ = make()
    rng = np.random.default_rng(0)
    for i, p in enumerate(packetize(sine(1.0))):
        steady.receive(p, 10.0 + i * 0.02)
        noisy.receive(p, 10.0 + i * 0.02 + rng.uniform(0, 0.03))
    assert steady.jitter_s < 1e-6
    assert 0.003 < noisy.jitter_s < 0.03


def test_no_gap_is_filled_while_held() -> None:
    playout, sink = make()
    packets = packetize(sine(1.0))
    playout.held = True  # music on hold with silence suppression: only 2 of every 5 sent
    for i, p in enumerate(packets):
        if i % 5 < 2:
            playout.receive(p, 1.0)
    playout.flush(2.0)
    assert len(sink.frames) == 20
