"""The foundation teacher: made once at scale, shipped inside the package, loaded like a hub model.

A foundation model is worth distilling because it has seen far more data and compute than any
one site (Bommasani et al. 2021). The course's teacher is made that way, once, by
``python -m evl_lite foundation train`` (masked-patch pretraining, then supervised
fine-tuning), and every workshop distils from the shipped weights:

- :mod:`~evl_lite.foundation.corpus`: which records a foundation teacher may see (the synthetic
  corpus's seeds, disjoint from every seed the workshop and its evaluation use),
- :mod:`~evl_lite.foundation.recipe`: its architecture and schedules,
- :mod:`~evl_lite.foundation.make`: the command that trains one and writes its model card,
- :mod:`~evl_lite.foundation.hub`: model cards, SHA-256 verification and :func:`load_teacher`.
"""

from evl_lite.foundation.hub import ModelCard, load_teacher, shipped_teachers

__all__ = ["ModelCard", "load_teacher", "shipped_teachers"]
