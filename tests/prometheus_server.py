"""A real Prometheus server for tests: scrapes one target every second on loopback.

`/usr/bin/prometheus` comes with the Debian package `prometheus` (`make test` installs it).
The server gets a temp config, a temp TSDB and a free port; queries go through its HTTP API
and are polled with a bounded timeout (Prometheus needs a scrape or two to see a value).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import ClientError, ClientSession

from tests.integration.service import free_port
from tests.promql import RULES

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
JOB = "clonewatch"
START_TIMEOUT_S = 30.0
POLL_S = 0.25

Vector = list[dict[str, Any]]


class PrometheusServer:
    """HTTP API client of a running Prometheus."""

    def __init__(self, url: str, session: ClientSession, log: Path) -> None:
        self.url = url
        self.session = session
        self.log = log

    async def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/PATH; the `data` of a success, else AssertionError with the error."""
        async with self.session.get(f"{self.url}/api/v1/{path}", params=params) as resp:
            body = await resp.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    async def query(self, expr: str) -> Vector:
        """An instant query; the result vector (raises on a non-vector result)."""
        data = await self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: Vector = data["result"]
        return result

    async def wait_for(
        self,
        expr: str,
        check: Callable[[Vector], bool] = bool,
        timeout_s: float = 20.0,
    ) -> Vector:
        """Poll `expr` until `check(result)` holds; AssertionError naming the last result."""
        deadline = time.monotonic() + timeout_s
        result: Vector = []
        while time.monotonic() < deadline:
            result = await self.query(expr)
            if check(result):
                return result
            await asyncio.sleep(POLL_S)
        raise AssertionError(f"{expr!r} after {timeout_s} s: {result}\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for failure messages."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def write_config(directory: Path, target: str, *, with_rules: bool = True) -> Path:
    """A config scraping `target` (host:port) every second as job `clonewatch`."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": JOB, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
        ],
    }
    if with_rules:
        config["rule_files"] = [str(RULES)]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.asynccontextmanager
async def run_prometheus(directory: Path, target: str) -> AsyncIterator[PrometheusServer]:
    """Start Prometheus scraping `target`; yield once it is ready; stop it after."""
    args, log, port = _prepare(directory, target)
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(PROMETHEUS, *args, stdout=out, stderr=out)
    try:
        async with ClientSession() as session:
            server = PrometheusServer(f"http://127.0.0.1:{port}", session, log)
            await _wait_ready(server, proc)
            yield server
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _prepare(directory: Path, target: str) -> tuple[list[str], Path, int]:
    """Command-line arguments for a server in `directory`, its log file and its port."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port(socket.SOCK_STREAM)
    args = [
        f"--config.file={write_config(directory, target)}",
        f"--storage.tsdb.path={directory / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    return args, directory / "prometheus.log", port


async def _wait_ready(server: PrometheusServer, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise AssertionError(f"prometheus exited {proc.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(ClientError):
            async with server.session.get(f"{server.url}/-/ready") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"prometheus not ready in {START_TIMEOUT_S} s:\n{server.log_tail()}")
