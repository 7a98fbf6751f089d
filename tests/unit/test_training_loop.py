"""The training loop: sharpness-aware gradients, spectrogram masks, heads trained from a bank,
reproducible runs."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from training.data import Clip
from training.dataset import Variants
from training.model import N_FEATURES, Detector, SpectrogramCnn
from training.train import (
    FeatureBank,
    TrainConfig,
    environment,
    mask_spectrogram,
    sharpness_aware_gradients,
    train,
)

pytestmark = pytest.mark.unit


def _model_and_batch() -> tuple[Detector, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = Detector(width=16)
    waveform = 0.1 * torch.randn(8, 16000)
    labels = torch.tensor([0.0, 1.0] * 4)
    with torch.no_grad():
        feats = model.features(waveform)
    return model, feats, labels


def _loss(model: Detector, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(model.classify(feats), labels)


def _grads(model: Detector) -> list[torch.Tensor]:
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    return [g.clone() for g in grads if g is not None]


def test_gradients_are_taken_at_the_worst_nearby_weights_and_the_weights_come_back() -> None:
    model, feats, labels = _model_and_batch()
    model.eval()  # no dropout: both passes and the reference must see the same network
    params = [p for p in model.parameters() if p.requires_grad]
    torch.autograd.backward(_loss(model, feats, labels))
    plain = _grads(model)
    before = [p.detach().clone() for p in params]

    # The reference: a copy moved by rho along the normalised gradient.
    rho = 0.5
    shifted = copy.deepcopy(model)
    norm = torch.norm(torch.stack([g.norm() for g in plain]))
    with torch.no_grad():
        for p, g in zip([p for p in shifted.parameters() if p.requires_grad], plain, strict=True):
            p.add_(rho * g / norm)
    shifted.zero_grad()
    torch.autograd.backward(_loss(shifted, feats, labels))
    expected = _grads(shifted)

    sharpness_aware_gradients(model, params, feats, labels, rho)

    for p, w in zip(params, before, strict=True):
        torch.testing.assert_close(p.detach(), w)
    after = _grads(model)
    for g, e in zip(after, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)
    assert any(not torch.allclose(g, p) for g, p in zip(after, plain, strict=True))


def test_the_second_pass_does_not_update_the_normalisation_statistics_again() -> None:
    model, feats, labels = _model_and_batch()
    params = [p for p in model.parameters() if p.requires_grad]
    torch.autograd.backward(_loss(model, feats, labels))
    assert model.norm.running_mean is not None
    mean = model.norm.running_mean.clone()
    sharpness_aware_gradients(model, params, feats, labels, 0.05)
    torch.testing.assert_close(model.norm.running_mean, mean)
    assert model.norm.momentum == 0.1


def _variants(levels: list[int]) -> Variants:
    """One 4 s row per level, every sample at that level; one clip per row."""
    n = len(levels)
    audio = np.repeat(np.array(levels, np.int16)[:, None], 64000, axis=1)
    return Variants(audio, np.full(n, 64000), np.arange(n), np.array(["clean"] * n))


def _clips(n: int) -> list[Clip]:
    """One training clip per row, classes alternating (0, 1, 0, ...)."""
    return [Clip(Path(f"{i}.flac"), i % 2, "s", "sys", "spk", "train") for i in range(n)]


def test_masks_set_whole_bands_and_stretches_to_the_rows_mean() -> None:
    spectrogram = torch.randn(6, 1, 161, 100)
    before = spectrogram.clone()
    masked = mask_spectrogram(spectrogram, 2, np.random.default_rng(1))

    assert masked.shape == spectrogram.shape
    assert torch.equal(spectrogram, before)  # the input is left alone
    for row, original in zip(masked, spectrogram, strict=True):
        changed = row != original
        # A changed cell lies in a band changed at every frame or a stretch changed in every bin.
        bands = changed.all(dim=2).squeeze(0)
        stretches = changed.all(dim=1).squeeze(0)
        assert torch.equal(changed[0], bands[:, None] | stretches[None, :])
        assert bands.sum() <= 32 and stretches.sum() <= 20
        assert torch.allclose(row[changed], original.mean().expand(int(changed.sum())))
    assert (masked != spectrogram).any()


def test_no_masks_leave_the_spectrogram_as_it_is() -> None:
    spectrogram = torch.randn(2, 1, 161, 50)
    assert torch.equal(mask_spectrogram(spectrogram, 0, np.random.default_rng(0)), spectrogram)


def test_the_feature_bank_keeps_each_rows_own_crops() -> None:
    data = _variants([100, 200, 300])
    bank = FeatureBank.build(data, lambda x: x.mean(dim=1, keepdim=True), per_row=3, chunk=2)
    assert bank.feats.shape == (3, 3, 1)
    drawn = bank.draw(np.array([2, 0, 2]), np.random.default_rng(0))
    np.testing.assert_allclose(drawn[:, 0].numpy(), np.array([300, 100, 300]) / 32768, rtol=1e-3)


def test_a_head_trains_from_the_bank_without_computing_features() -> None:
    levels = [100, 200] * 8
    data = _variants(levels)
    clips = _clips(len(levels))
    # Class 1 rows carry +1 on the first feature, class 0 rows -1; the rest is noise.
    feats = torch.randn(len(levels), 2, N_FEATURES) * 0.1
    feats[:, :, 0] += torch.tensor([-1.0, 1.0] * 8)[:, None]
    bank = FeatureBank(feats.to(torch.float16))

    def head(width: int) -> Detector:
        model = Detector(width=width)
        model.features = None  # type: ignore[assignment,method-assign]  # must not be called
        return model

    cfg = TrainConfig(steps=300, batch=16, width=8)
    model = train(clips, data, np.arange(len(levels)), cfg, head, bank)
    with torch.no_grad():
        logits = model.classify(feats[:, 0])
    assert ((logits > 0).numpy() == np.array([0, 1] * 8)).all()


def test_the_cnn_head_learns_a_pattern_the_level_cannot_give() -> None:
    # Class 1 rows: noise with a 2 kHz tone; class 0 rows: the same noise alone. Every crop
    # is scaled to unit RMS first, so only the spectrogram's shape tells them apart.
    rng = np.random.default_rng(0)
    t = np.arange(64000) / 16000
    rows = []
    for i in range(16):
        x = rng.standard_normal(64000) * 2000
        rows.append(x + (6000 * np.sin(2 * np.pi * 2000 * t) if i % 2 else 0))
    audio = np.stack(rows).astype(np.int16)
    data = Variants(audio, np.full(16, 64000), np.arange(16), np.array(["clean"] * 16))
    clips = _clips(16)
    cfg = TrainConfig(steps=60, batch=8, lr=1e-3)
    model = train(clips, data, np.arange(16), cfg, lambda _: SpectrogramCnn(channels=8))
    with torch.no_grad():
        logits = model(torch.from_numpy(audio[:, :16000] / 32768.0).float())
    assert ((logits > 0).numpy() == np.array([0, 1] * 8)).all()


@pytest.mark.parametrize("head", ["statistics", "cnn"])
def test_the_same_seed_trains_the_same_weights_and_another_seed_does_not(head: str) -> None:
    # Reruns are compared weight for weight (docs/detector-development.md): nothing in a
    # run may draw from an unseeded source.
    clips, data = _clips(8), _variants([100, 200] * 4)

    def run(seed: int) -> dict[str, torch.Tensor]:
        cfg = TrainConfig(steps=20, batch=4, width=8, seed=seed)
        make = Detector if head == "statistics" else (lambda _: SpectrogramCnn(channels=8))
        state: dict[str, torch.Tensor] = train(clips, data, np.arange(8), cfg, make).state_dict()
        return state

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_a_run_records_the_software_and_machine_its_weights_depend_on() -> None:
    env = environment()
    assert env["torch"] == torch.__version__
    assert env["threads"] == str(torch.get_num_threads())
    assert "libavcodec" in env["av"] and env["cpu"]
