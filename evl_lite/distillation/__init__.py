"""Distillation losses, one module per method, all called the same way.

Every loss is an ``nn.Module`` with ``forward(student_output, teacher_output, batch)``
returning ``(loss, extras)``: a scalar tensor and a dict of what its notebook draws.
Learnable projectors live inside the loss and train with the student; the teacher side
is detached, so it never receives gradients.
"""

from evl_lite.distillation.logit_kd import LogitKD

__all__ = ["LogitKD"]
