"""An exponential moving average of a model's weights (Polyak & Juditsky 1992), for evaluation.

After every optimiser step ``n`` (counting from 1),

    theta_avg <- d_n * theta_avg + (1 - d_n) * theta,    d_n = min(decay, (1 + n) / (10 + n))

so the first steps, far from where training ends, are forgotten quickly (the warm-up of
TensorFlow's ``ExponentialMovingAverage``), and later the average spans about
``1 / (1 - decay)`` steps. Validation and model selection read the averaged weights, which move
less from one epoch to the next than the trained ones (``TrainConfig.ema_decay``). Floating-point
entries of the state dict are averaged; integer buffers are copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class WeightAverage:
    """The moving average of ``model``'s state dict; ``swapped_in()`` evaluates with it."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be between 0 and 1 (exclusive); got {decay}")
        self.model, self.decay, self.updates = model, decay, 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights into the average (call after each optimiser step)."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in self.model.state_dict().items():
            if v.is_floating_point():
                self.state[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.state[k].copy_(v)

    def load(self, state: dict[str, Tensor], updates: int) -> None:
        """Restore an average saved with a checkpoint (resuming)."""
        self.state = {k: v.to(self.state[k].device, self.state[k].dtype).clone() for k, v in state.items()}
        self.updates = updates

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; the trained ones come back after."""
        trained = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.state)
        try:
            yield
        finally:
            self.model.load_state_dict(trained)
