"""Training data plumbing: class-balanced sampling and the held-out groupings."""

from pathlib import Path

import numpy as np
import pytest

from training.__main__ import _parser, main, unseen_clips
from training.data import Clip, tts_clips
from training.dataset import Variants
from training.experiments import leave_family_out, rows_for
from training.train import sample_weights

pytestmark = pytest.mark.unit


def _clip(label: int, source: str) -> Clip:
    return Clip(Path(f"{source}.flac"), label, source, source, "spk", "train")


def test_sample_weights_give_each_class_half_the_mass() -> None:
    clips = [_clip(0, "librispeech")] * 9 + [_clip(1, "edge")] * 3 + [_clip(1, "demo")]
    rows = np.arange(len(clips))
    w = sample_weights(clips, rows)
    labels = np.array([c.label for c in clips])
    assert w.sum() == pytest.approx(1.0)
    assert w[labels == 0].sum() == pytest.approx(0.5)
    assert w[labels == 1].sum() == pytest.approx(0.5)
    # within a class every row is equally likely, whatever its source
    assert np.allclose(w[labels == 1], w[labels == 1][0])


def test_balanced_speakers_take_one_share_of_both_classes() -> None:
    def clip(label: int, speaker: str) -> Clip:
        return Clip(Path(f"{speaker}.flac"), label, "src", "sys", speaker, "train")

    # "lj" is 1 of 4 human clips but 6 of 8 synthetic ones; "a" and "b" are in one class only
    clips = [clip(0, "lj")] + [clip(0, "a")] * 3 + [clip(1, "lj")] * 6 + [clip(1, "b")] * 2
    labels = np.array([c.label for c in clips])
    lj = np.array([c.speaker == "lj" for c in clips])
    rows = np.arange(len(clips))
    plain = sample_weights(clips, rows)
    assert plain[lj & (labels == 0)].sum() == pytest.approx(0.125)
    assert plain[lj & (labels == 1)].sum() == pytest.approx(0.375)
    w = sample_weights(clips, rows, balance_speakers=True)
    assert w[labels == 0].sum() == pytest.approx(0.5)
    assert w[labels == 1].sum() == pytest.approx(0.5)
    both = np.sqrt(0.25 * 0.75) / 2  # the geometric mean of its shares, in each half
    assert w[lj & (labels == 0)].sum() == pytest.approx(both)
    assert w[lj & (labels == 1)].sum() == pytest.approx(both)
    # the other speakers keep their relative weights within the class
    assert np.allclose(w[~lj & (labels == 0)], w[~lj & (labels == 0)][0])


def test_human_sources_group_recordings_and_skip_spoofs() -> None:
    assert _clip(0, "pyannote").human_source == _clip(0, "pyannote_windows").human_source
    assert _clip(0, "resemblyzer").human_source == "librispeech"
    assert _clip(0, "vosk").human_source == "vosk"
    assert _clip(1, "resemblyzer").human_source == ""
    assert _clip(1, "edge_tts_samples").family == "commercial-tts"


def test_a_copy_synthesised_clip_belongs_to_its_originals_recording_group() -> None:
    copy = Clip(
        Path("data/generated/spoof/copysynth/world/c.flac"),
        1,
        "copysynth",
        "world",
        "spk",
        "train",
        origin="bonafide/resemblyzer/c.flac",
    )
    assert copy.recording_group == "librispeech"
    assert copy.human_source == ""  # still a spoof clip for every other grouping
    assert _clip(0, "pyannote").recording_group == "ami-meetings"
    assert _clip(1, "edge_tts_samples").recording_group == ""


def test_holding_out_a_group_that_matches_nothing_is_an_error() -> None:
    clips = [_clip(0, "librispeech"), _clip(1, "edge_tts_samples")]
    with pytest.raises(ValueError, match="matches no clip"):
        leave_family_out(clips, [], None, None, "no-such-family")  # type: ignore[arg-type]


