"""`python -m benchmarks` (`make bench`): every capacity figure, appended to BENCHMARKS.md.

Parts (all by default; `--only` picks some):
    inference  the model alone: batch sizes 1..64, CPU 1 thread / all cores, CUDA if usable;
               and the BatchingRuntime at saturation, max_batch 1 against dynamic batching
    hotpath    CPU microseconds per RTP packet through parse..VAD..chunker (no model)
    sip        N concurrent G.711 calls, N rising until the service falls behind; the
               `--repeat` level is run again at the end (the machine is shared: noisy)
    siprec     the same with SIPREC (two streams per call)
    webrtc     a few WHIP peers (aiortc), which are heavy to generate
    overload   max_calls + 50 calls against the default `sip.max_calls`: the extra calls
               must get 503 and the admitted ones must stay real time

Results go to benchmarks/results/<stamp>.json and are appended to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.hotpath import per_packet_us
from benchmarks.inference import batching_gain, run_runtime, run_stage
from benchmarks.load import LoadPlan, run_overload, sweep
from benchmarks.models import resolve_model
from benchmarks.service import machine
from benchmarks.speech import path_of_track, speech_track
from streamer.config import PROJECT_ROOT, load_config

PARTS = ("inference", "hotpath", "sip", "siprec", "webrtc", "overload")
SIP_COUNTS = (100, 200, 300, 350, 400, 500)
SIPREC_COUNTS = (50, 100, 150, 200)
WEBRTC_COUNTS = (5, 10, 20)
RESULTS = Path(__file__).with_name("results")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    p.add_argument("--model", type=Path, help="model .onnx (default: the shipped one)")
    p.add_argument("--sip-counts", default=",".join(map(str, SIP_COUNTS)))
    p.add_argument("--siprec-counts", default=",".join(map(str, SIPREC_COUNTS)))
    p.add_argument("--webrtc-counts", default=",".join(map(str, WEBRTC_COUNTS)))
    p.add_argument("--repeat", type=int, default=300, help="SIP level run twice (0: none)")
    p.add_argument("--measure-s", type=float, default=15.0, help="measured seconds per level")
    p.add_argument("--service-root", type=Path, help="serve from another checkout (a 'before')")
    p.add_argument("--profile", type=Path, help="write py-spy stacks of the service here")
    p.add_argument("--label", default="", help="a note for the report (e.g. 'before')")
    p.add_argument("--no-append", action="store_true", help="do not touch BENCHMARKS.md")
    return p.parse_args(argv)


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def _git(*args: str, root: Path = PROJECT_ROOT) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    return out.stdout.strip()


def _header(args: argparse.Namespace, label: str, model_sha: str) -> dict[str, Any]:
    root = args.service_root or PROJECT_ROOT
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git("rev-parse", "--short", "HEAD", root=root),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", root=root)),
        "label": args.label,
        "machine": machine(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "model": label,
        "model_sha256": model_sha[:16],
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
    }


def _log(line: str) -> None:
    print(line, flush=True)


def _load_parts(args: argparse.Namespace, parts: set[str], model: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    speech = path_of_track()
    common = {"measure_s": args.measure_s, "service_root": args.service_root}
    if "sip" in parts:
        _log("sip: N concurrent G.711 calls")
        plan = LoadPlan(_counts(args.sip_counts), profile_dir=args.profile, **common)
        out["sip"] = sweep(model, plan, speech, _log)
        if args.repeat:
            _log(f"sip: level {args.repeat} again")
            again = LoadPlan((args.repeat,), stop_when_behind=False, **common)
            out["sip_repeat"] = sweep(model, again, speech, _log)
    if "siprec" in parts:
        _log("siprec: N concurrent SIPREC sessions, two streams each")
        plan = LoadPlan(_counts(args.siprec_counts), streams=2, ingress="siprec", **common)
        out["siprec"] = sweep(model, plan, speech, _log)
    if "webrtc" in parts:
        _log("webrtc: N WHIP peers")
        plan = LoadPlan(_counts(args.webrtc_counts), ingress="webrtc", workers=2, **common)
        out["webrtc"] = sweep(model, plan, speech, _log)
    if "overload" in parts:
        limit = load_config(env={}).sip.max_calls
        _log(f"overload: {limit + 50} calls against the default max_calls = {limit}")
        plan = LoadPlan((limit + 50,), settings={"sip": {"max_calls": limit}}, **common)
        out["overload"] = run_overload(model, plan, speech, limit, _log)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for; write the JSON and append the report."""
    args = _args(argv)
    parts = set(args.only.split(","))
    bench_model = resolve_model(args.model)
    sha = hashlib.sha256(bench_model.path.read_bytes()).hexdigest()
    results: dict[str, Any] = {"header": _header(args, bench_model.label, sha)}
    _log(f"model: {bench_model.label} ({bench_model.path})")
    began = time.monotonic()
    if "inference" in parts:
        _log("inference: the model alone")
        stage = run_stage(bench_model.path)
        budget_ms = 1000 * (1.0 - 0.05)  # the 1 s latency budget less the batcher's wait
        stage["batching_gain"] = [
            {"config": c["label"], **batching_gain(c["rows"], budget_ms)} for c in stage["configs"]
        ]
        stage["runtime_saturation"] = run_runtime(bench_model.path, threads=1)
        results["inference"] = stage
    if "hotpath" in parts:
        _log("hotpath: per-packet CPU cost")
        track = speech_track()
        runs = [per_packet_us(track, 50, 10) for _ in range(5)]
        results["hotpath"] = {
            "runs": runs,
            "median_us": sorted(r["us_per_packet"] for r in runs)[2],
        }
    results.update(_load_parts(args, parts, bench_model.path))
    results["header"]["duration_s"] = round(time.monotonic() - began)
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = "".join(c if c.isalnum() else "-" for c in args.label.lower()).strip("-")
    out = RESULTS / f"{stamp}{'-' + slug if slug else ''}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    _log(f"results: {out}")
    if not args.no_append:
        report.append(PROJECT_ROOT / "BENCHMARKS.md", results, out.relative_to(PROJECT_ROOT))
        _log("appended to BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
