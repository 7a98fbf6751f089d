"""The composition root: the one place that builds concrete stages and wires them.

`Service` runs the live service (`clonewatch serve`); `Analysis` is the part shared with
replay (model runtime -> per-participant pipeline -> verdict board -> event bus), so a
recording goes through exactly the code a live call goes through from the AudioFrame on.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alerts.auth import UserStore
from alerts.dashboard import Console, server_ssl_context
from alerts.delivery import JsonlSink, LogSink, Sink, SinkRunner
from alerts.events import EventBus
from alerts.metrics import Metrics
from alerts.report import ScoreTee
from alerts.scoring import VerdictBoard
from alerts.store import Store, StoreSink
from alerts.syslog_sink import SyslogSink
from alerts.types import ScoreSink
from alerts.webhook import WebhookSink
from inference.call import Pipeline
from inference.model import OnnxModel
from inference.runtime import BatchingRuntime
from streamer.calls import CallManager
from streamer.config import AppConfig
from streamer.errors import ConfigError
from streamer.sip import SipServer
from streamer.webrtc import WhipIngress

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 10.0
READY_STORE_TIMEOUT_S = 2.0


@dataclass
class Analysis:
    """Model runtime, pipeline and verdict board (which publishes on the given bus)."""

    model: OnnxModel
    runtime: BatchingRuntime
    board: VerdictBoard
    pipeline: Pipeline

    async def aclose(self) -> None:
        """Close every call (pending windows are still scored), then stop the runtime."""
        await self.pipeline.aclose()
        await self.runtime.aclose()


def load_model(config: AppConfig) -> OnnxModel:
    """Load the configured model once (blocking: call before or off the loop)."""
    return OnnxModel.load(
        config.model_path(),
        config.model.providers,
        config.model.intra_op_threads,
        window_s=config.model.window_s,
    )


def build_analysis(
    config: AppConfig,
    model: OnnxModel,
    bus: EventBus,
    metrics: Metrics,
    score_tap: ScoreSink | None = None,
) -> Analysis:
    """Wire runtime, pipeline and board for `model`; call `runtime.start()` on the loop.

    `score_tap` also receives everything the board receives (replay's report recorder).
    """
    manifest = model.manifest
    metrics.model_info.info(
        {
            "name": manifest.name,
            "version": manifest.version,
            "provider": model.provider,
            "configured_providers": ",".join(config.model.providers),
        }
    )
    try:
        board = VerdictBoard(
            config.verdict,
            manifest.thresholds,
            manifest.threshold,
            f"{manifest.name} {manifest.version}",
            bus,
            metrics,
        )
    except ValueError as exc:  # thresholds of the config and the manifest disagree
        raise ConfigError(str(exc)) from None
    runtime = BatchingRuntime(model, config.model, metrics)
    pipeline = Pipeline(
        runtime=runtime,
        scores=board if score_tap is None else ScoreTee(board, score_tap),
        vad=config.vad,
        window_s=config.model.window_s or manifest.window_s,
        hop_s=config.model.hop_s or manifest.hop_s,
        sample_rate=manifest.sample_rate,
        metrics=metrics,
    )
    return Analysis(model, runtime, board, pipeline)


class Service:
    """The live service: SIP ingress, analysis, event sinks and the HTTP server."""

    def __init__(self, config: AppConfig, events_path: str | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.bus = EventBus()
        self.events_path = events_path or config.events.jsonl_path
        self.analysis: Analysis | None = None
        self.store = Store(config.store.path)
        self.calls: CallManager | None = None
        self.sip: SipServer | None = None
        self.whip: WhipIngress | None = None
        self.console: Console | None = None
        self.users: UserStore | None = None
        self.http_runner: web.AppRunner | None = None
        self.http_port = 0
        self._sinks: list[SinkRunner] = []

    async def start(self) -> None:
        """Load the model, start the sinks, then the listeners (the model first: fail fast)."""
        loop = asyncio.get_running_loop()
        model = await loop.run_in_executor(None, load_model, self.config)
        self.analysis = build_analysis(self.config, model, self.bus, self.metrics)
        self.analysis.runtime.start()
        await self.store.start()
        self._start_sinks()
        self.console = await self._start_console(self.analysis)
        self.whip = WhipIngress(
            self.config.whip,
            self.analysis.pipeline,
            self.metrics,
            extra_auth=self.console.whip_auth,
        )
        self.calls = CallManager(
            self.config.sip, self.config.rtp, self.analysis.pipeline, self.metrics
        )
        self.sip = SipServer(self.config.sip, self.calls, self.metrics)
        await self.sip.start()
        await self._start_http(self.console)
        logger.info(
            "clonewatch serving: SIP udp/%s tcp/%s, HTTP %s, model %s on %s",
            self.sip.udp_port,
            self.sip.tcp_port,
            self.http_port,
            model.manifest.name,
            model.provider,
        )

    async def _start_console(self, analysis: Analysis) -> Console:
        """The operator console over the board and store, with open alerts restored."""
        self.users = await asyncio.to_thread(UserStore, self.config.store.path)
        if not await asyncio.to_thread(self.users.has_users):
            logger.warning(
                "no console users yet: add one with `clonewatch users add NAME --role supervisor`"
            )
        console = Console(
            self.config.console,
            analysis.board,
            self.store,
            self.users,
            self.bus,
            window_s=self.config.model.window_s or analysis.model.manifest.window_s,
            secure=bool(self.config.http.tls_cert),
            whip_call=self._whip_call_id,
        )
        await console.restore_alerts()
        return console

    def _whip_call_id(self, session_id: str) -> str | None:
        session = self.whip.sessions.get(session_id) if self.whip else None
        return session.call_id if session else None

    def _start_sinks(self) -> None:
        sinks: list[Sink] = [StoreSink(self.store)]
        if self.config.events.log:
            sinks.append(LogSink())
        if self.events_path:
            sinks.append(JsonlSink(Path(self.events_path)))
        if self.config.webhook.url:
            sinks.append(WebhookSink(self.config.webhook, self.metrics))
        if self.config.syslog.target:
            sinks.append(SyslogSink(self.config.syslog))
        for sink in sinks:
            runner = SinkRunner(sink, self.bus, self.metrics)
            runner.start()
            self._sinks.append(runner)

    async def _start_http(self, console: Console) -> None:
        app = web.Application(client_max_size=1024**2)
        app[SERVICE_KEY] = self
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/readyz", _readyz)
        app.router.add_get("/metrics", _metrics)
        console.setup(app)
        if self.whip is not None:
            app.add_routes(self.whip.routes())
        self.http_runner = web.AppRunner(app, access_log=None)
        await self.http_runner.setup()
        http = self.config.http
        tls = server_ssl_context(http.tls_cert, http.tls_key)
        site = web.TCPSite(self.http_runner, http.host, http.port, ssl_context=tls)
        await site.start()
        self.http_port = _bound_port(site)

    async def ready(self) -> bool:
        """Model loaded, listeners bound and the store writable."""
        if self.analysis is None or self.sip is None or self.http_port == 0:
            return False
        try:
            return await asyncio.wait_for(self.store.writable(), READY_STORE_TIMEOUT_S)
        except TimeoutError:
            return False

    async def aclose(self) -> None:
        """Stop taking calls and requests, end the calls (scoring what is pending), drain."""
        if self.sip is not None:
            await self.sip.aclose()
        if self.whip is not None:
            await self.whip.aclose()
        if self.http_runner is not None:
            await self.http_runner.cleanup()  # closes console websockets with GOING_AWAY
        if self.calls is not None:
            await self.calls.aclose()
        if self.analysis is not None:
            await self.analysis.aclose()
        for runner in self._sinks:
            await runner.aclose()
        await self.store.aclose()
        if self.users is not None:
            await asyncio.to_thread(self.users.close)


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server here; no public accessor
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else 0


SERVICE_KEY = web.AppKey("service", Service)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def _readyz(request: web.Request) -> web.Response:
    ready = await request.app[SERVICE_KEY].ready()
    return web.json_response({"ready": ready}, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[SERVICE_KEY].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve(config: AppConfig, events_path: str | None = None) -> None:
    """Run the service until SIGINT or SIGTERM."""
    service = Service(config, events_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
        await stop.wait()
        logger.info("shutting down")
    finally:
        await asyncio.wait_for(service.aclose(), SHUTDOWN_TIMEOUT_S)
