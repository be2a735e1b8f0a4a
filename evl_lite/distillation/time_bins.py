"""Put two architectures' tokens on one time grid, using what each token covers on the ECG.

The teacher has ``12 * P`` lead-patch tokens, the student ``N_s`` time positions that each see
all leads: their token sets cannot be compared index by index. Cutting the window into K
equal time bins and averaging, in each bin, the tokens whose span overlaps it (weighted by
the overlap) gives both models a ``[B, K, d]`` sequence on the same grid:

    W[k, i] = |span_i ∩ bin_k| / sum_j |span_j ∩ bin_k|,        binned = W @ tokens

This is the hand-made alignment that FitNet and the token-level relations use; the
cross-attention component learns the alignment instead.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from evl_lite.models.output import TokenLayout


def time_bin_weights(layout: TokenLayout, n_bins: int) -> Tensor:
    """Averaging weights ``W [K, N]``: row k averages the tokens overlapping time bin k (rows sum to 1)."""
    return _weights(tuple(layout.start.tolist()), tuple(layout.end.tolist()), layout.n_samples, n_bins)


@functools.lru_cache(maxsize=64)
def _weights(start: tuple[int, ...], end: tuple[int, ...], n_samples: int, n_bins: int) -> Tensor:
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1; got {n_bins}")
    edges = torch.linspace(0, n_samples, n_bins + 1, dtype=torch.float64)  # [K + 1]
    lo = torch.maximum(edges[:-1, None], torch.tensor(start, dtype=torch.float64)[None, :])  # [K, N]
    hi = torch.minimum(edges[1:, None], torch.tensor(end, dtype=torch.float64)[None, :])  # [K, N]
    overlap = (hi - lo).clamp(min=0)  # [K, N] samples of token i inside bin k
    mass = overlap.sum(dim=1, keepdim=True)  # [K, 1]
    if (mass == 0).any():
        empty = (mass[:, 0] == 0).nonzero()[:, 0].tolist()
        raise ValueError(f"time bins {empty} of {n_bins} are covered by no token; use fewer bins")
    return (overlap / mass).float()


def bin_tokens(tokens: Tensor, layout: TokenLayout, n_bins: int) -> Tensor:
    """Tokens ``[B, N, d]`` -> their overlap-weighted averages over K equal time bins ``[B, K, d]``."""
    if tokens.shape[1] != len(layout):
        raise ValueError(f"tokens have N={tokens.shape[1]} but the layout describes {len(layout)} tokens")
    weights = time_bin_weights(layout, n_bins).to(device=tokens.device, dtype=tokens.dtype)  # [K, N]
    return torch.einsum("kn,bnd->bkd", weights, tokens)


def common_bins(*layouts: TokenLayout) -> int:
    """The finest grid every layout can fill: the smallest number of distinct token start times."""
    return min(int(layout.start.unique().numel()) for layout in layouts)
