"""``python -m evl_lite foundation ensemble``: does an ensemble of teachers beat a single one?

Hinton, Vinyals and Dean (2015) distil an ensemble into one model: the ensemble's prediction is
the mean of its members' probabilities, p_ens(c | x) = (1/M) sum_m p_m(c | x). This measures it
before anyone distils from it: each member's macro-AUC and the ensemble's, on validation (where a
choice may be made) and on test (reported, never chosen on), with 95% bootstrap intervals.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from evl_lite.data.benchmark import load_benchmark_data
from evl_lite.evaluation.metrics import bootstrap_ci, macro_auc
from evl_lite.foundation.hub import load_teacher
from evl_lite.foundation.recipe import foundation_recipe
from evl_lite.training.loop import predict


def ensemble_probabilities(member_probs: Sequence[np.ndarray]) -> np.ndarray:
    """p_ens = mean over members of their probabilities: [M, N, C] -> [N, C]."""
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in member_probs])  # [M, N, C]
    if stacked.ndim != 3 or len(stacked) < 1:
        raise ValueError(f"member probabilities must be M arrays of shape [N, C]; got {stacked.shape}")
    return stacked.mean(axis=0)


def compare_ensemble(
    teachers: Sequence[str | os.PathLike], source: str, path: str | os.PathLike | None = None,
    progress: bool = False, n_boot: int = 1000, seed: int = 0,
) -> dict:
    """Validation and test macro-AUC of each teacher and of their probability-averaging ensemble."""
    if len(set(map(str, teachers))) < len(teachers) or len(teachers) < 2:
        raise ValueError(f"an ensemble needs at least two different teachers; got {list(map(str, teachers))}")
    data = load_benchmark_data(source, path, progress=progress)
    finetune = foundation_recipe(source).finetune
    window = dict(crop=finetune.crop, n_windows=finetune.eval_windows)
    probs: dict[str, dict[str, np.ndarray]] = {}
    for t in teachers:
        model = load_teacher(t)
        probs[str(t)] = {split: predict(model, getattr(data, split).x, **window) for split in ("val", "test")}
    probs["ensemble"] = {split: ensemble_probabilities([p[split] for p in probs.values()])
                         for split in ("val", "test")}
    rows = {}
    for name, p in probs.items():
        rows[name] = {}
        for split in ("val", "test"):
            y = getattr(data, split).y
            low, high = bootstrap_ci(macro_auc, y, p[split], n_boot=n_boot, seed=seed)
            auc = float(macro_auc(y, p[split])[0])
            rows[name][split] = {"macro_auc": auc, "ci95": [float(low), float(high)]}
    return {"source": source, "path": str(path) if path else None, "n_val": len(data.val),
            "n_test": len(data.test), "teachers": [str(t) for t in teachers], "rows": rows}


def ensemble_markdown(result: dict) -> str:
    """The comparison as a Markdown table: each teacher, then the ensemble."""
    lines = [f"| teacher | validation macro-AUC ({result['n_val']} records) "
             f"| test macro-AUC ({result['n_test']} records) |", "|---|---|---|"]
    for name, row in result["rows"].items():
        cells = [f"{row[s]['macro_auc']:.3f} ({row[s]['ci95'][0]:.3f}-{row[s]['ci95'][1]:.3f})"
                 for s in ("val", "test")]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
