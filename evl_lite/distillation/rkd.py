"""Relational knowledge distillation (Park, Kim, Lu & Cho, CVPR 2019), the classic baseline.

On the pooled embeddings of a batch, with psi_D and psi_A from ``relation``:

    L_RKD = w_D * SmoothL1(psi_D^s, psi_D^t) + w_A * SmoothL1(psi_A^s, psi_A^t)

as in the reference implementations (RepDistiller, torchdistill): distances divided by the
mean positive distance, angles as cosines over all triplets. The paper weights are
w_D = 25, w_A = 50 with their losses; we default to 1 and 2 and let the caller scale.
"""

from __future__ import annotations

from torch import Tensor, nn

from evl_lite.distillation.relation import rkd_angle_loss, rkd_distance_loss
from evl_lite.models.output import ModelOutput


class RKD(nn.Module):
    """Distance + angle relations of the pooled embeddings; no learnable parts."""

    def __init__(self, distance_weight: float = 1.0, angle_weight: float = 2.0):
        super().__init__()
        self.distance_weight, self.angle_weight = distance_weight, angle_weight

    def forward(
        self, student: ModelOutput, teacher: ModelOutput, batch: dict | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        s, t = student.pooled.float(), teacher.pooled.detach().float()
        distance, angle = rkd_distance_loss(s, t), rkd_angle_loss(s, t)
        loss = self.distance_weight * distance + self.angle_weight * angle
        return loss, {"distance": distance.detach(), "angle": angle.detach()}
