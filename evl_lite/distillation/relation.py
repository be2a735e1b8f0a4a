"""Geometric intra-architecture relation matching: the third EVL-ECG component.

Relations are computed inside each model's own feature space and only the relation
structures are compared, so nothing has to map a CNN feature onto a transformer feature:
a distance matrix is ``B x B`` whatever the widths ``d_s`` and ``d_t``. Normalising every
relation removes each space's scale (Park et al. 2019, "Relational Knowledge Distillation"):

    psi_D(i, j)    = ||f_i - f_j|| / mu,     mu = mean of the positive distances
    psi_A(i, j, k) = < (f_j - f_i) / ||f_j - f_i||, (f_k - f_i) / ||f_k - f_i|| >   cos of the angle at i

Three relation structures, each matched with smooth L1 (teacher side without gradient):

- sample distances and triplet angles between the pooled embeddings of the B ECGs in a batch,
- token distances within one ECG: both models' tokens on one time grid of K bins
  (``time_bins.bin_tokens``), and the ``K x K`` normalised distance matrix per ECG, so the
  student learns the teacher's temporal geometry of each beat sequence.

    L = w_D * SL1(psi_D^s, psi_D^t) + w_A * SL1(psi_A^s, psi_A^t) + w_T * SL1(psi_T^s, psi_T^t)

Every term is invariant to a global scaling of either side and zero when the student's
features equal the teacher's up to scale. The RKD baseline is the first line alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from evl_lite.distillation.time_bins import bin_tokens, common_bins
from evl_lite.models.output import ModelOutput


def pairwise_distances(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distances ``[..., N, N]`` between the rows of ``x [..., N, d]``; the diagonal is 0.

    ``sqrt(max(|x_i|^2 + |x_j|^2 - 2 x_i.x_j, eps))`` keeps the gradient finite at coincident points.
    """
    x = x - x.mean(dim=-2, keepdim=True)  # translation-free; centring keeps the Gram formula precise
    sq = x.pow(2).sum(dim=-1)  # [..., N]
    d2 = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2 * x @ x.transpose(-1, -2)).clamp(min=eps)
    eye = torch.eye(x.shape[-2], dtype=torch.bool, device=x.device)
    return d2.sqrt().masked_fill(eye, 0.0)


def distance_relation(x: Tensor) -> Tensor:
    """psi_D: pairwise distances ``[..., N, N]`` over the mean positive distance (per leading index)."""
    d = pairwise_distances(x)
    positive = d > 0
    mean = (d * positive).sum(dim=(-1, -2), keepdim=True) / positive.sum(dim=(-1, -2), keepdim=True).clamp(
        min=1
    )
    return d / mean.clamp(min=1e-12)


def angle_relation(x: Tensor, eps: float = 1e-12) -> Tensor:
    """psi_A: ``[N, N, N]`` cosines of the angle at i between f_j - f_i and f_k - f_i, for ``x [N, d]``.

    From the Gram matrix G = x x^T, without building the ``[N, N, d]`` difference vectors:
    ``<f_j - f_i, f_k - f_i> = G_jk - G_ij - G_ik + G_ii``, divided by ``||f_j - f_i|| ||f_k - f_i||``;
    a zero-length side (j = i or k = i) gives 0, as normalising a zero vector does.
    """
    x = x - x.mean(dim=0, keepdim=True)  # translation-free; centring keeps the Gram formula precise
    g = x @ x.t()  # [N, N]
    sq = g.diagonal()  # [N]
    inv_len = (sq[:, None] + sq[None, :] - 2 * g).clamp(min=eps).rsqrt()  # [N, N], 1 / ||f_j - f_i||
    inv_len = inv_len.masked_fill(torch.eye(x.shape[0], dtype=torch.bool, device=x.device), 0.0)
    dots = g[None, :, :] - g[:, :, None] - g[:, None, :] + sq[:, None, None]  # [i, j, k]
    return dots * inv_len[:, :, None] * inv_len[:, None, :]


def rkd_distance_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Smooth L1 between psi_D of student ``[B, d_s]`` and teacher ``[B, d_t]`` features."""
    with torch.no_grad():
        target = distance_relation(teacher)
    return F.smooth_l1_loss(distance_relation(student), target)


def rkd_angle_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Smooth L1 between psi_A of student ``[B, d_s]`` and teacher ``[B, d_t]`` features."""
    with torch.no_grad():
        target = angle_relation(teacher)
    return F.smooth_l1_loss(angle_relation(student), target)


class GeometricRelationMatching(nn.Module):
    """Match sample distances, triplet angles and within-ECG token distances; no projector."""

    def __init__(
        self,
        distance_weight: float = 1.0,
        angle_weight: float = 2.0,
        token_weight: float = 1.0,
        n_bins: int | None = None,
    ):
        super().__init__()
        self.distance_weight, self.angle_weight, self.token_weight = (
            distance_weight,
            angle_weight,
            token_weight,
        )
        self.n_bins = n_bins  # None: the finest grid both token layouts fill (time_bins.common_bins)

    def relations(self, output: ModelOutput, n_bins: int) -> dict[str, Tensor]:
        """The three relation structures of one model: ``sample_distance [B, B]``, ``angle [B, B, B]``,
        ``token_distance [B, K, K]``."""
        pooled = output.pooled.float()
        binned = bin_tokens(output.tokens.float(), output.token_layout, n_bins)  # [B, K, d]
        return {
            "sample_distance": distance_relation(pooled),
            "angle": angle_relation(pooled),
            "token_distance": distance_relation(binned),
        }

    def forward(
        self, student: ModelOutput, teacher: ModelOutput, batch: dict | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        n_bins = self.n_bins or common_bins(student.token_layout, teacher.token_layout)
        s = self.relations(student, n_bins)
        with torch.no_grad():
            t = self.relations(teacher, n_bins)
        terms = {name: F.smooth_l1_loss(s[name], t[name]) for name in s}
        loss = (
            self.distance_weight * terms["sample_distance"]
            + self.angle_weight * terms["angle"]
            + self.token_weight * terms["token_distance"]
        )
        extras = {f"student_{k}": v.detach() for k, v in s.items()} | {
            f"teacher_{k}": v for k, v in t.items()
        }
        return loss, extras | {f"term_{k}": v.detach() for k, v in terms.items()}
