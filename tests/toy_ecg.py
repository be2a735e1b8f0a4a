"""A toy multi-label ECG task for training tests: class c puts a bump on lead c (learnable in seconds)."""

from __future__ import annotations

import numpy as np

from evl_lite.data.dataset import ECGSplit
from evl_lite.training.loop import TrainConfig

# a few seconds of training on the toy task (tests of the training loop)
FAST = TrainConfig(epochs=3, batch_size=16, lr=1e-2, crop=250, progress=False, seed=3)


def toy_split(name: str, n: int, seed: int, length: int = 500) -> ECGSplit:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 5)) < 0.35).astype(np.float32)
    y[y.sum(1) == 0, 0] = 1.0
    x = rng.standard_normal((n, 12, length)).astype(np.float32) * 0.3
    t = np.arange(length)
    for i in range(n):
        for c in np.nonzero(y[i])[0]:
            for centre in range(50, length, 100):  # one bump per second on lead c
                x[i, c] += 3.0 * np.exp(-((t - centre) ** 2) / (2 * 6.0**2))
    return ECGSplit(name=name, x=x, y=y, ecg_ids=np.arange(n) + 1, fs=100)
