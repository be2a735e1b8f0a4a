"""The contract shared by the teacher and the student: their output, and the input and checkpoint checks.

EVL-ECG distils a transformer into a CNN: the two models cut the ECG into tokens in
different ways (lead-aware patches vs. time positions of a feature map), with different
token counts N and widths d. The distillation losses (cross-attention alignment, optimal
transport, relation matching) only need, from either model, the same four things:

- ``logits``  [B, n_classes]  raw scores of the 5 superclasses (multi-label: use a sigmoid),
- ``tokens``  [B, N, d]       token embeddings,
- ``pooled``  [B, d]          one embedding per record,
- ``token_layout``            what each token covers on the ECG, so that figures can map an
                              attention map or a transport plan back onto the 12 leads.

The teacher can also return its attention maps (``attentions``). Both models check their
input at the boundary (``check_ecg_batch``) and their checkpoints before loading
(``check_state_shapes``), so bad input fails with a clear ``ECGDataError``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from evl_lite.errors import ECGDataError


@dataclass(frozen=True)
class TokenLayout:
    """What each of the N tokens covers on the ECG ``[12, T]``.

    Token ``i`` sees lead ``lead[i]`` (``-1``: all leads at once, as a CNN's time position
    does) over samples ``start[i] <= t < end[i]`` (half-open, clipped to ``[0, n_samples]``).
    All tensors are ``[N]`` int64 on the CPU; divide by ``fs`` for seconds. The helpers cache
    their layouts (a model makes the same one for every batch of length T): treat them as read-only.
    """

    lead: Tensor  # [N] lead index 0..11, or -1 for "all leads"
    start: Tensor  # [N] first sample covered
    end: Tensor  # [N] one past the last sample covered
    fs: float  # sampling rate in Hz
    n_samples: int  # T, length of the input the layout describes

    def __post_init__(self) -> None:
        n = self.lead.shape[0]
        if self.start.shape != (n,) or self.end.shape != (n,) or self.lead.shape != (n,):
            raise ValueError(
                f"TokenLayout: lead, start and end must all be [N]; got {tuple(self.lead.shape)}, "
                f"{tuple(self.start.shape)}, {tuple(self.end.shape)}"
            )
        if n and (self.start.min() < 0 or self.end.max() > self.n_samples or (self.end <= self.start).any()):
            raise ValueError(f"TokenLayout: every span must satisfy 0 <= start < end <= {self.n_samples}")

    def __len__(self) -> int:
        return self.lead.shape[0]

    def span_seconds(self) -> tuple[Tensor, Tensor]:
        """Start and end of every token's span in seconds: two float tensors [N]."""
        return self.start / self.fs, self.end / self.fs

    @classmethod
    @functools.lru_cache(maxsize=64)
    def lead_patches(cls, n_leads: int, n_samples: int, patch_len: int, fs: float) -> TokenLayout:
        """Layout of lead-aware patch tokens in lead-major order: token ``l * P + p`` is patch p of lead l.

        Each lead is cut into ``P = n_samples // patch_len`` non-overlapping patches.
        """
        n_patches = n_samples // patch_len
        lead = torch.arange(n_leads).repeat_interleave(n_patches)  # [12 * P]
        start = torch.arange(n_patches).repeat(n_leads) * patch_len  # [12 * P]
        return cls(lead=lead, start=start, end=start + patch_len, fs=fs, n_samples=n_samples)

    @classmethod
    @functools.lru_cache(maxsize=64)
    def time_positions(
        cls, n_positions: int, n_samples: int, stride: int, offset: int, size: int, fs: float
    ) -> TokenLayout:
        """Layout of the time positions of a CNN feature map, each covering all leads.

        Position n sees input samples ``[n * stride + offset, n * stride + offset + size)``
        (its receptive field; ``offset`` is negative when the convolutions pad), clipped to the input.
        """
        first = torch.arange(n_positions) * stride + offset  # [N]
        return cls(
            lead=torch.full((n_positions,), -1, dtype=torch.long),
            start=first.clamp(0, n_samples),
            end=(first + size).clamp(0, n_samples),
            fs=fs,
            n_samples=n_samples,
        )


@dataclass
class ModelOutput:
    """What teacher and student return (see the module docstring)."""

    logits: Tensor  # [B, n_classes]
    tokens: Tensor  # [B, N, d]
    pooled: Tensor  # [B, d]
    token_layout: TokenLayout  # N entries
    # Teacher only, on request: one [B, heads, 1 + N, 1 + N] map per layer; index 0 is the
    # CLS token, index 1 + i is tokens[:, i]. None otherwise.
    attentions: tuple[Tensor, ...] | None = None
    # Student only: the output of each stage of the CNN, [B, C_k, T_k] per stage (the last one is
    # ``tokens`` transposed), for baselines that distil from intermediate features (OFA-KD). None otherwise.
    stages: tuple[Tensor, ...] | None = None


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def check_ecg_batch(x: Tensor, n_leads: int, model_name: str) -> None:
    """Raise a clear ``ECGDataError`` unless ``x`` is a finite float tensor [B, n_leads, T]."""
    expected = f"{model_name} expects a float tensor x of shape [B, {n_leads}, T]"
    if not isinstance(x, Tensor):
        raise ECGDataError(None, f"{expected}; got {type(x).__name__}")
    if x.ndim != 3 or x.shape[1] != n_leads:
        raise ECGDataError(None, f"{expected}; got shape {list(x.shape)}")
    if not x.is_floating_point():
        raise ECGDataError(None, f"{expected}; got dtype {x.dtype}")
    if x.shape[0] == 0 or x.shape[2] == 0:
        raise ECGDataError(None, f"{expected} with B, T > 0; got shape {list(x.shape)}")
    if not torch.isfinite(x.sum()):  # one reduction: any NaN or inf makes the sum non-finite
        raise ECGDataError(None, f"{model_name}: x contains NaN or infinite values")


def check_state_shapes(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], path: Path
) -> None:
    """Raise one clear ``ECGDataError`` if checkpoint tensors ``found`` do not fit the model's ``expected``.

    Both map parameter names to shapes; missing, unexpected and mis-shaped tensors are listed.
    """
    problems = [
        f"{k}: checkpoint {list(found[k])} vs model {list(shape)}"
        for k, shape in expected.items()
        if k in found and tuple(found[k]) != tuple(shape)
    ]
    problems += [f"missing {k}" for k in expected if k not in found]
    problems += [f"unexpected {k}" for k in found if k not in expected]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
        raise ECGDataError(path, f"weights do not match the model built from config.json: {shown}")
