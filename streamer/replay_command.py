"""`clonewatch replay`: recordings and captures through the live pipeline, with reports.

Each file goes through the same `Analysis` (pipeline, runtime, verdict board) a live call
goes through, so a replay gives the verdicts the live call gave. A directory of many files
is shared out over worker processes (one model session each) to use every core; the
parent prints the summaries and writes the JSON lines in input order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from alerts.events import EventBus
from alerts.metrics import Metrics
from alerts.report import (
    FileReport,
    Progress,
    ReplayRecorder,
    format_summary,
    write_timeline,
)
from streamer.app import Analysis, build_analysis, load_model
from streamer.config import AppConfig
from streamer.errors import AudioFileError
from streamer.replay import iter_inputs, open_source, replay_source

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayOptions:
    """What the command line asked for."""

    json_out: Path | None = None
    timeline_dir: Path | None = None
    plot_dir: Path | None = None
    realtime: bool = False
    workers: int = 0  # 0 = one per core, at most one per file


@dataclass(frozen=True)
class FileResult:
    """What a worker hands back for one input file (picklable)."""

    file: str
    summary: str
    json_line: str
    failed: bool


class Replayer:
    """Replays file after file through one `Analysis` on the running loop."""

    def __init__(self, config: AppConfig, options: ReplayOptions) -> None:
        self.config = config
        self.options = options
        self.recorder = ReplayRecorder()
        self.analysis: Analysis | None = None

    async def start(self) -> None:
        """Load the model (off the loop) and start the runtime."""
        model = await asyncio.get_running_loop().run_in_executor(None, load_model, self.config)
        bus = EventBus()
        bus.add_listener(self.recorder.on_event)
        config = self.config
        if not self.options.realtime:
            # Unpaced replay waits for the pipeline after each read batch, so every window
            # of the batch is already queued: waiting for more before a model run only idles.
            model_config = config.model.model_copy(update={"max_wait_ms": 0.0})
            config = config.model_copy(update={"model": model_config})
        self.analysis = build_analysis(config, model, bus, Metrics(), score_tap=self.recorder)
        self.analysis.runtime.start()

    async def aclose(self) -> None:
        """Stop the runtime."""
        if self.analysis is not None:
            await self.analysis.aclose()

    async def replay(self, path: Path) -> FileResult:
        """Replay one input and write its timeline and plot; never raises for bad input."""
        assert self.analysis is not None, "start() first"
        pipeline = self.analysis.pipeline
        loop = asyncio.get_running_loop()
        call_ids: list[str] = []
        duration_s, error = 0.0, None
        try:
            source = await loop.run_in_executor(None, open_source, path)
            call_ids = [c.info.call_id for c in source.calls]
            duration_s = source.duration_s
            await replay_source(
                source, pipeline, realtime=self.options.realtime, backpressure=pipeline.drain
            )
        except AudioFileError as exc:
            error = str(exc)
        await pipeline.drain()
        report = self.recorder.file_report(str(path), call_ids, duration_s, error)
        self.recorder.forget(call_ids)
        # Replayed calls carry no line, so the board scored them with its default thresholds.
        thresholds = self.analysis.board.thresholds_for("")
        plot_thresholds = {"suspect": thresholds.suspect, "synthetic": thresholds.synthetic}
        await loop.run_in_executor(None, self._write_outputs, report, plot_thresholds)
        return FileResult(str(path), format_summary(report), report.to_json_line(), report.failed)

    def _write_outputs(self, report: FileReport, thresholds: dict[str, float]) -> None:
        if self.options.timeline_dir is not None:
            write_timeline(report, self.options.timeline_dir)
        if self.options.plot_dir is not None:
            from alerts.report_plot import write_plot

            write_plot(report, self.options.plot_dir, thresholds)


async def _replay_in_process(
    config: AppConfig, options: ReplayOptions, files: list[str], progress: Progress
) -> list[FileResult]:
    replayer = Replayer(config, options)
    await replayer.start()
    results = []
    try:
        for file in files:
            results.append(await replayer.replay(Path(file)))
            progress.advance(results[-1].failed)
    finally:
        await replayer.aclose()
    return results


class _WorkerState:
    """The one Replayer of a worker process, with the loop it runs on.

    Worker processes are separate interpreters, so this per-process slot is the only way
    to keep one model session per process across the files it is handed.
    """

    loop: asyncio.AbstractEventLoop | None = None
    replayer: Replayer | None = None


def _worker_init(config: AppConfig, options: ReplayOptions) -> None:
    logging.basicConfig(level=logging.WARNING)
    _WorkerState.loop = asyncio.new_event_loop()
    _WorkerState.replayer = Replayer(config, options)
    _WorkerState.loop.run_until_complete(_WorkerState.replayer.start())


def _worker_replay(file: str) -> FileResult:
    assert _WorkerState.loop is not None and _WorkerState.replayer is not None
    return _WorkerState.loop.run_until_complete(_WorkerState.replayer.replay(Path(file)))


def _replay_in_pool(
    config: AppConfig, options: ReplayOptions, files: list[str], workers: int, progress: Progress
) -> list[FileResult]:
    by_file: dict[str, FileResult] = {}
    with ProcessPoolExecutor(workers, initializer=_worker_init, initargs=(config, options)) as pool:
        futures = {pool.submit(_worker_replay, f): f for f in files}
        for future in as_completed(futures):
            result = future.result()
            by_file[result.file] = result
            progress.advance(result.failed)
    return [by_file[f] for f in files]


def run_replay(paths: list[str], config: AppConfig, options: ReplayOptions) -> int:
    """Replay `paths` (files and directories); 0 when every file was read, else 1."""
    files = [str(p) for p in iter_inputs(paths)]
    if not files:
        print("clonewatch replay: no input files", file=sys.stderr)
        return 2
    workers = options.workers or os.cpu_count() or 1
    workers = 1 if options.realtime else max(1, min(workers, len(files)))
    progress = Progress(len(files))
    if workers == 1:
        results = asyncio.run(_replay_in_process(config, options, files, progress))
    else:
        results = _replay_in_pool(config, options, files, workers, progress)
    progress.close()
    return _report(results, options)


def _report(results: list[FileResult], options: ReplayOptions) -> int:
    for result in results:
        print(result.summary)
    if options.json_out is not None:
        options.json_out.parent.mkdir(parents=True, exist_ok=True)
        options.json_out.write_text("".join(r.json_line + "\n" for r in results))
    failed = sum(r.failed for r in results)
    if failed:
        print(f"clonewatch replay: {failed} of {len(results)} files failed", file=sys.stderr)
    return 1 if failed else 0
