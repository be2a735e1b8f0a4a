"""Does EVL earn its place? The committed studies' answer, one setting per line, shipped with the package.

For every setting (one label budget of a single-split study, or a 10-fold rotation read pooled):
the best baseline chosen on validation, EVL's paired test macro-AUC difference d against it with
its 95% bootstrap interval, whether d clears the paper's bar (d >= +0.01 with the interval above
zero), the teacher, and what each component adds: EVL minus EVL without it, the mean over seeds
of the paired test macro-AUC differences.

``python -m evl_lite headline results/DIR[@BUDGET] ... --page docs/results.md`` writes
``headline.json`` beside this module from committed results, and the same lines into the page's
``<!-- headline:begin/end -->`` block; tests regenerate both from the sources named, so notebook
07 prints in Colab (where ``results/`` is not installed) the numbers the results page shows.
"""

from __future__ import annotations

import json
from pathlib import Path

from evl_lite.atomic import write_json_atomic
from evl_lite.data.label_budget import ALL
from evl_lite.distillation.names import BASELINES, EVL_COMPONENTS
from evl_lite.errors import ECGDataError

HEADLINE_FILE = Path(__file__).with_name("headline.json")
PAGE_MARKERS = ("<!-- headline:begin -->", "<!-- headline:end -->")
BAR = 0.01  # the margin the paper reports over its best baseline (up to +2.4 AUC points)
COMPONENT_NAMES = {
    "cross_attention": "cross-attention alignment",
    "ot": "optimal transport",
    "relation": "relation matching",
}


def _source(spec: str) -> tuple[Path, str | None]:
    """``results/DIR`` (every budget) or ``results/DIR@BUDGET`` (that one)."""
    directory, _, budget = spec.partition("@")
    return Path(directory), budget or None


def _setting(name: str, source: str, aucs: dict, comparisons: dict, teacher: float, seeds: int) -> dict:
    """One setting's reading, from its mean test macro-AUCs and its comparisons with the best baseline."""
    best = comparisons["evl"]["against"]
    d, ci = comparisons["evl"]["mean"], comparisons["evl"]["ci95"]
    return {
        "setting": name,
        "source": source,
        "seeds": seeds,
        "macro_auc": aucs,
        "teacher_macro_auc": teacher,
        "baselines": [m for m in aucs if m in BASELINES and m != "scratch"],
        "best_baseline": best,
        "evl_vs_best": {"mean": d, "ci95": ci},
        "clears_bar": bool(d >= BAR and ci[0] > 0),
        # EVL - EVL without the component: the mean of paired differences is the difference of means
        "component_gain": {
            c: aucs["evl"] - aucs[f"evl-no-{c}"] for c in EVL_COMPONENTS if f"evl-no-{c}" in aucs
        },
    }


def _changed_settings(results: dict) -> str:
    """``", distillation settings ot_reg=0.1"`` for settings changed from the defaults, else ``""``."""
    from dataclasses import asdict

    from evl_lite.distillation.evl import DistillConfig

    defaults = asdict(DistillConfig())
    changed = [f"{k}={v}" for k, v in results.get("distill_config", {}).items() if defaults.get(k, v) != v]
    return f", distillation settings {', '.join(changed)}" if changed else ""


