"""EVL-ECG Lite: laptop-scale cross-architecture knowledge distillation for 12-lead ECG.

After "EVL-ECG: Efficient ECG Interpretation With Multi-Aspect Heterogeneous
Knowledge Distillation". The package holds every piece of logic the notebooks
use; the notebooks hold narrative, calls and figures.
"""

__version__ = "0.1.0"


def load_teacher(name_or_dir="synthetic"):
    """A shipped foundation teacher by name (``"synthetic"``, ``"ptbxl"``) or a carded directory.

    The weights' SHA-256 and the config are checked against the model card
    (:func:`evl_lite.foundation.hub.load_teacher`); imported on first call, so that
    ``import evl_lite`` stays light.
    """
    from evl_lite.foundation.hub import load_teacher as _load

    return _load(name_or_dir)
