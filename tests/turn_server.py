"""A real TURN server for tests: coturn on loopback with one long-term-credential user.

`/usr/bin/turnserver` comes with the Debian package `coturn` (`make test` installs it).
Relay ports come from a checked-free block, so a test can tell a relay candidate by its port.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration.service import free_port, free_port_range

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TurnServer:
    url: str
    username: str
    password: str
    relay_ports: range


@contextlib.asynccontextmanager
async def run_turn_server(directory: Path) -> AsyncIterator[TurnServer]:
    """Start coturn; yield once it listens; stop it after."""
    port = free_port()
    low, high = free_port_range(16)
    server = TurnServer(
        url=f"turn:127.0.0.1:{port}?transport=udp",
        username="clonewatch",
        password="turn-secret-5e1f",
        relay_ports=range(low, high + 1),
    )
    args = [
        "-n",  # no configuration file: only these options, whatever /etc/turnserver.conf says
        f"--listening-port={port}",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--min-port={low}",
        f"--max-port={high}",
        "--allow-loopback-peers",  # the WHIP peers of the tests are on loopback
        "--lt-cred-mech",
        f"--user={server.username}:{server.password}",
        "--realm=clonewatch.test",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        f"--pidfile={directory / 'turnserver.pid'}",
    ]
    proc = await asyncio.create_subprocess_exec(
        TURNSERVER, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await _wait_listening(port, proc)
        yield server
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _wait_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    """Poll with STUN Binding requests (RFC 8489) until coturn answers one."""
    request = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, secrets.token_bytes(12))
    deadline = time.monotonic() + START_TIMEOUT_S
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"turnserver exited {proc.returncode}")
            s.sendto(request, ("127.0.0.1", port))
            await asyncio.sleep(0.1)
            with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                if s.recv(2048)[8:20] == request[8:20]:
                    return
    raise AssertionError(f"turnserver not answering on {port} in {START_TIMEOUT_S} s")
