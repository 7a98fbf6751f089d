import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from inference.eer import det_curve, eer, eer_interval, rates_at, threshold_at_fpr
from inference.evaldata import hop_windows, load_items, trim_silence, windows_of
from inference.evaluate import line_threshold, run_evaluate
from streamer.__main__ import main
from tests.fakes.models import write_test_model

pytestmark = pytest.mark.unit


def test_perfect_separation_has_zero_eer() -> None:
    rate, threshold = eer([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [0, 0, 0, 1, 1, 1])
    assert rate == 0.0
    assert 0.3 < threshold <= 0.7


def test_inverted_scores_have_eer_one() -> None:
    rate, _ = eer([0.9, 0.8, 0.1, 0.2], [0, 0, 1, 1])
    assert rate == pytest.approx(1.0)


def test_identical_scores_give_half() -> None:
    rate, threshold = eer([0.5] * 6, [0, 0, 0, 1, 1, 1])
    assert rate == pytest.approx(0.5)
    assert threshold == 0.5


def test_one_swap_in_four_gives_quarter() -> None:
    # humans .1 .2 .3 .4, synthetic .25 .35 .45 .55: at 0.35 one of each is wrong
    human = [0.1, 0.2, 0.3, 0.4]
    synth = [0.25, 0.35, 0.45, 0.55]
    rate, threshold = eer(human + synth, [0] * 4 + [1] * 4)
    assert rate == pytest.approx(0.25)
    assert threshold == pytest.approx(0.35)


def test_eer_of_gaussians_matches_theory() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    scores = np.concatenate([rng.normal(0, 1, n), rng.normal(2, 1, n)])
    rate, threshold = eer(scores, np.r_[np.zeros(n), np.ones(n)])
    assert rate == pytest.approx(0.158655, abs=0.003)  # Phi(-1)
    assert threshold == pytest.approx(1.0, abs=0.02)


def test_threshold_at_one_percent_false_alarms() -> None:
    human = np.arange(1000) / 1000.0  # 0.000 .. 0.999
    synth = np.array([0.985, 0.995, 0.5])
    thr, fa, miss = threshold_at_fpr(np.r_[human, synth], np.r_[np.zeros(1000), np.ones(3)])
    assert fa <= 0.01
    assert fa == pytest.approx(0.01)
    assert thr == pytest.approx(0.990)
    assert miss == pytest.approx(2 / 3)
    assert rates_at(human, np.zeros(1000), thr)[0] == pytest.approx(0.01)


def test_det_curve_is_monotone_and_ends_at_nothing_alarms() -> None:
    rng = np.random.default_rng(1)
    curve = det_curve(rng.random(50), rng.integers(0, 2, 50))
    assert np.all(np.diff(curve.miss) >= 0)
    assert np.all(np.diff(curve.false_alarm) <= 0)
    assert (curve.miss[-1], curve.false_alarm[-1]) == (1.0, 0.0)
    assert curve.false_alarm[0] == 1.0


def test_eer_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="at least one"):
        eer([0.1, 0.2], [0, 0])


def test_trim_and_windows() -> None:
    x = np.zeros(16000 * 3, np.float32)
    x[16000:32000] = 0.5 * np.sin(np.arange(16000) * 0.3)
    trimmed = trim_silence(x)
    assert len(trimmed) == 16000
    assert len(windows_of(trimmed, 8000, 6)) == 2
    short = windows_of(trimmed[:4000], 8000, 6)
    assert len(short) == 1
    assert short[0].shape == (8000,)


def test_hop_windows_are_every_window_the_service_scores() -> None:
    x = np.arange(20000, dtype=np.float32)
    windows = hop_windows(x, 8000, 4000)
    assert [int(w[0]) for w in windows] == [0, 4000, 8000, 12000]  # the last whole window
    assert all(w.shape == (8000,) for w in windows)
    short = hop_windows(x[:3000], 8000, 4000)
    assert len(short) == 1
    assert short[0].shape == (8000,)


