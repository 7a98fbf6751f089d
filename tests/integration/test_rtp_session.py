"""RTP over real UDP sockets on 127.0.0.1: a sender with loss, reorder and bad packets."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np
import pytest

from alerts.metrics import Metrics
from alerts.types import Ingress
from streamer.errors import IngressError
from streamer.rtp import RtpPacket
from streamer.rtp_session import RtpPortPool, RtpStream, open_rtp_stream
from tests.fakes.sinks import FakeFrameSink
from tests.rtp_packets import PCMA, packetize, sine, snr_db, upsampled_reference

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
PAYLOAD_TYPES = {0: "PCMU", 8: "PCMA", 13: "CN", 101: "TELEPHONE-EVENT"}
# A per-process port range, so parallel test runs rarely collide (the pool skips busy ports).
BASE_PORT = 30000 + (os.getpid() % 1000) * 24


async def until(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        yield s


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def pool() -> RtpPortPool:
    return RtpPortPool(BASE_PORT, BASE_PORT + 19)


@pytest.fixture
async def sink_stream(
    pool: RtpPortPool, metrics: Metrics
) -> AsyncIterator[tuple[FakeFrameSink, RtpStream]]:
    sink = FakeFrameSink()
    stream = await _open(pool, metrics, sink)
    yield sink, stream
    await stream.aclose()


async def _open(
    pool: RtpPortPool,
    metrics: Metrics,
    sink: FakeFrameSink,
    timeout_s: float = 30.0,
    on_timeout: Callable[[], None] = lambda: None,
) -> RtpStream:
    return await open_rtp_stream(
        pool,
        HOST,
        call_id="call-1",
        participant_id="caller",
        sink=sink,
        metrics=metrics,
        ingress=Ingress.SIP,
        jitter_packets=16,
        timeout_s=timeout_s,
        on_timeout=on_timeout,
    )


async def send(sock: socket.socket, stream: RtpStream, datagrams: list[bytes]) -> None:
    """Send in small bursts and let the loop read them, so no socket buffer overflows."""
    target = _handled(stream)
    for i in range(0, len(datagrams), 10):
        for d in datagrams[i : i + 10]:
            sock.sendto(d, (HOST, stream.port))
        target += len(datagrams[i : i + 10])
        await until(lambda: _handled(stream) >= target)  # noqa: B023 (awaited in the loop)


def _handled(stream: RtpStream) -> int:
    s = stream.stats
    return s.received + s.unknown_source + s.decode_errors + s.rtcp


def _audio(frames: list) -> np.ndarray:  # type: ignore[type-arg]
    return np.frombuffer(b"".join(f.pcm for f in frames), dtype="<i2")


async def test_g711_stream_with_reorder_duplicate_gap_and_ssrc_change(
    sink_stream: tuple[FakeFrameSink, RtpStream], sender: socket.socket, metrics: Metrics
) -> None:
    sink, stream = sink_stream
    stream.set_remote(sender.getsockname(), PAYLOAD_TYPES)
    first_pcm, second_pcm = sine(2.0), sine(1.0, freq_hz=300)
    first = packetize(first_pcm, ssrc=0x1111, first_seq=65500, first_ts=2**32 - 4000)
    second = packetize(second_pcm, payload_type=PCMA, ssrc=0x2222, first_seq=7, first_ts=5)
    order = list(first)
    order[5], order[6] = order[6], order[5]  # reordered
    order.insert(21, first[20])  # duplicate
    del order[order.index(first[40])]  # lost
    started = time.monotonic()
    await send(sender, stream, [p.to_bytes() for p in order + second])
    await until(lambda: len(sink.frames) >= 140)  # all but what the resampler still holds
    await stream.aclose()

    frames = sink.frames
    assert len(frames) == 150  # 2 s + 1 s: the lost packet is silence, the SSRC change is not
    assert [f.seq for f in frames] == list(range(150))
    assert [f.start_s for f in frames] == pytest.approx([i * 0.02 for i in range(150)])
    assert all(started <= f.arrival_s <= time.monotonic() for f in frames)
    assert {(f.call_id, f.participant_id) for f in frames} == {("call-1", "caller")}
    audio = _audio(frames)
    ref = upsampled_reference(first_pcm)
    assert snr_db(audio[200:12000], ref[200:12000]) > 25  # before the hole at 0.80 s
    assert np.abs(audio[40 * 320 + 40 : 41 * 320 - 40]).max() < 3000  # the hole
    assert snr_db(audio[13500:31800], ref[13500:31800]) > 25
    ref2 = upsampled_reference(second_pcm, freq_hz=300)
    assert snr_db(audio[32200:-200], ref2[200:-200]) > 25

    stats = stream.stats
    assert (stats.received, stats.lost, stats.duplicate) == (150, 1, 1)
    assert (stats.reordered, stats.late, stats.resets) == (1, 0, 1)
    assert stats.jitter_s < 0.5
    value = metrics.registry.get_sample_value
    assert value("clonewatch_rtp_packets_total", {"ingress": "sip"}) == 150
    assert value("clonewatch_rtp_packets_lost_total", {"ingress": "sip"}) == 1
    assert value("clonewatch_rtp_packets_dropped_total", {"reason": "duplicate"}) == 1
    assert value("clonewatch_rtp_packets_reordered_total") == 1


async def test_packets_from_an_unexpected_source_are_dropped(
    sink_stream: tuple[FakeFrameSink, RtpStream], sender: socket.socket, metrics: Metrics
) -> None:
    sink, stream = sink_stream
    stream.set_remote(sender.getsockname(), PAYLOAD_TYPES)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as intruder:
        intruder.bind((HOST, 0))
        await send(intruder, stream, [p.to_bytes() for p in packetize(sine(0.2), ssrc=9)])
    await send(sender, stream, [p.to_bytes() for p in packetize(sine(0.4), ssrc=1)])
    await stream.aclose()
    assert stream.stats.unknown_source == 10
    assert stream.stats.received == 20
    assert len(sink.frames) == 20
    assert (
        metrics.registry.get_sample_value(
            "clonewatch_rtp_packets_dropped_total", {"reason": "unknown_source"}
        )
        == 10
    )


async def test_latches_on_the_first_source(
    sink_stream: tuple[FakeFrameSink, RtpStream], sender: socket.socket
) -> None:
    sink, stream = sink_stream
    stream.set_remote(None, PAYLOAD_TYPES)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as noise:
        noise.bind((HOST, 0))
        await send(noise, stream, [b"\x00garbage", bytes.fromhex("80c90001deadbeef")])
    await send(sender, stream, [p.to_bytes() for p in packetize(sine(0.2))])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind((HOST, 0))
        await send(other, stream, [p.to_bytes() for p in packetize(sine(0.2), ssrc=5)])
    stream.set_remote(None, PAYLOAD_TYPES)  # a re-INVITE without an address keeps the latch
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind((HOST, 0))
        await send(other, stream, [packetize(sine(0.02), ssrc=5)[0].to_bytes()])
    await send(sender, stream, [packetize(sine(0.04), first_seq=1010)[0].to_bytes()])
    await stream.aclose()
    assert len(sink.frames) == 11
    assert (stream.stats.received, stream.stats.unknown_source) == (11, 11)
    assert (stream.stats.decode_errors, stream.stats.rtcp) == (1, 1)  # did not latch


async def test_random_bytes_and_rtcp_do_not_stop_the_stream(
    sink_stream: tuple[FakeFrameSink, RtpStream], sender: socket.socket, metrics: Metrics
) -> None:
    sink, stream = sink_stream
    stream.set_remote(sender.getsockname(), PAYLOAD_TYPES)
    rng = np.random.default_rng(7)
    garbage = [b"", b"\x80", b"\x00" * 12, bytes.fromhex("9f00000100000000000000000000")]
    for _ in range(30):
        data = bytearray(rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes())
        data[0] &= 0x7F  # never version 2
        if len(data) > 1:
            data[1] &= 0x7F  # never an RTCP packet type
        garbage.append(bytes(data))
    rtcp_rr = bytes.fromhex("80c90001") + b"\x00\x00\x00\x01"
    cn = RtpPacket(13, 1010, 160_000 + 1600, 0x1234ABCD, b"\x40").to_bytes()
    good = [p.to_bytes() for p in packetize(sine(0.4))]
    await send(sender, stream, garbage + [rtcp_rr] + good[:10] + [cn] + good[11:])
    await stream.aclose()
    stats = stream.stats
    assert stats.decode_errors == len(garbage)
    assert (stats.rtcp, stats.ignored, stats.received) == (1, 1, 20)
    assert len(sink.frames) == 20
    assert metrics.registry.get_sample_value(
        "clonewatch_decode_errors_total", {"stage": "rtp"}
    ) == len(garbage)


async def test_timeout_fires_once_per_silence_but_not_while_held(
    pool: RtpPortPool, metrics: Metrics, sender: socket.socket
) -> None:
    fired: list[float] = []
    event = asyncio.Event()
    second = asyncio.Event()

    def on_timeout() -> None:
        fired.append(time.monotonic())
        (second if event.is_set() else event).set()

    stream = await _open(pool, metrics, FakeFrameSink(), timeout_s=0.2, on_timeout=on_timeout)
    try:
        stream.set_hold(True)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(event.wait()), 0.5)
        stream.set_hold(False)
        resumed = time.monotonic()
        await send(sender, stream, [p.to_bytes() for p in packetize(sine(0.1))])
        last_packet = time.monotonic()
        await asyncio.wait_for(event.wait(), 2.0)
        assert fired[0] - resumed >= 0.2 and fired[0] - last_packet >= 0.15
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(second.wait()), 0.5)
        assert len(fired) == 1
        # RTP comes back and stops again: a new silence, a new timeout.
        await send(sender, stream, [packetize(sine(0.02), first_seq=1005)[0].to_bytes()])
        await asyncio.wait_for(second.wait(), 2.0)
        assert len(fired) == 2
    finally:
        await stream.aclose()


async def test_aclose_releases_the_port(
    pool: RtpPortPool, metrics: Metrics, sender: socket.socket
) -> None:
    sink = FakeFrameSink()
    stream = await _open(pool, metrics, sink)
    assert stream.port % 2 == 0 and BASE_PORT <= stream.port <= BASE_PORT + 19
    assert pool.in_use == {stream.port}
    await send(sender, stream, [p.to_bytes() for p in packetize(sine(0.1))])  # 5 packets
    await stream.aclose()
    await stream.aclose()  # idempotent
    assert len(sink.frames) == 5  # flushed from the jitter buffer and resampler at close
    assert pool.in_use == frozenset()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind((HOST, stream.port))


async def test_busy_port_is_skipped_and_an_exhausted_pool_refuses(metrics: Metrics) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((HOST, 0))
        busy = squatter.getsockname()[1]
        if busy % 2:  # the pool only hands out even ports
            squatter.close()
            squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            squatter.bind((HOST, busy - 1))
            busy -= 1
        with squatter:
            pool = RtpPortPool(busy, busy + 3)  # two even ports: busy, busy + 2
            stream = await _open(pool, metrics, FakeFrameSink())
            try:
                assert stream.port == busy + 2
                with pytest.raises(IngressError, match="no free RTP port"):
                    await _open(pool, metrics, FakeFrameSink())
            finally:
                await stream.aclose()
            assert pool.available == 2
