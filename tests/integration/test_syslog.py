"""Syslog delivery to real receiver sockets: RFC 5424 framing, PRI per severity."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.config import SyslogConfig
from alerts.delivery import SinkRunner
from alerts.events import Event, EventBus, EventType
from alerts.metrics import Metrics
from alerts.syslog_sink import SyslogSink
from tests.integration.console_helpers import (
    add_user,
    base_url,
    client,
    login,
    loud_model,
    open_alerts,
    play_call,
    wait_for,
)
from tests.integration.service import running_service, service_config

pytestmark = pytest.mark.integration

# RFC 5424 section 6: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID
# SP STRUCTURED-DATA [SP MSG]
RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)) "
    r"(?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    r"(?P<msgid>[!-~]{1,32}) (?P<sd>\[clonewatch@32473( [a-z_]+=\"(\\.|[^\"\\\]])*\")*\])"
    r"(?P<msg> .*)?$"
)
LOCAL0 = 16
SEVERITY = {"alert.raised": 1, "alert.acknowledged": 5, "call.started": 6, "call.ended": 6}
RECV_TIMEOUT_S = 2.0


def _parse(datagram: bytes) -> re.Match[str]:
    text = datagram.decode()
    found = RFC5424.match(text)
    assert found is not None, f"not RFC 5424: {text!r}"
    return found


async def _receive_until(
    sock: socket.socket, want: set[str], timeout_s: float = 15.0
) -> dict[str, re.Match[str]]:
    """Messages by MSGID until every type in `want` arrived (bounded)."""
    loop = asyncio.get_running_loop()
    got: dict[str, re.Match[str]] = {}
    deadline = loop.time() + timeout_s
    while not want <= got.keys():
        left = deadline - loop.time()
        assert left > 0, f"syslog: still waiting for {want - got.keys()}, got {sorted(got)}"
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), min(left, RECV_TIMEOUT_S))
        except TimeoutError:
            continue
        message = _parse(data)
        got.setdefault(message["msgid"], message)
    return got


@pytest.fixture
def udp_receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


async def test_service_sends_rfc5424_over_udp_with_severity_per_event(
    tmp_path: Path, udp_receiver: socket.socket
) -> None:
    port = udp_receiver.getsockname()[1]
    config = service_config(
        tmp_path,
        model=loud_model(tmp_path / "model"),
        syslog={"target": f"udp:127.0.0.1:{port}", "types": []},  # all but scores
    )
    add_user(tmp_path / "clonewatch.db")
    async with running_service(config) as service, client() as http:
        me = await login(http, service)
        call_id = play_call(service)
        got = await _receive_until(
            udp_receiver, {"call.started", "participant.verdict", "alert.raised", "call.ended"}
        )
        (alert,) = await wait_for(lambda: open_alerts(http, service), what="the alert")
        url = f"{base_url(service)}/api/alerts/{alert['alert_id']}/acknowledge"
        async with http.post(url, headers={"X-CSRF-Token": me["csrf"]}) as resp:
            assert resp.status == 200
        got.update(await _receive_until(udp_receiver, {"alert.acknowledged"}))
    for msgid, severity in SEVERITY.items():
        assert int(got[msgid]["pri"]) == LOCAL0 * 8 + severity, msgid
        assert got[msgid]["app"] == "clonewatch" and got[msgid]["procid"] == str(os.getpid())
        assert f'call_id="{call_id}"' in got[msgid]["sd"]
    raised = got["alert.raised"]
    assert (
        f'alert_id="{alert["alert_id"]}"' in raised["sd"] and 'verdict="synthetic"' in raised["sd"]
    )
    assert 'user="alice"' in got["alert.acknowledged"]["sd"]
    # An alert outranks everything else: a lower number is a higher severity.
    pris = {k: int(m["pri"]) % 8 for k, m in got.items()}
    assert pris["alert.raised"] == min(pris.values())
    assert pris["alert.raised"] < pris["participant.verdict"] < pris["call.started"]


async def test_unix_datagram_socket_and_structured_data_escaping() -> None:
    # A short directory: unix socket paths are limited to about 108 bytes.
    with tempfile.TemporaryDirectory(prefix="cw-") as folder:
        path = str(Path(folder) / "log")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setblocking(False)
        bus, metrics = EventBus(), Metrics()
        sink = SyslogSink(SyslogConfig(target=f"unix:{path}", facility=3, app_name="cw-test"))
        runner = SinkRunner(sink, bus, metrics)
        runner.start()
        try:
            bus.publish(_event(EventType.ALERT_DISMISSED, reason='said "hi" ] \\ then\nhung up'))
            bus.publish(_event(EventType.PARTICIPANT_SCORE))  # not in `types`: not sent
            bus.publish(_event(EventType.ALERT_RAISED))
            got = await _receive_until(sock, {"alert.dismissed", "alert.raised"})
        finally:
            await runner.aclose()
            sock.close()
    dismissed = got["alert.dismissed"]
    assert int(dismissed["pri"]) == 3 * 8 + 5 and dismissed["app"] == "cw-test"
    assert 'reason="said \\"hi\\" \\] \\\\ then hung up"' in dismissed["sd"]
    assert int(got["alert.raised"]["pri"]) == 3 * 8 + 1
    assert "participant.score" not in got


def _event(kind: EventType, reason: str | None = None) -> Event:
    return Event(
        type=kind,
        call_id="call-1",
        participant_id="caller",
        line="+1555",
        ingress="sip",
        score=0.97,
        verdict="synthetic",
        alert_id="a" * 32,
        user="bob",
        reason=reason,
    )
