"""Cheap per-stream RTP counters, reported to Prometheus in batches.

Incrementing a labelled Prometheus counter takes a lock; at thousands of packets a second
that is measurable. Streams count into plain integers instead and `flush` adds the
differences to the (pre-bound) Prometheus children at most once a second and at close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import Counter, Histogram

from alerts.metrics import Metrics
from alerts.types import Ingress
from streamer.rtp import JitterStats
from streamer.rtp_playout import RtpStats

METRICS_FLUSH_S = 1.0


class _Playout(Protocol):
    @property
    def stats(self) -> JitterStats: ...

    @property
    def jitter_s(self) -> float: ...

    ignored: int
    unsupported: int


@dataclass(slots=True)
class _Children:
    """Prometheus children, labelled once per stream."""

    received: Counter
    lost: Counter
    reordered: Counter
    late: Counter
    duplicate: Counter
    unknown_source: Counter
    unsupported: Counter
    ignored: Counter
    decode_errors: Counter
    jitter: Histogram


@dataclass(slots=True)
class RtpCounters:
    """Counts of one stream that the session itself sees, plus the Prometheus flush."""

    children: _Children
    unknown_source: int = 0
    decode_errors: int = 0
    rtcp: int = 0
    flushed_at: float = 0.0
    flush_interval_s: float = METRICS_FLUSH_S
    _reported: dict[str, int] = field(default_factory=dict)

    @classmethod
    def bind(cls, metrics: Metrics, ingress: Ingress) -> RtpCounters:
        """Counters that report to `metrics`, labelled with `ingress` where labelled."""
        dropped = metrics.rtp_packets_dropped_total
        return cls(
            _Children(
                received=metrics.rtp_packets_total.labels(ingress.value),
                lost=metrics.rtp_packets_lost_total.labels(ingress.value),
                reordered=metrics.rtp_packets_reordered_total,
                late=dropped.labels("late"),
                duplicate=dropped.labels("duplicate"),
                unknown_source=dropped.labels("unknown_source"),
                unsupported=dropped.labels("unsupported_payload"),
                ignored=dropped.labels("ignored_payload"),
                decode_errors=metrics.decode_errors_total.labels("rtp"),
                jitter=metrics.rtp_jitter_seconds,
            )
        )

    def snapshot(self, playout: _Playout) -> RtpStats:
        """All counters of the stream now."""
        jitter = playout.stats
        return RtpStats(
            received=jitter.received,
            lost=jitter.lost,
            late=jitter.late,
            duplicate=jitter.duplicate,
            reordered=jitter.reordered,
            unknown_source=self.unknown_source,
            decode_errors=self.decode_errors,
            jitter_s=playout.jitter_s,
            ignored=playout.ignored,
            unsupported=playout.unsupported,
            rtcp=self.rtcp,
            resets=jitter.resets,
        )

    def flush(self, playout: _Playout, now: float) -> None:
        """Add what was counted since the last flush to Prometheus; sample the jitter."""
        self.flushed_at = now
        stats = self.snapshot(playout)
        children = self.children
        for name in (
            "received",
            "lost",
            "reordered",
            "late",
            "duplicate",
            "unknown_source",
            "unsupported",
            "ignored",
            "decode_errors",
        ):
            value = getattr(stats, name)
            delta = value - self._reported.get(name, 0)
            if delta > 0:
                getattr(children, name).inc(delta)
                self._reported[name] = value
        if stats.received:
            children.jitter.observe(stats.jitter_s)
