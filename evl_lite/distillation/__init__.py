"""Distillation losses, one module per method, all called the same way, and what they read.

Every loss is an ``nn.Module`` with ``forward(student_output, teacher_output, batch)``
returning ``(loss, extras)``: a scalar tensor and a dict of what its notebook draws.
Learnable projectors live inside the loss and train with the student; the teacher side
is detached, so it never receives gradients.

EVL-ECG components: ``CrossAttentionAlignment`` (cross_attention), ``OTFeatureMatching``
(optimal_transport), ``GeometricRelationMatching`` (relation); ``evl`` combines them.
Baselines: ``LogitKD`` (logit_kd), ``FitNet`` (fitnet), ``RKD`` (rkd),
``SimilarityPreserving`` (similarity_preserving), ``OFAKD`` (ofa), ``CRD`` (crd).
``teacher_cache`` holds the frozen teacher's outputs; ``names`` the method names (no torch).

The loss classes are imported on first use (PEP 562), so ``evl_lite.distillation.names``
stays light for the command line.
"""

import importlib

_EXPORTS = {
    "CRD": "crd",
    "CrossAttentionAlignment": "cross_attention",
    "FitNet": "fitnet",
    "GeometricRelationMatching": "relation",
    "LogitKD": "logit_kd",
    "OFAKD": "ofa",
    "OTFeatureMatching": "optimal_transport",
    "RKD": "rkd",
    "SimilarityPreserving": "similarity_preserving",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
