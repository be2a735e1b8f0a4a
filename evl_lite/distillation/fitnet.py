"""FitNets hints (Romero et al., ICLR 2015), the feature-matching baseline.

A regressor maps the student's features to the teacher's width and an L2 loss pulls them
onto the teacher's "hint". FitNets assume both feature maps share their positions; a CNN's
N_s time positions and a transformer's 12 x P lead patches do not, so both are first put
on one time grid of K bins (``time_bins.bin_tokens``; the teacher's 12 leads are averaged):

    L_FitNet = mean || r(bin(s)) - bin(t) ||^2,        r: [d_s] -> [d_t] linear regressor

This hand-made alignment is what the cross-attention component replaces with a learned one.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from evl_lite.distillation.time_bins import bin_tokens, common_bins
from evl_lite.models.output import ModelOutput


class FitNet(nn.Module):
    """Regress the student's time-binned tokens onto the teacher's."""

    def __init__(self, d_student: int, d_teacher: int, n_bins: int | None = None):
        super().__init__()
        self.regressor = nn.Linear(d_student, d_teacher)
        self.n_bins = n_bins  # None: the finest grid both layouts fill

    def forward(
        self, student: ModelOutput, teacher: ModelOutput, batch: dict | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        n_bins = self.n_bins or common_bins(student.token_layout, teacher.token_layout)
        hint = bin_tokens(teacher.tokens.detach().float(), teacher.token_layout, n_bins)  # [B, K, d_t]
        guided = self.regressor(bin_tokens(student.tokens, student.token_layout, n_bins))  # [B, K, d_t]
        return F.mse_loss(guided, hint), {"hint": hint, "guided": guided.detach()}
