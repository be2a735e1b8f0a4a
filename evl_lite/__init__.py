"""EVL-ECG Lite: laptop-scale cross-architecture knowledge distillation for 12-lead ECG.

After "EVL-ECG: Efficient ECG Interpretation With Multi-Aspect Heterogeneous
Knowledge Distillation". The package holds every piece of logic the notebooks
use; the notebooks hold narrative, calls and figures.
"""

__version__ = "0.1.0"
