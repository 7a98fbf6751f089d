"""`clonewatch replay` end to end, and replay/live parity against a real sipp call."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamer.g711 import ulaw_encode
from tests.fakes.audio import speech_like
from tests.fakes.models import write_test_model
from tests.integration import sipp_scenarios as scen
from tests.integration.service import read_events, running_service, service_config
from tests.integration.sip_harness import run_sipp, wait_for, write_ulaw_wav

pytestmark = pytest.mark.integration

THRESHOLDS = {"threshold": 0.5, "thresholds": {"eer": 0.5, "fpr_1pct": 0.8}}


def _model(tmp_path: Path) -> Path:
    return write_test_model(
        tmp_path / "model", window_s=1.0, hop_s=0.5, ref_rms=0.02, manifest_overrides=THRESHOLDS
    )


def _replay(tmp_path: Path, model: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLONEWATCH_MODEL__PATH": json.dumps(str(model))}
    return subprocess.run(
        [sys.executable, "-m", "streamer", "replay", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_replay_directory_reports_every_file_and_flags_failures(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    loud, quiet = speech_like(4.0, 44100, seed=1), speech_like(4.0, 44100, seed=2) // 10
    sf.write(inputs / "stereo.flac", np.stack([loud, quiet], axis=1), 44100)
    sf.write(inputs / "sub" / "narrow.wav", speech_like(4.0, 8000, seed=3), 8000)
    sf.write(inputs / "quiet.ogg", quiet, 44100)
    (inputs / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    (inputs / "empty.flac").write_bytes(b"")
    out = tmp_path / "out"
    done = _replay(
        tmp_path, _model(tmp_path), str(inputs), "--json", str(out / "r.jsonl"),
        "--timeline", str(out / "tl"), "--plot", str(out / "plots"), "--workers", "2",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # two inputs are broken
    assert "2 of 5 files failed" in done.stderr
    lines = [json.loads(line) for line in (out / "r.jsonl").read_text().splitlines()]
    by_name = {Path(r["file"]).name: r for r in lines}
    assert list(by_name) == ["broken.wav", "empty.flac", "quiet.ogg", "stereo.flac", "narrow.wav"]
    assert "error" in by_name["broken.wav"] and "empty" in by_name["empty.flac"]["error"]
    stereo = {p["id"]: p for p in by_name["stereo.flac"]["participants"]}
    assert stereo["ch0"]["verdict"] == "synthetic" and stereo["ch0"]["first_alert_s"] > 0
    assert stereo["ch1"]["verdict"] == "human" and stereo["ch1"]["first_alert_s"] is None
    assert by_name["narrow.wav"]["participants"][0]["verdict"] == "synthetic"
    assert by_name["quiet.ogg"]["participants"][0]["max_score"] < 0.5
    assert 3.9 < by_name["narrow.wav"]["duration_s"] < 4.1
    assert "stereo.flac" in done.stdout and "synthetic" in done.stdout
    assert len(list((out / "tl").glob("*.csv"))) >= 3
    pngs = list((out / "plots").glob("*.png"))
    assert len(pngs) >= 3 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


async def test_replay_gives_the_scores_and_verdicts_of_the_live_call(tmp_path: Path) -> None:
    wav = tmp_path / "call.wav"
    write_ulaw_wav(wav, 5.0, seed=7)
    # sipp plays raw payload bytes; give it the WAV's exact samples without the header.
    raw = tmp_path / "call.ulaw"
    raw.write_bytes(ulaw_encode(sf.read(wav, dtype="int16")[0]))
    model = _model(tmp_path)
    # Every window's score as an event (no rate limit), so live and replay compare 1:1.
    config = service_config(tmp_path, model, verdict={"score_interval_s": 0.0})
    events_path = tmp_path / "events.jsonl"
    async with running_service(config, events_path):
        scenario = scen.plain_call(str(raw), 6000).replace(",-1,0", ",1,0")  # play once
        code, errors = await run_sipp(scenario, tmp_path, config.sip.port)
        assert code == 0, errors
        await wait_for(lambda: any(e["type"] == "call.ended" for e in read_events(events_path)))
    events = read_events(events_path)
    live_scores = [e["score"] for e in events if e["type"] == "participant.score"]
    live_verdicts = [e["verdict"] for e in events if e["type"] == "participant.verdict"]

    env_config = tmp_path / "replay.toml"
    env_config.write_text("[verdict]\nscore_interval_s = 0.0\n")
    done = _replay(tmp_path, model, str(wav), "--timeline", str(tmp_path / "tl"), "--config",
                   str(env_config))  # fmt: skip
    assert done.returncode == 0, done.stderr
    (timeline,) = (tmp_path / "tl").glob("*.csv")
    with timeline.open() as fh:
        rows = list(csv.DictReader(fh))
    replay_scores = [float(r["score"]) for r in rows]
    assert len(live_scores) >= 6
    assert len(replay_scores) == len(live_scores)
    np.testing.assert_allclose(replay_scores, live_scores, atol=1e-3)
    # Verdict events are changes from the initial `listening`: collapse the replay's
    # per-window verdicts the same way.
    replay_verdicts, previous = [], "listening"
    for row in rows:
        if row["verdict"] != previous:
            replay_verdicts.append(row["verdict"])
            previous = row["verdict"]
    assert live_verdicts == replay_verdicts
    assert live_verdicts[-1] == "synthetic"
