"""The service under test in its own process, and what is read from it and from /proc.

`ServiceProcess` writes a TOML config (loopback, free ports, temporary store), starts
`python -m streamer serve --config FILE`, waits for `/readyz` and scrapes `/metrics`.
Snapshots of the Prometheus text are subtracted to get rates over a measured interval;
latency percentiles are interpolated inside the histogram buckets, as Prometheus'
`histogram_quantile` does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

READY_TIMEOUT_S = 60.0
Sample = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port the kernel says is free now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml(value: Any) -> str:
    return json.dumps(value)  # strings, numbers, booleans and lists read the same in TOML


class ServiceProcess:
    """`clonewatch serve` on loopback, for one benchmark run; use as a context manager."""

    def __init__(
        self,
        model: Path,
        rtp_ports: int,
        sections: dict[str, dict[str, Any]] | None = None,
        root: Path | None = None,
    ) -> None:
        self.root = root  # another checkout's code (PYTHONPATH), for before/after runs
        self.dir = Path(tempfile.mkdtemp(prefix="clonewatch-bench-"))
        self.sip_port = free_port()
        self.http_port = free_port(socket.SOCK_STREAM)
        rtp_min = 30000
        self.rtp_range = (rtp_min, rtp_min + 2 * rtp_ports + 1)
        settings: dict[str, dict[str, Any]] = {
            "sip": {"host": "127.0.0.1", "port": self.sip_port, "max_calls": 100_000},
            "rtp": {"port_min": rtp_min, "port_max": self.rtp_range[1]},
            "http": {"host": "127.0.0.1", "port": self.http_port},
            "model": {"path": str(model), "providers": ["CPUExecutionProvider"]},
            "store": {"path": str(self.dir / "clonewatch.db")},
            "whip": {"tokens": ["bench-token"], "max_sessions": 1000},
        }
        for section, keys in (sections or {}).items():
            settings.setdefault(section, {}).update(keys)
        lines = []
        for section, keys in settings.items():
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml(v)}" for k, v in keys.items()]
        self.config = self.dir / "bench.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = self.dir / "service.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServiceProcess:
        env = dict(os.environ)
        if self.root is not None:
            env["PYTHONPATH"] = str(self.root)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamer", "serve", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.root,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"service did not start; see {self.log}:\n{self.tail()}")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int = 20) -> str:
        """The end of the service's log."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    @property
    def base(self) -> str:
        """The HTTP base URL."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        """The service's process id."""
        assert self.proc is not None
        return self.proc.pid

    def scrape(self) -> Sample:
        """Every sample of /metrics, keyed by (name, sorted labels)."""
        with urllib.request.urlopen(f"{self.base}/metrics", timeout=10) as r:
            text = r.read().decode()
        out: Sample = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
        return out

    def peak_rss_bytes(self) -> int:
        """VmHWM: the most resident memory the service has used so far."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0


def total(sample: Sample, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in sample.items() if n == name and want <= set(ls))


def delta(after: Sample, before: Sample, name: str, **labels: str) -> float:
    """How much a counter grew between two snapshots."""
    return total(after, name, **labels) - total(before, name, **labels)


def quantile(after: Sample, before: Sample, name: str, q: float) -> float | None:
    """The q-quantile of a histogram's observations between two snapshots (None if none)."""
    buckets = []
    for (n, ls), v in after.items():
        if n == f"{name}_bucket":
            le = dict(ls)["le"]
            buckets.append((float(le), v - before.get((n, ls), 0.0)))
    buckets.sort()
    count = buckets[-1][1] if buckets else 0.0
    if count <= 0:
        return None
    rank, lower, below = q * count, 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return lower  # beyond the last bucket: its lower edge is all we know
            inside = cumulative - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, cumulative
    return lower


class CpuMeter:
    """Busy share of each core (whole machine) over an interval, from /proc/stat."""

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> list[tuple[int, int]]:
        out = []
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]
                out.append((sum(v) - idle, sum(v)))
        return out

    def busy_percent(self) -> list[float]:
        """Per core, percent busy since the meter was made."""
        end = self._read()
        return [
            round(100.0 * (b1 - b0) / (t1 - t0), 1) if t1 > t0 else 0.0
            for (b0, t0), (b1, t1) in zip(self._start, end, strict=True)
        ]


def udp_drops(port_min: int, port_max: int) -> int:
    """Datagrams the kernel dropped (receive buffer full) on sockets bound in the range.

    Read per socket from /proc/net/udp, so other processes on a shared machine do not
    count: these are packets the service did not read in time.
    """
    dropped = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        port = int(fields[1].rsplit(":", 1)[1], 16)
        if port_min <= port <= port_max:
            dropped += int(fields[-1])
    return dropped


def machine() -> dict[str, Any]:
    """nproc, CPU model and memory of this machine."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gib": round(mem_kb / 2**20, 1)}