def settings_of(results: dict, source: str, budget: str | None = None) -> list[dict]:
    """The settings one ``results.json`` holds: its rotation, or each label budget (or the one asked)."""
    data = Path(results["path"]).name if results["data"] == "ptbxl" else results["data"]
    data += _changed_settings(results)
    seeds = len(results["seeds"])
    if results.get("folds") == "rotate":
        s = results["summary"]
        name = f"{data}, 10-fold rotation ({seeds} seeds each), pooled over {s['n_records']} records"
        aucs = {m: r["pooled_macro_auc"]["mean"] for m, r in s["table"].items()}
        comparisons = {m: {k: c[k] for k in ("against", "mean", "ci95")} for m, c in s["comparisons"].items()}
        return [_setting(name, source, aucs, comparisons, s["teacher"]["pooled_macro_auc"], seeds)]
    budgets = results.get("budgets") or [{"labelled": ALL, "summary": results["summary"]}]
    chosen = [b for b in budgets if budget is None or str(b["labelled"]) == budget]
    if not chosen:
        held = ", ".join(str(b["labelled"]) for b in budgets)
        raise ECGDataError(source, f"no label budget {budget!r} (it holds {held})")
    out = []
    for b in chosen:
        s = b["summary"]
        if "evl" not in s.get("comparisons", {}):
            raise ECGDataError(
                source, f"no EVL run compared with a baseline (methods {', '.join(s['table'])})"
            )
        labels = (
            f"all {results['n_train']:,} labels"
            if b["labelled"] == ALL
            else f"{b['labelled']} labels + {b['n_transfer']:,} transfer records"
        )
        name = f"{data}, {labels}, {seeds} seeds, {results['n_test']:,} test records"
        aucs = {m: r["macro_auc"]["mean"] for m, r in s["table"].items()}
        comparisons = {
            m: {"against": c["against"], "mean": c["macro_auc"]["mean"], "ci95": c["macro_auc"]["ci95"]}
            for m, c in s["comparisons"].items()
        }
        out.append(_setting(name, source, aucs, comparisons, results["teacher"]["test_macro_auc"], seeds))
    return out


def headline(specs: list[str]) -> dict:
    """The reading of every setting of the given ``DIR[@BUDGET]`` results, in order."""
    rows = []
    for spec in specs:
        directory, budget = _source(spec)
        path = directory / "results.json"
        if not path.is_file():
            raise ECGDataError(
                path, f"is missing: run `python -m evl_lite experiment --out {directory}` first"
            )
        rows += settings_of(json.loads(path.read_text()), spec, budget)
    return {"command": "python -m evl_lite headline " + " ".join(specs), "bar": BAR, "settings": rows}


def write_headline(specs: list[str], path: str | Path = HEADLINE_FILE) -> dict:
    """Write :func:`headline` of ``specs`` to ``path`` (the packaged ``headline.json`` by default)."""
    result = headline(specs)
    write_json_atomic(Path(path), result)
    return result


def load_headline(path: str | Path = HEADLINE_FILE) -> dict:
    """The packaged reading (written by ``python -m evl_lite headline``)."""
    return json.loads(Path(path).read_text())


def headline_lines(result: dict) -> list[str]:
    """Human-readable lines: per setting, EVL against the best baseline, then each component's gain."""
    lines = []
    for s in result["settings"]:
        best, evl = s["best_baseline"], s["evl_vs_best"]
        verdict = "clears" if s["clears_bar"] else "does not clear"
        lines.append(
            f"{s['setting']}: best baseline on validation {best} {s['macro_auc'][best]:.3f} "
            f"(of {len(s['baselines'])}: {', '.join(s['baselines'])}); EVL {s['macro_auc']['evl']:.3f}, "
            f"{evl['mean']:+.4f} (95% CI {evl['ci95'][0]:+.4f} to {evl['ci95'][1]:+.4f}), {verdict} "
            f"the paper's bar of +{result['bar']:.2f}; teacher {s['teacher_macro_auc']:.3f}"
        )
        if s["component_gain"]:
            gains = ", ".join(f"{COMPONENT_NAMES[c]} {g:+.4f}" for c, g in s["component_gain"].items())
            lines.append(f"    what each component adds (EVL minus EVL without it): {gains}")
    return lines


def headline_block(result: dict) -> str:
    """The lines as a results page shows them: a text block under the command that wrote them."""
    return f"```text\n$ {result['command']}\n" + "\n".join(headline_lines(result)) + "\n```"


def update_page(page: str | Path, result: dict) -> bool:
    """Rewrite ``page``'s headline block with ``result``; True if it changed."""
    from evl_lite.experiments.results_page import rewrite_block

    return rewrite_block(page, headline_block(result), *PAGE_MARKERS)
