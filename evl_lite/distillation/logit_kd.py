"""Logit distillation (Hinton, Vinyals & Dean 2015) in its multi-label form.

With sigmoid outputs each class c is its own two-way distribution. With temperature tau,
p_c = sigmoid(z_c / tau) for the teacher (t) and the student (s), and

    L_KD = tau^2 * mean_{b,c} KL( Bernoulli(p^t_{b,c}) || Bernoulli(p^s_{b,c}) )
         = tau^2 * mean_{b,c} [ BCE(p^s, p^t) - H(p^t) ],

the tau^2 factor keeping gradient magnitudes comparable across temperatures (Hinton et al.).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from evl_lite.models.output import ModelOutput


def binary_kl_with_logits(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Per-element KL(Bernoulli(sigmoid(t/tau)) || Bernoulli(sigmoid(s/tau))), shape of the inputs."""
    p_t = torch.sigmoid(teacher_logits / temperature)
    log_p_s = F.logsigmoid(student_logits / temperature)  # log sigmoid(s)
    log_q_s = F.logsigmoid(-student_logits / temperature)  # log (1 - sigmoid(s))
    log_p_t = F.logsigmoid(teacher_logits / temperature)
    log_q_t = F.logsigmoid(-teacher_logits / temperature)
    return p_t * (log_p_t - log_p_s) + (1 - p_t) * (log_q_t - log_q_s)


class LogitKD(nn.Module):
    """Multi-label Hinton KD on the logits; no learnable parts."""

    def __init__(self, temperature: float = 2.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.temperature = temperature

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: dict | None = None
                ) -> tuple[Tensor, dict[str, Tensor]]:
        t_logits = teacher.logits.detach()
        kl = binary_kl_with_logits(student.logits, t_logits, self.temperature)  # [B, C]
        loss = self.temperature**2 * kl.mean()
        return loss, {"teacher_probs": torch.sigmoid(t_logits / self.temperature),
                      "student_probs": torch.sigmoid(student.logits.detach() / self.temperature)}
