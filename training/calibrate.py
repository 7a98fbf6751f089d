"""Put both sides of the gated detector on one scale: logistic regression on held-out windows.

Each side's head is trained on its own, so their logits mean different things: the
speaker-encoder head's are large, and a threshold set on all windows together then suits
one side and not the other. A class-balanced logistic regression per side, fitted on
windows of speakers the heads never saw, maps each side's raw logits to log-odds.
"""

from __future__ import annotations

import numpy as np
import torch

from training.model import GatedDetector


def fit_logistic(x: np.ndarray, labels: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """Weights [F] and bias of a class-balanced logistic regression of `labels` on `x` [N, F]."""
    if len(np.unique(labels)) < 2:
        raise ValueError("calibration needs windows of both classes")
    X = torch.tensor(x, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.float64)
    balance = torch.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    params = torch.zeros(X.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")

    def loss_fn() -> torch.Tensor:
        opt.zero_grad()
        z = X @ params[:-1] + params[-1]
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
        loss = (balance * bce).mean() + l2 * (params[:-1] ** 2).sum()
        torch.autograd.backward(loss)
        return loss

    opt.step(loss_fn)  # type: ignore[no-untyped-call]
    fitted: np.ndarray = params.detach().numpy()
    return fitted


@torch.no_grad()
def fit_calibration(
    model: GatedDetector, audio: np.ndarray, labels: np.ndarray, batch: int = 128
) -> torch.Tensor:
    """Fit and set `model.calibration` from windows [K, n] of held-out speakers; returns it."""
    model.eval()
    parts = [
        model.side_logits(torch.from_numpy(np.ascontiguousarray(audio[i : i + batch])))
        for i in range(0, len(audio), batch)
    ]
    sides = torch.cat([p[0] for p in parts]).double().numpy()
    wide = torch.cat([p[1] for p in parts]).numpy()
    # A missing head's column is all zeros, and its weight stays exactly 0.
    narrow = fit_logistic(sides[~wide][:, :3], labels[~wide])
    wideband = fit_logistic(sides[wide][:, [3, 2]], labels[wide])
    model.calibration = torch.tensor(np.concatenate([narrow, wideband]), dtype=torch.float32)
    return model.calibration
