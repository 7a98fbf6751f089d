"""Jitter buffer: reorder, loss, late, duplicates, wrap-around, SSRC change, restarts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.rtp import MAX_DROPOUT, JitterBuffer, RtpPacket

pytestmark = pytest.mark.unit


def pkt(seq: int, ssrc: int = 1) -> RtpPacket:
    return RtpPacket(
        payload_type=0,
        sequence_number=seq % 65536,
        timestamp=(seq * 160) % 2**32,
        ssrc=ssrc,
        payload=b"\xff" * 160,
    )


def seqs(packets: list[RtpPacket]) -> list[int]:
    return [p.sequence_number for p in packets]


def feed(jb: JitterBuffer, order: list[int], ssrc: int = 1) -> list[int]:
    out: list[int] = []
    for s in order:
        out += seqs(jb.push(pkt(s, ssrc)))
    return out


def test_in_order_packets_are_released_at_once() -> None:
    jb = JitterBuffer(capacity=16, loss_after=4)
    for s in range(10, 20):
        assert seqs(jb.push(pkt(s))) == [s]
    assert jb.waiting == 0
    assert (jb.stats.received, jb.stats.lost, jb.stats.reordered) == (10, 0, 0)


def test_reordered_packet_is_put_back_in_place() -> None:
    jb = JitterBuffer(capacity=16, loss_after=4)
    assert seqs(jb.push(pkt(1))) == [1]
    assert seqs(jb.push(pkt(3))) == []
    assert seqs(jb.push(pkt(4))) == []
    assert seqs(jb.push(pkt(2))) == [2, 3, 4]
    assert jb.stats.reordered == 1 and jb.stats.lost == 0


def test_missing_packet_is_lost_once_loss_after_packets_wait() -> None:
    jb = JitterBuffer(capacity=16, loss_after=3)
    jb.push(pkt(1))
    assert feed(jb, [3, 4]) == []
    assert jb.waiting == 2
    assert seqs(jb.push(pkt(5))) == [3, 4, 5]
    assert jb.stats.lost == 1
    # The lost packet shows up after all: it is late and dropped.
    assert jb.push(pkt(2)) == []
    assert jb.stats.late == 1


def test_burst_loss_counts_every_missing_packet() -> None:
    jb = JitterBuffer(capacity=16, loss_after=2)
    jb.push(pkt(100))
    assert feed(jb, [104, 105]) == [104, 105]
    assert jb.stats.lost == 3


def test_duplicates_of_waiting_and_played_packets() -> None:
    jb = JitterBuffer(capacity=16, loss_after=4)
    feed(jb, [1, 2, 4])
    assert jb.push(pkt(4)) == []  # waiting
    assert jb.push(pkt(2)) == []  # played
    assert jb.stats.duplicate == 2
    assert feed(jb, [3]) == [3, 4]


def test_sequence_numbers_wrap_around() -> None:
    jb = JitterBuffer(capacity=16, loss_after=4)
    assert feed(jb, [65533, 65534, 65535, 0, 1]) == [65533, 65534, 65535, 0, 1]
    jb2 = JitterBuffer(capacity=16, loss_after=4)
    assert feed(jb2, [65534, 0, 65535, 1]) == [65534, 65535, 0, 1]
    assert jb2.stats.lost == 0 and jb2.stats.reordered == 1


def test_packet_beyond_capacity_releases_waiting_and_counts_loss() -> None:
    jb = JitterBuffer(capacity=8, loss_after=7)
    jb.push(pkt(0))
    assert feed(jb, [2, 3]) == []
    # 20 is 8 or more ahead of the head (1): the head moves to 13 to make room.
    assert seqs(jb.push(pkt(20))) == [2, 3]
    assert jb.waiting == 1
    assert jb.stats.lost == 1 + 9  # 1, then 4..12
    assert seqs(jb.flush()) == [20]
    assert jb.stats.lost == 1 + 9 + 7  # 13..19


def test_waiting_never_exceeds_capacity() -> None:
    jb = JitterBuffer(capacity=4, loss_after=10)  # clamped to capacity - 1
    assert jb.loss_after == 3
    jb.push(pkt(0))
    for s in range(2, 200):
        jb.push(pkt(s))
        assert jb.waiting < jb.capacity


def test_ssrc_change_releases_waiting_and_resets() -> None:
    jb = JitterBuffer(capacity=16, loss_after=4)
    feed(jb, [10, 12, 13])
    out = seqs(jb.push(pkt(5000, ssrc=2)))
    assert out == [12, 13, 5000]
    assert jb.stats.resets == 1 and jb.stats.lost == 1
    assert feed(jb, [5001, 5002], ssrc=2) == [5001, 5002]


def test_one_wild_jump_is_dropped_but_a_restart_resets() -> None:
    jb = JitterBuffer(capacity=16, loss_after=4)
    feed(jb, [1, 2, 3])
    assert jb.push(pkt(3 + MAX_DROPOUT + 10)) == []  # a stray packet
    assert jb.stats.late == 1
    assert seqs(jb.push(pkt(4))) == [4]
    # Two sequential packets far away: the sender restarted its numbering.
    assert feed(jb, [30000, 30001, 30002]) == [30001, 30002]
    assert jb.stats.resets == 1
    assert jb.stats.lost == 0


def test_far_behind_restart_is_detected_too() -> None:
    jb = JitterBuffer(capacity=16, loss_after=4)
    feed(jb, list(range(5000, 5010)))
    assert feed(jb, [7, 8, 9]) == [8, 9]
    assert jb.stats.resets == 1


def test_slightly_old_packet_is_late_not_restart() -> None:
    jb = JitterBuffer(capacity=16, loss_after=4)
    feed(jb, list(range(100, 150)))
    assert feed(jb, [90, 91]) == []
    assert jb.stats.late == 2 and jb.stats.resets == 0


def test_capacity_must_hold_two_packets() -> None:
    with pytest.raises(ValueError, match="capacity 1"):
        JitterBuffer(capacity=1)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=120),
    st.integers(0, 65535),
    st.sets(st.integers(0, 119)),
    st.sets(st.integers(0, 119)),
)
def test_output_is_ordered_and_accounts_for_every_packet(
    jitter: list[int], start: int, dropped: set[int], duplicated: set[int]
) -> None:
    # Sender order: packet i is sent at time i + jitter[i]; some lost, some sent twice.
    n = len(jitter)
    sent = sorted(
        [(i + jitter[i], i) for i in range(n) if i not in dropped]
        + [(i + jitter[i] + 1, i) for i in range(n) if i in duplicated and i not in dropped]
    )
    jb = JitterBuffer(capacity=8, loss_after=3)
    out = [] if not sent else feed(jb, [(start + i) % 65536 for _, i in sent])
    out += seqs(jb.flush())
    indices = [(s - start) % 65536 for s in out]
    assert indices == sorted(set(indices))  # in order, each once
    st_ = jb.stats
    assert len(out) + st_.late + st_.duplicate == len(sent)
    if indices:  # every sequence number in the played span is played or lost
        assert len(out) + st_.lost == indices[-1] - indices[0] + 1


def test_straggler_of_the_old_ssrc_is_late_but_a_return_to_it_switches_back() -> None:
    jb = JitterBuffer(capacity=16, loss_after=4)
    assert feed(jb, [1, 2, 3], ssrc=0xA) == [1, 2, 3]
    assert feed(jb, [500, 501], ssrc=0xB) == [500, 501]
    assert jb.push(pkt(4, ssrc=0xA)) == []  # overtaken by the new stream
    assert jb.stats.late == 1 and jb.stats.resets == 1
    assert feed(jb, [502], ssrc=0xB) == [502]
    # The old source really is back: two sequential packets switch to it.
    assert feed(jb, [10, 11, 12], ssrc=0xA) == [11, 12]
    assert jb.stats.resets == 2
