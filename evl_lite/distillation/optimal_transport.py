"""Optimal-transport feature matching: the second EVL-ECG component.

The student's N_s tokens and the teacher's N_t tokens are two point clouds (two empirical
distributions) in one space once the student's are projected to the teacher's width,
``ŝ_i = W s_i``. Optimal transport matches them as sets, without assuming which token
corresponds to which (Cuturi 2013, "Sinkhorn distances"):

    C_ij = 1 - cos(ŝ_i, t_j)                                 cost in [0, 2]
    P*   = argmin_{P 1 = a, P^T 1 = b, P >= 0} <P, C> - eps * H(P)
    L    = <P*, C>                                            transport cost under the plan

Cosine cost: the two models' features have unrelated scales, and a bounded cost makes one
regularisation ``eps`` mean the same thing for every batch (eps is in units of the cost).
P* is found by Sinkhorn through POT's batched solver (``ot.solve_batch``, one problem per
ECG in the batch). The log-domain iterations stay finite for eps down to 1e-3 even in
float32; when ``max(C) / eps <= 50`` the kernel ``exp(-C / eps) >= e^-50`` cannot underflow
and the cheaper scaling-domain iterations give the same plan about 3x faster. The plan is held
fixed when differentiating (envelope theorem: dL/dC = P* at the optimum), so gradients
reach the student and the projector through C only; the teacher side is detached.

Marginals: ``"uniform"`` (a_i = 1/N_s, b_j = 1/N_t: every token carries the same mass) or
``"norm"`` (mass proportional to each token's norm, so high-energy tokens such as those
over the QRS complex must be matched more than quiet baseline tokens).
"""

from __future__ import annotations

import ot
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from evl_lite.models.output import ModelOutput

MARGINALS = ("uniform", "norm")
SCALING_DOMAIN_LIMIT = 50.0  # max(C) / eps up to which exp(-C / eps) is safe in float32


def cosine_cost(x: Tensor, y: Tensor) -> Tensor:
    """``C [B, N, M]`` with ``C_ij = 1 - cos(x_i, y_j)`` for ``x [B, N, d]``, ``y [B, M, d]``."""
    return 1 - F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).transpose(-1, -2)


def token_marginals(tokens: Tensor, kind: str) -> Tensor:
    """Weights ``[B, N]`` summing to 1 per sample: uniform, or proportional to the token norms."""
    if kind == "uniform":
        return torch.full(tokens.shape[:2], 1.0 / tokens.shape[1], dtype=tokens.dtype, device=tokens.device)
    if kind == "norm":
        norms = tokens.detach().norm(dim=-1) + 1e-8  # [B, N]
        return norms / norms.sum(dim=1, keepdim=True)
    raise ValueError(f"marginals must be one of {MARGINALS}; got {kind!r}")


def sinkhorn_plans(
    cost: Tensor, a: Tensor, b: Tensor, reg: float, max_iter: int = 200, tol: float = 1e-4
) -> Tensor:
    """Entropic OT plans ``[B, N, M]`` for a batch of costs, Sinkhorn via POT, no gradient.

    Log-domain iterations unless ``max(C) / reg <= SCALING_DOMAIN_LIMIT`` makes the scaling domain safe.
    """
    if reg <= 0:
        raise ValueError(f"reg must be positive; got {reg}")
    with torch.no_grad():
        method = "sinkhorn" if float(cost.max()) / reg <= SCALING_DOMAIN_LIMIT else "log_sinkhorn"
        result = ot.solve_batch(
            cost.detach(),
            reg=reg,
            a=a.to(cost.dtype),
            b=b.to(cost.dtype),
            method=method,
            max_iter=max_iter,
            tol=tol,
            grad="detach",
        )
    return result.plan


class OTFeatureMatching(nn.Module):
    """Project the student's tokens, transport them onto the teacher's, pay the transport cost."""

    def __init__(
        self,
        d_student: int,
        d_teacher: int,
        reg: float = 0.05,
        marginals: str = "uniform",
        max_iter: int = 100,
        tol: float = 1e-3,
    ):
        super().__init__()
        if marginals not in MARGINALS:
            raise ValueError(f"marginals must be one of {MARGINALS}; got {marginals!r}")
        if reg <= 0:
            raise ValueError(f"reg must be positive; got {reg}")
        self.projector = nn.Linear(d_student, d_teacher)  # W: [d_s] -> [d_t]
        self.reg, self.marginals, self.max_iter, self.tol = reg, marginals, max_iter, tol

    def forward(
        self, student: ModelOutput, teacher: ModelOutput, batch: dict | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        s_hat = self.projector(student.tokens)  # [B, N_s, d_t]
        t = teacher.tokens.detach().float()  # [B, N_t, d_t]
        cost = cosine_cost(s_hat, t)  # [B, N_s, N_t]
        a = token_marginals(s_hat, self.marginals)  # [B, N_s]
        b = token_marginals(t, self.marginals)  # [B, N_t]
        plan = sinkhorn_plans(cost, a, b, self.reg, self.max_iter, self.tol)  # [B, N_s, N_t]
        loss = (plan * cost).sum(dim=(1, 2)).mean()  # <P*, C>, averaged over the batch
        return loss, {"plan": plan, "cost": cost.detach(), "a": a, "b": b}
