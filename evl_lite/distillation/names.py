"""The names of the distillation methods, and their parsing: plain strings, no torch.

Kept apart from :mod:`evl_lite.distillation.evl` (which builds the losses) so the command
line can list and check methods without importing the models (``--help`` in a second).
"""

from __future__ import annotations

EVL_COMPONENTS = ("cross_attention", "ot", "relation")
BASELINES = ("scratch", "kd", "fitnet", "rkd", "sp", "ofa", "crd")
ABLATIONS = tuple(f"evl-no-{c}" for c in EVL_COMPONENTS)
SINGLE_COMPONENT = tuple(f"kd+{c}" for c in EVL_COMPONENTS)  # one component with logit KD (notebooks 04-06)
METHODS = (*BASELINES, "evl", *ABLATIONS, *SINGLE_COMPONENT)
DEFAULT_METHODS = (*BASELINES, "evl", *ABLATIONS)  # the experiment's


def parse_methods(text: str | list[str]) -> list[str]:
    """``"kd,evl"`` or a list -> validated method names, in order, without repeats."""
    names = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ValueError(f"unknown method(s) {unknown or names}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(names))
