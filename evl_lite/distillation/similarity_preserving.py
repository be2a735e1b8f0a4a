"""Similarity-preserving knowledge distillation (Tung & Mori, ICCV 2019), the fourth baseline.

Two ECGs that the teacher finds similar should look similar to the student. With the
features of the B samples of a batch flattened to rows ``F [B, n]`` (any width per model):

    G = row_l2_normalise(F F^T)                 [B, B]
    L_SP = || G^s - G^t ||_F^2 / B^2
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from evl_lite.models.output import ModelOutput


def similarity_matrix(features: Tensor) -> Tensor:
    """Row-L2-normalised Gram matrix ``[B, B]`` of features ``[B, ...]`` (flattened per sample)."""
    flat = features.reshape(features.shape[0], -1)
    return F.normalize(flat @ flat.t(), p=2, dim=1)


def similarity_preserving_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """``||G^s - G^t||_F^2 / B^2``; the teacher side gets no gradient."""
    with torch.no_grad():
        g_t = similarity_matrix(teacher)
    diff = similarity_matrix(student) - g_t
    return diff.pow(2).sum() / student.shape[0] ** 2


class SimilarityPreserving(nn.Module):
    """SP-KD on the token maps (``features="tokens"``, as the paper uses activation maps) or pooled."""

    def __init__(self, features: str = "tokens"):
        super().__init__()
        if features not in ("tokens", "pooled"):
            raise ValueError(f"features must be 'tokens' or 'pooled'; got {features!r}")
        self.features = features

    def forward(
        self, student: ModelOutput, teacher: ModelOutput, batch: dict | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        s, t = getattr(student, self.features).float(), getattr(teacher, self.features).detach().float()
        loss = similarity_preserving_loss(s, t)
        return loss, {
            "student_similarity": similarity_matrix(s.detach()),
            "teacher_similarity": similarity_matrix(t),
        }
