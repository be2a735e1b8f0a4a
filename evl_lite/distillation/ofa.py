"""OFA-KD (Hao et al., NeurIPS 2023, "One-for-All"), the heterogeneous-distillation baseline.

Intermediate student features are projected into the *logit space*, where a CNN and a
transformer agree on what things mean, and each projection (and the student's own logits)
is matched to the teacher's predictions. Every stage k of the student gets a branch
``b_k``: a depthwise-separable convolution, global average pooling and a linear layer to
the classes. The loss is OFA's adaptive target enhancement, written here for multi-label
outputs: each class c is its own two-way distribution p = (sigmoid(z_c / tau), 1 - ...), whose
target outcome is the label y_c. With the one-hot target mask m over the two outcomes,

    L_OFA(z^s, z^t, y) = - mean_{b,c} sum_{o in {pos, neg}} [ (p^t_o + m_o)^eps - m_o ] log p^s_o

so the target outcome is weighted (1 + p^t)^eps - 1 and the other p^t^eps: with eps = 1 it is
the cross-entropy to the teacher (plain KD); eps > 1 lifts the weight of the true outcome when
the teacher is confident in it. Rows without a label (a label budget's transfer records) take
eps = 1 (no target to enhance). Total: sum over the branches and the final logits.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from evl_lite.models.output import ModelOutput


def ofa_loss(
    student_logits: Tensor, teacher_logits: Tensor, targets: Tensor, eps: float, temperature: float = 1.0,
    labelled: Tensor | None = None,
) -> Tensor:
    """The formula above: logits and targets [B, C]; ``labelled`` [B] bool (None: every row)."""
    p_t = torch.sigmoid(teacher_logits.detach().float() / temperature)  # [B, C]
    log_p_s = F.logsigmoid(student_logits.float() / temperature)  # log p^s_pos
    log_q_s = F.logsigmoid(-student_logits.float() / temperature)  # log p^s_neg
    m = targets.float()  # [B, C], 1: the positive outcome is the target
    w_pos = (p_t + m) ** eps - m  # [B, C]
    w_neg = ((1 - p_t) + (1 - m)) ** eps - (1 - m)
    if labelled is not None and not bool(labelled.all()):
        keep = labelled.view(-1, 1)
        w_pos = torch.where(keep, w_pos, p_t)  # eps = 1: the cross-entropy to the teacher
        w_neg = torch.where(keep, w_neg, 1 - p_t)
    return -(w_pos * log_p_s + w_neg * log_q_s).mean()


class LogitBranch(nn.Module):
    """One stage's features [B, C_k, T_k] -> class logits [B, n_classes] (OFA's projector)."""

    def __init__(self, channels: int, n_classes: int, width: int = 64, kernel: int = 7):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv1d(channels, channels, kernel, stride=2, padding=kernel // 2, groups=channels, bias=False),
            nn.Conv1d(channels, width, 1, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, features: Tensor) -> Tensor:
        return self.classifier(self.layers(features).mean(dim=2))


class OFAKD(nn.Module):
    """OFA-KD over the stages in ``stage_channels`` (the student's) and its final logits."""

    def __init__(self, stage_channels: tuple[int, ...], n_classes: int, eps: float = 1.5,
                 temperature: float = 1.0, stages: tuple[int, ...] | None = None):
        super().__init__()
        if eps <= 0 or temperature <= 0:
            raise ValueError("eps and temperature must be positive")
        # by default every stage but the last, whose features the student's own classifier reads
        self.stage_index = tuple(stages if stages is not None else range(len(stage_channels) - 1))
        self.branches = nn.ModuleList(LogitBranch(stage_channels[k], n_classes) for k in self.stage_index)
        self.eps, self.temperature = eps, temperature

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: dict | None = None
                ) -> tuple[Tensor, dict[str, Tensor]]:
        if student.stages is None:
            raise ValueError("OFA-KD needs the student's stage features (ModelOutput.stages)")
        if batch is None or "y" not in batch:
            raise ValueError("OFA-KD needs the batch's labels (batch['y']) for its target enhancement")
        y, labelled = batch["y"], batch.get("labelled")
        branch_logits = [b(student.stages[k]) for k, b in zip(self.stage_index, self.branches, strict=True)]
        terms = [ofa_loss(z, teacher.logits, y, self.eps, self.temperature, labelled)
                 for z in (*branch_logits, student.logits)]
        return torch.stack(terms).sum(), {"branch_logits": [z.detach() for z in branch_logits]}
