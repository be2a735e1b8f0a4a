"""Contrastive representation distillation (Tian, Krishnan & Isola, ICLR 2020), a baseline.

The student's embedding of a record should be closer to the teacher's embedding of the same
record than to the teacher's embeddings of other records. Both pooled embeddings are projected
to a shared width and L2-normalised, s_i = norm(g_s(h^s_i)), t_j = norm(g_t(h^t_j)), and with
temperature tau the contrastive objective, over the B records of a batch as negatives
(CRD's memory bank of past embeddings replaced by the batch, its InfoNCE form), is

    L_CRD = 1/2 [ CE(S T^T / tau, I) + CE(T S^T / tau, I) ],      S, T [B, k]

where CE(M, I) = -1/B sum_i log softmax_j(M_ij) at j = i: the student anchors pick their
teacher among the batch, and the teacher anchors their student (CRD's two critics).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from evl_lite.models.output import ModelOutput


def crd_loss(student_embedding: Tensor, teacher_embedding: Tensor, temperature: float) -> Tensor:
    """The symmetric contrastive loss above for L2-normalised embeddings [B, k] (the teacher's detached)."""
    logits = student_embedding @ teacher_embedding.t() / temperature  # [B, B], positives on the diagonal
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


class CRD(nn.Module):
    """CRD on the pooled embeddings, with one linear embedding head per side (both learnable)."""

    def __init__(self, d_student: int, d_teacher: int, dim: int = 128, temperature: float = 0.07):
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.embed_student = nn.Linear(d_student, dim)
        self.embed_teacher = nn.Linear(d_teacher, dim)
        self.temperature = temperature

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: dict | None = None
                ) -> tuple[Tensor, dict[str, Tensor]]:
        s = F.normalize(self.embed_student(student.pooled.float()), dim=1)  # [B, k]
        t = F.normalize(self.embed_teacher(teacher.pooled.detach().float()), dim=1)  # [B, k]
        if len(s) < 2:  # no negatives: nothing to contrast
            return s.sum() * 0.0, {"similarity": (s @ t.t()).detach()}
        return crd_loss(s, t, self.temperature), {"similarity": (s @ t.t()).detach()}
