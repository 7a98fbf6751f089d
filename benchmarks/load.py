"""The whole service under load: N concurrent SIP (or SIPREC) calls over loopback.

For each N the service runs in its own process; generator processes place the calls
(spread over a ramp), stream 20 ms G.711 speech in real time, and hang up together.
Between a warm-up after the ramp and the hang-up, two `/metrics` snapshots give
packets/s, windows/s, the score latency percentiles and the drops; /proc gives the
machine's per-core load and the kernel's UDP buffer drops. N rises until a level falls
behind (see `behind`).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.loadgen import WorkerSpec, worker_main
from benchmarks.service import (
    CpuMeter,
    ServiceProcess,
    delta,
    quantile,
    total,
    udp_drops,
)
from benchmarks.whipgen import WhipSpec, whip_worker_main

LATENCY_BUDGET_S = 1.0  # p99 arrival-to-score beyond the window length
LOSS_TOLERANCE = 0.001  # share of packets that may be lost in the kernel's socket buffers
BACKLOG_TOLERANCE = 0.05  # audio analysed may trail real time this much (1 s reporting steps)
SETTLE_S = 10.0  # how long to wait for calls to end after the hang-up


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """One sweep: call counts, streams per call and timings."""

    counts: tuple[int, ...]
    streams: int = 1
    measure_s: float = 20.0
    warmup_s: float = 4.0
    workers: int = 2
    stop_when_behind: bool = True
    profile_dir: Path | None = None  # py-spy collapsed stacks of the service, per level
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # config overrides
    ingress: str = "sip"  # "sip" (streams 1), "siprec" (streams 2) or "webrtc"
    service_root: Path | None = None  # run the service from another checkout (before/after)


def _workers(
    plan: LoadPlan, n: int, service: ServiceProcess, speech: Path
) -> tuple[list[Any], Any, float, float]:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    ramp_s = max(2.0, n / (5.0 if plan.ingress == "webrtc" else 50.0))
    start_at = time.time() + 3.0  # spawned workers need a moment to import
    end_at = start_at + ramp_s + plan.warmup_s + plan.measure_s
    per = [n // plan.workers + (1 if i < n % plan.workers else 0) for i in range(plan.workers)]
    procs = []
    for i, count in enumerate(c for c in per if c):
        spec: Any
        if plan.ingress == "webrtc":
            spec = WhipSpec(service.base, count, start_at, ramp_s, end_at, str(speech), i)
            entry: Any = whip_worker_main
        else:
            target = ("127.0.0.1", service.sip_port)
            spec = WorkerSpec(target, count, plan.streams, start_at, ramp_s, end_at, str(speech), i)
            entry = worker_main
        proc = ctx.Process(target=entry, args=(spec, results), name=f"loadgen-{i}")
        proc.start()
        procs.append(proc)
    return procs, results, start_at + ramp_s + plan.warmup_s, end_at


def run_level(service: ServiceProcess, plan: LoadPlan, n: int, speech: Path) -> dict[str, Any]:
    """N calls for one measured interval; every figure of that level."""
    procs, results, measure_from, end_at = _workers(plan, n, service, speech)
    time.sleep(max(0.0, measure_from - time.time()))
    before, cpu, load0 = service.scrape(), CpuMeter(), os.getloadavg()
    udp0 = udp_drops(*service.rtp_range)
    t0 = time.monotonic()
    spy = _profile(service, plan, n, end_at - 1.0 - time.time())
    time.sleep(max(0.0, end_at - 0.5 - time.time()))
    if spy is not None:
        spy.wait()
    after, elapsed = service.scrape(), time.monotonic() - t0
    busy, udp_errors = cpu.busy_percent(), udp_drops(*service.rtp_range) - udp0
    reports = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(30)
    _wait_idle(service)
    row = _figures(before, after, elapsed, n, plan.streams)
    row.update(
        machine_cpu_busy_percent=busy,
        udp_socket_drops=udp_errors,
        peak_rss_mb=round(service.peak_rss_bytes() / 2**20, 1),
        loadavg_1m=round((load0[0] + os.getloadavg()[0]) / 2, 2),
        generator=_merge(reports),
    )
    row["behind"] = behind(row, n)
    return row


def _profile(service: ServiceProcess, plan: LoadPlan, n: int, seconds: float) -> Any:
    """py-spy on the service for the measured interval (sampling, non-blocking)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if plan.profile_dir is None or not Path(spy).exists():
        return None
    plan.profile_dir.mkdir(parents=True, exist_ok=True)
    out = plan.profile_dir / f"service-{plan.streams}x{n}.txt"
    args = [spy, "record", "-p", str(service.pid), "-d", str(max(1, int(seconds))), "-r", "50"]
    args += ["--nonblocking", "--threads", "--format", "raw", "-o", str(out)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _figures(
    before: dict[Any, float], after: dict[Any, float], s: float, n: int, streams: int
) -> dict[str, Any]:
    def rate(name: str, **labels: str) -> float:
        return round(delta(after, before, name, **labels) / s, 1)

    p50 = quantile(after, before, "clonewatch_score_latency_seconds", 0.5)
    p99 = quantile(after, before, "clonewatch_score_latency_seconds", 0.99)
    audio = delta(after, before, "clonewatch_audio_seconds_total")
    return {
        "calls": n,
        "streams": n * streams,
        "calls_active": total(after, "clonewatch_calls_active"),
        "interval_s": round(s, 1),
        "packets_per_s": rate("clonewatch_rtp_packets_total"),
        "packets_expected_per_s": n * streams * 50,
        "audio_s_per_s": rate("clonewatch_audio_seconds_total"),
        "windows_per_s": rate("clonewatch_windows_scored_total"),
        "speech_share": round(delta(after, before, "clonewatch_speech_seconds_total") / audio, 3)
        if audio
        else 0.0,
        "mean_batch": round(
            delta(after, before, "clonewatch_inference_batch_size_sum")
            / max(1.0, delta(after, before, "clonewatch_inference_batch_size_count")),
            2,
        ),
        "service_cpu_cores": round(delta(after, before, "process_cpu_seconds_total") / s, 3),
        "rss_mb": round(total(after, "process_resident_memory_bytes") / 2**20, 1),
        "latency_p50_s": None if p50 is None else round(p50, 3),
        "latency_p99_s": None if p99 is None else round(p99, 3),
        "rtp_packets_dropped": delta(after, before, "clonewatch_rtp_packets_dropped_total"),
        "rtp_packets_lost": delta(after, before, "clonewatch_rtp_packets_lost_total"),
        "windows_dropped": delta(after, before, "clonewatch_dropped_total"),
        "slow_model_runs": delta(after, before, "clonewatch_inference_slow_total"),
    }


def _merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"failures": {}}
    for r in reports:
        for key in ("established", "rejected", "failed", "packets_sent"):
            out[key] = out.get(key, 0) + r[key]
        for key in ("ticker_lag_p99_ms", "ticker_lag_max_ms"):
            out[key] = max(out.get(key, 0.0), r[key])
        if "realtime_factor_min" in r:  # WebRTC peers: audio produced per wall second
            out["realtime_factor_min"] = min(
                out.get("realtime_factor_min", 1.0), r["realtime_factor_min"]
            )
        for reason, count in r["failures"].items():
            out["failures"][reason] = out["failures"].get(reason, 0) + count
    return out


