"""Multi-head cross-attention alignment: the first EVL-ECG component.

A CNN's time positions and a transformer's lead patches do not correspond one to one
(``N_s != N_t``, ``d_s != d_t``), so "student token i should look like teacher token i"
cannot even be written. Instead each student token asks the teacher which of its tokens
matter for it. With the teacher's tokens normalised, ``t̄ = LayerNorm(t)`` (no affine, no
gradient), and the student's projected to the teacher's width, ``ŝ = W_s s``:

    q_h = W_q^h ŝ,   k_h = W_k^h t̄                        per head h, width d_h = d_t / H
    A_h = softmax(q_h k_h^T / sqrt(d_h))                    [N_s, N_t], rows sum to 1
    a   = concat_h (A_h t̄_h)                                the teacher resampled at the student's positions
    L   = mean || ŝ - a ||^2

The values are the teacher's own (normalised) features split into H channel groups, as in
multi-head attention with an identity value map: the target is always a convex combination
of teacher tokens, so the loss cannot be zeroed by shrinking a learned value projection.
The attention maps ``A [B, H, N_s, N_t]`` map back onto leads and time through the two
models' token layouts.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from evl_lite.models.output import ModelOutput


class CrossAttentionAlignment(nn.Module):
    """Student tokens query the teacher's tokens; the student is pulled toward what it reads."""

    def __init__(self, d_student: int, d_teacher: int, n_heads: int = 4, d_key: int = 16):
        super().__init__()
        if d_teacher % n_heads:
            raise ValueError(f"d_teacher ({d_teacher}) must be a multiple of n_heads ({n_heads})")
        self.n_heads = n_heads
        self.d_key = d_key  # per-head width of queries and keys
        self.student_proj = nn.Linear(d_student, d_teacher)  # W_s: [d_s] -> [d_t]
        self.query = nn.Linear(d_teacher, n_heads * self.d_key, bias=False)  # W_q for all heads
        self.key = nn.Linear(d_teacher, n_heads * self.d_key, bias=False)  # W_k for all heads

    def attend(self, student_tokens: Tensor, teacher_tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(ŝ [B, N_s, d_t], aligned a [B, N_s, d_t], attention A [B, H, N_s, N_t])``."""
        b, n_s, _ = student_tokens.shape
        n_t, d_t = teacher_tokens.shape[1:]
        t_bar = F.layer_norm(teacher_tokens.detach().float(), (d_t,))  # [B, N_t, d_t], no gradient
        s_hat = self.student_proj(student_tokens)  # [B, N_s, d_t]
        q = self.query(s_hat).view(b, n_s, self.n_heads, self.d_key).transpose(1, 2)  # [B, H, N_s, d_k]
        k = self.key(t_bar).view(b, n_t, self.n_heads, self.d_key).transpose(1, 2)  # [B, H, N_t, d_k]
        attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d_key), dim=-1)  # [B, H, N_s, N_t]
        v = t_bar.view(b, n_t, self.n_heads, d_t // self.n_heads).transpose(1, 2)  # [B, H, N_t, d_t / H]
        aligned = (attention @ v).transpose(1, 2).reshape(b, n_s, d_t)  # [B, N_s, d_t]
        return s_hat, aligned, attention

    def forward(
        self, student: ModelOutput, teacher: ModelOutput, batch: dict | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        s_hat, aligned, attention = self.attend(student.tokens, teacher.tokens)
        loss = F.mse_loss(s_hat, aligned)
        return loss, {"attention": attention.detach(), "aligned": aligned.detach()}
