"""Distillation losses, one module per method, all called the same way.

Every loss is an ``nn.Module`` with ``forward(student_output, teacher_output, batch)``
returning ``(loss, extras)``: a scalar tensor and a dict of what its notebook draws.
Learnable projectors live inside the loss and train with the student; the teacher side
is detached, so it never receives gradients.

EVL-ECG components: ``CrossAttentionAlignment`` (cross_attention), ``OTFeatureMatching``
(optimal_transport), ``GeometricRelationMatching`` (relation).
Baselines: ``LogitKD`` (logit_kd), ``FitNet`` (fitnet), ``RKD`` (rkd),
``SimilarityPreserving`` (similarity_preserving), ``OFAKD`` (ofa), ``CRD`` (crd).
"""

from evl_lite.distillation.crd import CRD
from evl_lite.distillation.cross_attention import CrossAttentionAlignment
from evl_lite.distillation.fitnet import FitNet
from evl_lite.distillation.logit_kd import LogitKD
from evl_lite.distillation.ofa import OFAKD
from evl_lite.distillation.optimal_transport import OTFeatureMatching
from evl_lite.distillation.relation import GeometricRelationMatching
from evl_lite.distillation.rkd import RKD
from evl_lite.distillation.similarity_preserving import SimilarityPreserving

__all__ = [
    "CRD",
    "CrossAttentionAlignment",
    "FitNet",
    "GeometricRelationMatching",
    "LogitKD",
    "OFAKD",
    "OTFeatureMatching",
    "RKD",
    "SimilarityPreserving",
]
