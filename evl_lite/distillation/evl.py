"""EVL-ECG = logit KD + cross-attention alignment + OT matching + relation matching, and the
methods it is compared with, each a set of weighted losses for ``training.Distillation``.

    L_EVL = w_sup * BCE + w_kd * L_KD + w_ca * L_CA + w_ot * L_OT + w_rel * L_REL

An ablation ``evl-no-<component>`` drops one term; ``kd+<component>`` keeps one component
with logit KD. ``scratch`` is the student with BCE only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

from torch import nn

from evl_lite.constants import SUPERCLASSES
from evl_lite.distillation.crd import CRD
from evl_lite.distillation.cross_attention import CrossAttentionAlignment
from evl_lite.distillation.fitnet import FitNet
from evl_lite.distillation.logit_kd import LogitKD
from evl_lite.distillation.names import ABLATIONS, BASELINES, EVL_COMPONENTS, METHODS, SINGLE_COMPONENT
from evl_lite.distillation.ofa import OFAKD
from evl_lite.distillation.optimal_transport import OTFeatureMatching
from evl_lite.distillation.relation import GeometricRelationMatching
from evl_lite.distillation.rkd import RKD
from evl_lite.distillation.similarity_preserving import SimilarityPreserving

__all__ = [
    "ABLATIONS",
    "BASELINES",
    "EVL_COMPONENTS",
    "METHODS",
    "SINGLE_COMPONENT",
    "DistillConfig",
    "method_losses",
]


@dataclass(frozen=True)
class DistillConfig:
    """Weights and settings of every distillation loss: one config for all methods."""

    temperature: float = 2.0  # logit KD
    kd_weight: float = 1.0
    cross_attention_weight: float = 1.0
    cross_attention_heads: int = 4
    ot_weight: float = 1.0
    ot_reg: float = 0.05  # entropic regularisation, in units of the cosine cost (which lies in [0, 2])
    ot_marginals: str = "uniform"
    relation_weight: float = 1.0
    fitnet_weight: float = 1.0
    rkd_weight: float = 1.0
    sp_weight: float = 1.0
    ofa_weight: float = 1.0  # OFA-KD replaces logit KD (its loss includes the final logits)
    ofa_eps: float = 1.5  # target enhancement exponent (OFA-KD's value for CNN students)
    ofa_temperature: float = 1.0
    crd_weight: float = 0.8  # CRD's beta, added to logit KD as in its paper's best variant
    crd_temperature: float = 0.07
    crd_dim: int = 128

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, text: str) -> DistillConfig:
        """``'{"ot_weight": 0.5}'`` -> the default config with those fields changed; bad fields are errors."""
        try:
            changes = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"distillation settings must be a JSON object: {exc}") from None
        if not isinstance(changes, dict):
            raise ValueError(f"distillation settings must be a JSON object, not {text!r}")
        valid = {f.name: f.type for f in fields(cls)}
        if unknown := sorted(set(changes) - set(valid)):
            raise ValueError(f"unknown distillation setting(s) {unknown}; choose from {', '.join(valid)}")
        return replace(cls(), **changes)


def method_losses(
    method: str, d_student: int, d_teacher: int, config: DistillConfig | None = None,
    stage_channels: tuple[int, ...] | None = None,
) -> tuple[dict[str, nn.Module], dict[str, float]]:
    """The losses and weights of ``method`` (one of ``METHODS``); empty for ``scratch``.

    ``stage_channels``: the student's stages (OFA-KD's branches; default ``StudentConfig``'s).
    """
    c = config or DistillConfig()
    if stage_channels is None:
        from evl_lite.models.student import StudentConfig

        stage_channels = StudentConfig().stage_channels
    factories = {
        "kd": (lambda: LogitKD(c.temperature), c.kd_weight),
        "cross_attention": (
            lambda: CrossAttentionAlignment(d_student, d_teacher, c.cross_attention_heads),
            c.cross_attention_weight,
        ),
        "ot": (lambda: OTFeatureMatching(d_student, d_teacher, c.ot_reg, c.ot_marginals), c.ot_weight),
        "relation": (lambda: GeometricRelationMatching(), c.relation_weight),
        "fitnet": (lambda: FitNet(d_student, d_teacher), c.fitnet_weight),
        "rkd": (lambda: RKD(), c.rkd_weight),
        "sp": (lambda: SimilarityPreserving(), c.sp_weight),
        "ofa": (lambda: OFAKD(stage_channels, len(SUPERCLASSES), c.ofa_eps, c.ofa_temperature), c.ofa_weight),
        "crd": (lambda: CRD(d_student, d_teacher, c.crd_dim, c.crd_temperature), c.crd_weight),
    }
    names = loss_names(method)
    return {n: factories[n][0]() for n in names}, {n: factories[n][1] for n in names}


# The DistillConfig fields each loss reads (its weight included).
LOSS_FIELDS = {
    "kd": ("temperature", "kd_weight"),
    "cross_attention": ("cross_attention_weight", "cross_attention_heads"),
    "ot": ("ot_weight", "ot_reg", "ot_marginals"),
    "relation": ("relation_weight",),
    "fitnet": ("fitnet_weight",),
    "rkd": ("rkd_weight",),
    "sp": ("sp_weight",),
    "ofa": ("ofa_weight", "ofa_eps", "ofa_temperature"),
    "crd": ("crd_weight", "crd_temperature", "crd_dim"),
}


def method_settings(method: str, config: DistillConfig | None = None) -> dict:
    """The settings ``method``'s losses read from ``config``: what a stored run is checked against."""
    c = (config or DistillConfig()).to_dict()
    return {f: c[f] for name in loss_names(method) for f in LOSS_FIELDS[name]}


def loss_names(method: str) -> tuple[str, ...]:
    """The losses that make ``method`` (besides the supervised BCE)."""
    if method == "scratch":
        names: tuple[str, ...] = ()
    elif method == "kd":
        names = ("kd",)
    elif method in ("fitnet", "rkd", "sp", "crd"):
        names = ("kd", method)  # each feature/relation baseline is added to logit KD, as is EVL's
    elif method == "ofa":
        names = ("ofa",)  # OFA-KD's loss on the final logits takes logit KD's place
    elif method == "evl":
        names = ("kd", *EVL_COMPONENTS)
    elif method in SINGLE_COMPONENT:
        names = ("kd", method.removeprefix("kd+"))
    elif method in ABLATIONS:
        names = ("kd", *(n for n in EVL_COMPONENTS if n != method.removeprefix("evl-no-")))
    else:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return names
