"""Markdown for BENCHMARKS.md from one run's results (the JSON written beside it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOAD_COLUMNS = (
    "| N | streams | packets/s | audio s/s | windows/s | mean batch | service CPU (cores) "
    "| per-core busy % (machine) | RSS MB (peak) | p50 s | p99 s | dropped pkt+win | lost "
    "| load avg | result |"
)


def _table(header: str, rows: list[str]) -> list[str]:
    return [header, "|" + "---|" * header.count(" | ") + "---|", *rows, ""]


def _inference(stage: dict[str, Any]) -> list[str]:
    lines = ["### Inference stage alone", ""]
    for config in stage["configs"]:
        lines.append(f"{config['label']} (provider {config['provider']}):")
        lines.append("")
        rows = [
            f"| {r['batch']} | {r['latency_p50_ms']} | {r['latency_p99_ms']} "
            f"| {r['windows_per_s']} |"
            for r in config["rows"]
        ]
        lines += _table("| batch | p50 ms | p99 ms | windows/s |", rows)
    lines += [f"CUDA: {stage['cuda']}.", ""]
    lines.append("Batching gain within a 0.95 s latency budget (best batch vs batch 1):")
    lines.append("")
    rows = [
        f"| {g['config']} | {g['best_batch']} | {g['best_windows_per_s']} "
        f"| {g['batch1_windows_per_s']} | {g['gain']}x |"
        for g in stage["batching_gain"]
    ]
    lines += _table("| config | best batch | windows/s | batch-1 windows/s | gain |", rows)
    lines.append("BatchingRuntime at saturation (600 windows offered at once, 1 thread):")
    lines.append("")
    rows = [
        f"| {r['max_batch']} | {r['windows_per_s']} | {r['latency_p50_s']} | {r['latency_p99_s']} |"
        for r in stage["runtime_saturation"]
    ]
    lines += _table("| max_batch | windows/s | p50 s | p99 s |", rows)
    return lines


def _load_row(r: dict[str, Any]) -> str:
    drops = r["rtp_packets_dropped"] + r["windows_dropped"]
    lost = r["rtp_packets_lost"] + r["udp_socket_drops"]
    busy = "/".join(f"{b:.0f}" for b in r["machine_cpu_busy_percent"])
    result = "behind: " + "; ".join(r["behind"]) if r["behind"] else "real time"
    return (
        f"| {r['calls']} | {r['streams']} | {r['packets_per_s']} | {r['audio_s_per_s']} "
        f"| {r['windows_per_s']} | {r['mean_batch']} | {r['service_cpu_cores']} | {busy} "
        f"| {r['rss_mb']:.0f} ({r['peak_rss_mb']:.0f}) | {r['latency_p50_s']} "
        f"| {r['latency_p99_s']} | {drops:.0f} | {lost:.0f} | {r['loadavg_1m']} | {result} |"
    )


def _load(title: str, rows: list[dict[str, Any]]) -> list[str]:
    return [f"### {title}", "", *_table(LOAD_COLUMNS, [_load_row(r) for r in rows])]


def _overload(row: dict[str, Any]) -> list[str]:
    gen = row["generator"]
    return [
        f"### Overload: {row['calls']} calls against sip.max_calls = {row['limit']}",
        "",
        f"Admitted {gen['established']}, refused with 503 {gen['rejected']} "
        f"(service counted {row['rejected_by_service']:.0f}), failed {gen['failed']}.",
        "",
        *_table(LOAD_COLUMNS, [_load_row(row)]),
    ]


def render(results: dict[str, Any], json_path: Path) -> str:
    """The markdown section of one run."""
    h = results["header"]
    m = h["machine"]
    lines = [
        f"## {h['date']}{' (' + h['label'] + ')' if h['label'] else ''}",
        "",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM; load average "
        f"at start {h['loadavg_at_start']} (shared with other work: figures are noisy)",
        f"- commit {h['commit']}{' + local changes' if h['dirty'] else ''}; model: {h['model']} "
        f"(sha256 {h.get('model_sha256', '?')})",
        f"- `{h['command']}`, {h.get('duration_s', '?')} s; raw figures: `{json_path}`",
        "",
    ]
    if "inference" in results:
        lines += _inference(results["inference"])
    if "hotpath" in results:
        hp = results["hotpath"]
        lines += [
            "### Per-packet path (RTP parse .. VAD .. chunker, no model, one thread)",
            "",
            f"Median of 5 runs: {hp['median_us']} us CPU per 20 ms packet "
            f"(runs: {', '.join(str(r['us_per_packet']) for r in hp['runs'])}).",
            "",
        ]
    titles = {
        "sip": "SIP, G.711 calls",
        "sip_repeat": "SIP, the key level again",
        "siprec": "SIPREC (two streams per call)",
        "webrtc": "WebRTC (WHIP, aiortc peers)",
    }
    for key, title in titles.items():
        if key in results:
            lines += _load(title, results[key])
    if "overload" in results:
        lines += _overload(results["overload"])
    return "\n".join(lines) + "\n"


def append(path: Path, results: dict[str, Any], json_path: Path) -> None:
    """Append one run's section to BENCHMARKS.md (created with its preamble if missing)."""
    if not path.exists():
        path.write_text(PREAMBLE)
    with path.open("a") as f:
        f.write("\n" + render(results, json_path))


PREAMBLE = """# clonewatch benchmarks

Each section below is one `make bench` run (`python -m benchmarks`), newest last; the raw
figures of each run are in `benchmarks/results/`.
"""
