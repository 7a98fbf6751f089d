"""Prometheus metrics, on a registry the composition root creates (never the global one).

Stages receive the one `Metrics` object and observe through it; names follow Prometheus
conventions (base units, `_total`, `_seconds`) and every label set is bounded: no call id,
participant id or address is ever a label.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

NS = "clonewatch"
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
INFERENCE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
JITTER_BUCKETS_S = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


class Metrics:
    """Every metric clonewatch exposes, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.calls_active = Gauge(
            f"{NS}_calls_active", "Calls now monitored", ["ingress"], registry=r
        )
        self.calls_total = Counter(f"{NS}_calls_total", "Calls started", ["ingress"], registry=r)
        self.calls_rejected_total = Counter(
            f"{NS}_calls_rejected_total", "Calls refused", ["ingress", "reason"], registry=r
        )
        self.participants_active = Gauge(
            f"{NS}_participants_active", "Participants now scored", ["ingress"], registry=r
        )
        self.participants_total = Counter(
            f"{NS}_participants_total", "Participants joined", ["ingress"], registry=r
        )
        self.sip_requests_total = Counter(
            f"{NS}_sip_requests_total", "SIP requests received", ["method"], registry=r
        )
        self.sip_responses_total = Counter(
            f"{NS}_sip_responses_total", "SIP responses sent", ["method", "code"], registry=r
        )
        self.decode_errors_total = Counter(
            f"{NS}_decode_errors_total",
            "Malformed input skipped (SIP, SDP, RTP, audio)",
            ["stage"],
            registry=r,
        )
        self.rtp_packets_total = Counter(
            f"{NS}_rtp_packets_total", "RTP packets received", ["ingress"], registry=r
        )
        self.rtp_packets_lost_total = Counter(
            f"{NS}_rtp_packets_lost_total", "RTP packets never received", ["ingress"], registry=r
        )
        self.rtp_packets_dropped_total = Counter(
            f"{NS}_rtp_packets_dropped_total",
            "RTP packets received but not played: late, duplicate, unknown source, "
            "unsupported payload",
            ["reason"],
            registry=r,
        )
        self.rtp_packets_reordered_total = Counter(
            f"{NS}_rtp_packets_reordered_total", "RTP packets that arrived out of order", registry=r
        )
        self.rtp_jitter_seconds = Histogram(
            f"{NS}_rtp_jitter_seconds",
            "RFC 3550 interarrival jitter per stream, sampled each second",
            buckets=JITTER_BUCKETS_S,
            registry=r,
        )
        self.audio_seconds_total = Counter(
            f"{NS}_audio_seconds_total", "Participant audio analysed", ["ingress"], registry=r
        )
        self.speech_seconds_total = Counter(
            f"{NS}_speech_seconds_total",
            "Participant audio marked as speech",
            ["ingress"],
            registry=r,
        )
        self.windows_scored_total = Counter(
            f"{NS}_windows_scored_total", "Speech windows scored by the model", registry=r
        )
        self.dropped_total = Counter(
            f"{NS}_dropped_total",
            "Frames or windows dropped under overload",
            ["stage", "reason"],
            registry=r,
        )
        self.inference_seconds = Histogram(
            f"{NS}_inference_seconds",
            "Wall time of one model run (one batch)",
            buckets=INFERENCE_BUCKETS_S,
            registry=r,
        )
        self.inference_batch_size = Histogram(
            f"{NS}_inference_batch_size", "Windows per model run", buckets=BATCH_BUCKETS, registry=r
        )
        self.inference_slow_total = Counter(
            f"{NS}_inference_slow_total", "Model runs slower than the audio they scored", registry=r
        )
        self.queue_depth = Gauge(
            f"{NS}_queue_depth", "Items waiting in a queue", ["queue"], registry=r
        )
        self.score_latency_seconds = Histogram(
            f"{NS}_score_latency_seconds",
            "From the arrival of a window's newest packet to its score",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.verdicts_total = Counter(
            f"{NS}_verdicts_total", "Verdict changes, by the new verdict", ["verdict"], registry=r
        )
        self.alerts_total = Counter(
            f"{NS}_alerts_total", "Alert events, by kind", ["kind"], registry=r
        )
        self.sink_deliveries_total = Counter(
            f"{NS}_sink_deliveries_total", "Events delivered, by sink", ["sink"], registry=r
        )
        self.sink_failures_total = Counter(
            f"{NS}_sink_failures_total", "Failed delivery attempts, by sink", ["sink"], registry=r
        )
        self.model_info = Info(f"{NS}_model", "The loaded detector model", registry=r)