def test_the_training_command_refuses_an_unknown_family() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["loso", "--families", "vocodr"])
    assert _parser().parse_args(["loso", "--families", "vocoder"]).families == ["vocoder"]


def test_a_single_head_run_must_leave_the_speaker_and_cnn_heads_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["dev", "--single-head"])  # refused before any data is read
    assert "--no-cnn-head" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["dev", "--single-head", "--no-cnn-head", "--speaker-head"])
    assert "cannot take --speaker-head" in capsys.readouterr().err
    args = _parser().parse_args(["dev", "--single-head", "--no-cnn-head"])
    assert args.single_head and not args.speaker_head and not args.cnn_head
    shipped = _parser().parse_args(["dev"])
    assert shipped.cnn_head and not shipped.speaker_head  # the shipped recipe: CNN, no speaker
    assert _parser().parse_args(["dev", "--speaker-head"]).speaker_head


def test_tts_and_generated_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dev", "--tts", "piper", "--generated"])  # refused before any data is read
    assert "--generated takes all" in capsys.readouterr().err


def test_tts_clips_take_the_first_clips_of_each_engine_onto_the_training_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = ["path,label,source,system,speaker,split"]
    for engine, n in (("alpha", 3), ("beta", 1)):
        for i in range(n):
            path = f"spoof/{engine}/{engine}-{i}.flac"
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_bytes(b"")
            rows.append(f"{path},spoof,{engine},{engine}-v,{engine}-v,dev")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr("training.data.GENERATED_DIR", tmp_path)
    clips = tts_clips(["alpha"], 2)
    assert [c.path.name for c in clips] == ["alpha-0.flac", "alpha-1.flac"]
    assert all(c.fold == "train" and c.label == 1 for c in clips)
    with pytest.raises(ValueError, match="gamma"):
        tts_clips(["gamma"], 2)


def test_rows_for_keeps_the_marked_clips_and_the_chosen_chains() -> None:
    data = Variants(
        audio=np.zeros((6, 4), np.int16),
        valid=np.full(6, 4),
        clip=np.array([0, 0, 1, 1, 2, 2]),
        chain=np.array(["telephone", "wideband", "mp3", "wideband", "telephone", "opus-wb"]),
    )
    keep = np.array([True, True, False])
    assert rows_for(data, keep).tolist() == [0, 1, 2, 3]
    assert rows_for(data, keep, ("wideband", "mp3")).tolist() == [1, 2, 3]
    args = _parser().parse_args(["dev", "--chains", "wideband", "mp3"])
    assert args.chains == ["wideband", "mp3"]
    with pytest.raises(SystemExit):
        _parser().parse_args(["dev", "--chains", "widebnd"])


def test_unseen_clips_keep_unseen_engines_and_copies_of_the_given_originals(
    tmp_path: Path,
) -> None:
    def clip(name: str, source: str, system: str, origin: str = "") -> Clip:
        (tmp_path / name).write_bytes(b"")
        return Clip(tmp_path / name, 1, source, system, "s", "dev", origin)

    generated = [
        clip("k.flac", "kokoro", "kokoro-v"),
        clip("p.flac", "piper", "piper-v"),  # trained on: left out
        clip("w1.flac", "copysynth", "world", "bonafide/a/1.flac"),
        clip("w2.flac", "copysynth", "world", "bonafide/a/2.flac"),  # not a held-out original
        clip("h1.flac", "copysynth", "hifigan", "bonafide/a/1.flac"),
    ]
    generated.append(Clip(tmp_path / "gone.flac", 1, "kokoro", "kokoro-v", "s", "dev"))
    found = unseen_clips(generated, {"bonafide/a/1.flac"}, seen={"piper"})
    assert [(name, c.path.name) for name, c in found] == [
        ("kokoro", "k.flac"),
        ("copy-world", "w1.flac"),
        ("copy-hifigan", "h1.flac"),
    ]