def _tone(path: Path, peak: float, seconds: float = 1.0) -> None:
    t = np.arange(int(16000 * seconds)) / 16000.0
    sf.write(path, (peak * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)


def test_run_evaluate_on_folders(tmp_path: Path) -> None:
    # peak model: logit grows with max|x|, so the scores order like the peaks above
    model = write_test_model(tmp_path / "m", kind="peak", gain=20.0, ref_rms=0.3, window_s=1.0)
    for label, peaks in (("bonafide", [0.1, 0.2, 0.3, 0.4]), ("spoof", [0.25, 0.35, 0.45, 0.55])):
        (tmp_path / "set" / label / "sysA").mkdir(parents=True)
        for k, peak in enumerate(peaks):
            _tone(tmp_path / "set" / label / "sysA" / f"{k}.wav", peak)
    out, plot = tmp_path / "r.json", tmp_path / "det.png"
    status = run_evaluate(
        tmp_path / "set", model, json_out=out, plot_out=plot, split=None, channel="wideband"
    )
    assert status == 0
    report = json.loads(out.read_text())
    wide = report["channels"]["wideband"]
    assert wide["eer"] == pytest.approx(0.25)
    assert wide["eer_95_by_file"][0] <= wide["eer"] <= wide["eer_95_by_file"][1]
    assert wide["windows"] == {"human": 4, "synthetic": 4}
    # the test model's manifest: eer threshold 0.5 = logit 0 = peak 0.3; fpr_1pct 0.8
    shipped = wide["at_model_thresholds"]["eer"]
    assert shipped == {"false_alarm": pytest.approx(0.5), "miss": pytest.approx(0.25)}
    assert wide["systems"]["sysA (spoof)"]["windows"] == 4
    assert wide["systems"]["sysA (spoof)"]["eer"] == pytest.approx(0.25)
    assert wide["systems"]["sysA (bonafide)"]["label"] == "bonafide"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_evaluate_manifest_with_split(tmp_path: Path) -> None:
    model = write_test_model(tmp_path / "m", kind="peak", gain=20.0, ref_rms=0.3, window_s=1.0)
    rows = ["path,label,system,split"]
    for k, (peak, label, split) in enumerate(
        [(0.1, "bonafide", "dev"), (0.6, "spoof", "dev"), (0.9, "bonafide", "train")]
    ):
        _tone(tmp_path / f"{k}.flac", peak)
        rows.append(f"{k}.flac,{label},s{k},{split}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    assert len(load_items(tmp_path / "manifest.csv", "dev")) == 2
    out = tmp_path / "r.json"
    status = run_evaluate(
        tmp_path / "manifest.csv", model, json_out=out, plot_out=None, split="dev", channel=None
    )
    assert status == 0
    report = json.loads(out.read_text())
    assert set(report["channels"]) == {"wideband", "telephone"}
    assert report["channels"]["telephone"]["eer"] == 0.0


def test_run_evaluate_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = write_test_model(tmp_path / "m", kind="peak")
    assert (
        run_evaluate(
            tmp_path / "missing.csv", model, json_out=None, plot_out=None, split=None, channel=None
        )
        == 2
    )
    (tmp_path / "one.csv").write_text("path,label\na.wav,spoof\n")
    assert (
        run_evaluate(
            tmp_path / "one.csv", model, json_out=None, plot_out=None, split=None, channel=None
        )
        == 2
    )
    assert "no human (bonafide) files" in capsys.readouterr().err


def test_line_threshold_lets_at_most_the_given_share_of_files_alert() -> None:
    peaks = np.arange(200) / 200.0  # 0.000 .. 0.995
    threshold = line_threshold(peaks, 0.01)
    assert threshold is not None
    assert threshold == pytest.approx(0.9851)  # just above 0.985, the third highest
    assert int((peaks >= threshold).sum()) == 2  # 1% of 200
    assert line_threshold(peaks[:50], 0.01) == pytest.approx(0.2451)  # 50 files: none
    assert line_threshold(np.r_[np.full(5, -np.inf), 0.4], 0.01) == pytest.approx(0.4001)
    assert line_threshold(np.ones(10), 0.01) is None  # nothing up to 1 keeps them quiet


def test_run_evaluate_on_human_calls_alone_gives_the_line_threshold(tmp_path: Path) -> None:
    # peak model: score = sigmoid(20 * (max|x| - 0.3)); the manifest's synthetic threshold
    # is 0.8, so the 0.45 call (score ~0.95) alerts there; 3 s files: 5 windows at hop 0.5 s
    model = write_test_model(tmp_path / "m", kind="peak", gain=20.0, ref_rms=0.3, window_s=1.0)
    (tmp_path / "line" / "bonafide").mkdir(parents=True)
    for k, peak in enumerate([0.1, 0.2, 0.45]):
        _tone(tmp_path / "line" / "bonafide" / f"{k}.wav", peak, seconds=3.0)
    _tone(tmp_path / "line" / "bonafide" / "short.wav", 0.9, seconds=1.0)  # one window: never
    out = tmp_path / "r.json"
    assert run_evaluate(tmp_path / "line", model, json_out=out, channel="wideband") == 0
    report = json.loads(out.read_text())
    assert report["channels"] == {}  # no window EER without synthetic files
    calls = report["calls"]["wideband"]
    assert calls["files"] == {"human": 4, "synthetic": 0}
    assert calls["alerted"]["human"] == pytest.approx(0.25)
    loudest = 1 / (1 + np.exp(-20 * (0.45 - 0.3)))
    assert loudest < calls["line_threshold"] <= loudest + 1e-4  # 4 files: none may alert
    assert calls["alerted_at_line_threshold"]["human"] == 0.0
    # a DET plot needs synthetic files: refused before any scoring
    assert run_evaluate(tmp_path / "line", model, plot_out=tmp_path / "d.png") == 2


def test_evaluate_command_uses_the_configured_verdict_policy(tmp_path: Path) -> None:
    model = write_test_model(tmp_path / "m", kind="peak", gain=20.0, ref_rms=0.3, window_s=1.0)
    (tmp_path / "line" / "bonafide").mkdir(parents=True)
    _tone(tmp_path / "line" / "bonafide" / "loud.wav", 0.45, seconds=3.0)  # 5 windows
    out = tmp_path / "r.json"
    for min_windows, alerted in ((2, 1.0), (6, 0.0)):  # 6 > 5 windows: never a verdict
        config = tmp_path / f"c{min_windows}.toml"
        config.write_text(f"[verdict]\nmin_windows = {min_windows}\n")
        argv = ["evaluate", str(tmp_path / "line"), "--model", str(model), "--config", str(config)]
        assert main([*argv, "--channel", "wideband", "--json", str(out)]) == 0
        calls = json.loads(out.read_text())["calls"]["wideband"]
        assert calls["policy"]["min_windows"] == min_windows
        assert calls["alerted"]["human"] == alerted


def test_files_that_do_not_decode_are_skipped_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_test_model(tmp_path / "m", kind="peak", gain=20.0, ref_rms=0.3, window_s=1.0)
    for label, peaks in (("bonafide", [0.1, 0.2]), ("spoof", [0.5, 0.6])):
        (tmp_path / "set" / label).mkdir(parents=True)
        for k, peak in enumerate(peaks):
            _tone(tmp_path / "set" / label / f"{k}.wav", peak, seconds=2.0)
    broken = tmp_path / "set" / "bonafide" / "broken.wav"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    (tmp_path / "set" / "spoof" / "empty.flac").write_bytes(b"")
    out = tmp_path / "r.json"
    assert run_evaluate(tmp_path / "set", model, json_out=out, channel="wideband") == 1
    report = json.loads(out.read_text())
    assert sorted(Path(p).name for p in report["skipped"]) == ["broken.wav", "empty.flac"]
    assert report["files"] == {"human": 2, "synthetic": 2}  # the others, all scored
    assert report["channels"]["wideband"]["eer"] == 0.0
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.wav" in err and "empty.flac" in err


def test_eer_interval_of_separable_classes_is_zero() -> None:
    scores = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    assert eer_interval(scores, [0, 0, 0, 1, 1, 1], groups=[0, 0, 1, 2, 3, 3]) == (0.0, 0.0)


def test_eer_interval_covers_the_theoretical_eer() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    scores = np.concatenate([rng.normal(0, 1, n), rng.normal(2, 1, n)])
    low, high = eer_interval(scores, np.r_[np.zeros(n), np.ones(n)], groups=np.arange(2 * n))
    assert low < 0.158655 < high  # Phi(-1)
    assert 0.01 < high - low < 0.05


def test_eer_interval_resamples_files_not_windows() -> None:
    # each file's windows share an offset (its voice and recording): they err together
    rng = np.random.default_rng(4)
    files, per_file = 40, 10
    file_offset = np.repeat(rng.normal(0, 1.5, 2 * files), per_file)
    labels = np.repeat(np.r_[np.zeros(files), np.ones(files)], per_file)
    scores = 2.0 * labels + file_offset + rng.normal(0, 0.3, labels.size)
    by_file = eer_interval(scores, labels, groups=np.repeat(np.arange(2 * files), per_file))
    by_window = eer_interval(scores, labels, groups=np.arange(labels.size))
    assert by_file[0] <= eer(scores, labels)[0] <= by_file[1]
    assert by_file[1] - by_file[0] > 2 * (by_window[1] - by_window[0])


def test_eer_interval_rejects_groups_of_another_length() -> None:
    with pytest.raises(ValueError, match="differ"):
        eer_interval([0.1, 0.9], [0, 1], groups=[0])
