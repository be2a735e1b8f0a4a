"""The foundation stage: masked-patch pretraining (``evl_lite.training.pretraining``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from evl_lite.models.teacher import ECGTransformer, ECGTransformerConfig
from evl_lite.training.pretraining import PretrainConfig, pretrain


def silent_teacher() -> ECGTransformer:
    """A tiny teacher whose reconstruction head is frozen at zero: it always predicts 0."""
    torch.manual_seed(0)
    model = ECGTransformer(ECGTransformerConfig(d_model=32, n_layers=1, n_heads=2, ffn=64, patch_len=25))
    torch.nn.init.zeros_(model.reconstruction_head.weight)
    torch.nn.init.zeros_(model.reconstruction_head.bias)
    model.reconstruction_head.requires_grad_(False)
    return model


@pytest.mark.parametrize("normalize_target", [False, True])
def test_the_loss_is_against_raw_or_per_patch_normalised_targets(tmp_path, normalize_target):
    x = 3.0 * np.random.default_rng(0).standard_normal((20, 12, 250)).astype(np.float32)  # variance 9
    config = PretrainConfig(epochs=1, batch_size=8, normalize_target=normalize_target, progress=False)
    history = pretrain(silent_teacher(), x, config, out_dir=tmp_path)
    # Predicting 0: the mean squared target, ~9 for raw samples, just under 1 for z-scored patches.
    for loss in (history[0]["train_loss"], history[0]["val_loss"]):
        if normalize_target:
            assert 0.9 < loss < 1.0
        else:
            assert 7.0 < loss < 11.0
    assert json.loads((tmp_path / "pretrain_history.json").read_text()) == history
