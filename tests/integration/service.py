"""The whole service, in-process on free loopback ports, for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from streamer.app import Service
from streamer.config import AppConfig, load_config
from tests.fakes.models import write_test_model


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port the kernel says is free now, for both UDP and TCP."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port


def free_port_range(size: int = 40) -> tuple[int, int]:
    """A block of free even-aligned UDP ports for RTP."""
    for _ in range(100):
        start = free_port() & ~1
        ok = True
        for port in range(start, start + size):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok and start + size < 65535:
            return start, start + size - 1
    raise RuntimeError("no free RTP port range")


def service_config(
    tmp_path: Path, model: Path | None = None, **sections: dict[str, Any]
) -> AppConfig:
    """Config for a test service: loopback, free ports, a tiny model, temp store.

    `sections` override keys per section, e.g. `sip={"rtp_timeout_s": 2}`.
    """
    if model is None:
        model = write_test_model(tmp_path / "model", window_s=1.0, hop_s=0.5)
    rtp_min, rtp_max = free_port_range()
    env = {
        "CLONEWATCH_SIP__HOST": '"127.0.0.1"',
        "CLONEWATCH_SIP__PORT": str(free_port()),
        "CLONEWATCH_RTP__PORT_MIN": str(rtp_min),
        "CLONEWATCH_RTP__PORT_MAX": str(rtp_max),
        "CLONEWATCH_HTTP__HOST": '"127.0.0.1"',
        "CLONEWATCH_HTTP__PORT": str(free_port(socket.SOCK_STREAM)),
        "CLONEWATCH_MODEL__PATH": json.dumps(str(model)),
        "CLONEWATCH_MODEL__PROVIDERS": '["CPUExecutionProvider"]',
        "CLONEWATCH_MODEL__MAX_WAIT_MS": "10",
        "CLONEWATCH_STORE__PATH": json.dumps(str(tmp_path / "clonewatch.db")),
    }
    for section, keys in sections.items():
        for key, value in keys.items():
            env[f"CLONEWATCH_{section.upper()}__{key.upper()}"] = json.dumps(value)
    return load_config(env=env)


@contextlib.asynccontextmanager
async def running_service(
    config: AppConfig, events_path: Path | None = None
) -> AsyncIterator[Service]:
    """Start `Service(config)`, yield it, and always shut it down."""
    service = Service(config, str(events_path) if events_path else None)
    try:
        await service.start()
        yield service
    finally:
        await service.aclose()


def read_events(path: Path) -> list[dict[str, Any]]:
    """The JSON-lines events written so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