def behind(row: dict[str, Any], n: int) -> list[str]:
    """Why this level is not real time (empty when it kept up)."""
    why = []
    gen = row["generator"]
    if gen.get("established", 0) < n:
        why.append(f"only {gen.get('established', 0)} of {n} calls set up")
    if row["latency_p99_s"] is None or row["latency_p99_s"] > LATENCY_BUDGET_S:
        why.append(f"p99 latency {row['latency_p99_s']} s > {LATENCY_BUDGET_S} s")
    admitted = gen.get("established", 0) * row["streams"] / max(1, row["calls"])
    if row["audio_s_per_s"] < admitted * (1 - BACKLOG_TOLERANCE):
        why.append(
            f"{row['audio_s_per_s']} s of audio analysed per s for {admitted:.0f} streams "
            "(a backlog is growing)"
        )
    if gen.get("realtime_factor_min", 1.0) < 1 - BACKLOG_TOLERANCE:
        why.append(
            f"generator: a peer produced audio at {gen['realtime_factor_min']}x real time "
            "(the load generator, not the service, fell behind)"
        )
    lost = row["rtp_packets_lost"] + row["udp_socket_drops"]
    if lost > row["packets_expected_per_s"] * row["interval_s"] * LOSS_TOLERANCE:
        why.append(f"{lost:.0f} packets lost on the way in (socket buffers)")
    if row["rtp_packets_dropped"] or row["windows_dropped"]:
        why.append("packets or windows dropped by the service")
    return why


def _wait_idle(service: ServiceProcess) -> None:
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        if total(service.scrape(), "clonewatch_calls_active") == 0:
            return
        time.sleep(0.5)


def sweep(model: Path, plan: LoadPlan, speech: Path, log: Any = print) -> list[dict[str, Any]]:
    """Run each level of `plan` on a fresh service; stop after the first that fell behind."""
    rows = []
    for n in plan.counts:
        with ServiceProcess(
            model, n * plan.streams + 10, plan.settings, plan.service_root
        ) as service:
            row = run_level(service, plan, n, speech)
        rows.append(row)
        log(_line(row))
        if row["behind"] and plan.stop_when_behind:
            break
    return rows


def _line(row: dict[str, Any]) -> str:
    return (
        f"  N={row['calls']:4d} streams={row['streams']:4d} pkt/s={row['packets_per_s']:8.1f} "
        f"win/s={row['windows_per_s']:6.1f} cpu={row['service_cpu_cores']:.2f} cores "
        f"rss={row['rss_mb']:.0f} MB p50={row['latency_p50_s']} p99={row['latency_p99_s']} "
        f"drops={row['rtp_packets_dropped'] + row['windows_dropped']} "
        f"lost={row['rtp_packets_lost']} "
        f"udp_drops={row['udp_socket_drops']} load={row['loadavg_1m']} "
        f"gen_lag_p99={row['generator']['ticker_lag_p99_ms']}ms "
        f"{'BEHIND: ' + '; '.join(row['behind']) if row['behind'] else 'ok'}"
    )


def run_overload(
    model: Path, plan: LoadPlan, speech: Path, limit: int, log: Any = print
) -> dict[str, Any]:
    """More calls than `sip.max_calls`: the rest must be refused, the admitted kept whole."""
    (n,) = plan.counts
    with ServiceProcess(model, n * plan.streams + 10, plan.settings, plan.service_root) as service:
        row = run_level(service, plan, n, speech)
        rejected = total(service.scrape(), "clonewatch_calls_rejected_total")
    gen = row["generator"]
    row["limit"] = limit
    row["rejected_by_service"] = rejected
    row["behind"] = [w for w in row["behind"] if "calls set up" not in w]
    if gen.get("established") != limit or gen.get("rejected") != n - limit:
        row["behind"].append(
            f"expected {limit} admitted and {n - limit} refused with 503, got "
            f"{gen.get('established')} and {gen.get('rejected')}"
        )
    log(_line(row))
    return row
