"""Reading a trained model: where it looks, how far its probabilities can be trusted, where it errs.

What notebook 08 shows about the student (and the teacher, for reference):

- **Occlusion** (Zeiler & Fergus 2014): hide one region ``R`` of the input window and measure
  how much the probability of a class ``c`` falls,

      r_R = p_c(x) - p_c(x with R replaced by a fill value),

  for ``R`` = one lead (all of its samples), one time span (all leads), or one (lead, span)
  cell. Fill ``"zero"`` or ``"mean"`` (the lead's own mean over the window: a flat line at its
  baseline); on records z-scored per lead the two coincide. A model that never reads a lead
  gets exactly ``r = 0`` for it: the hidden input cannot change its output.
- **Input gradients** (Simonyan et al. 2014) and **gradient x input** (Shrikumar et al. 2017;
  Ancona et al. 2018): ``g = dp_c / dx [12, T]``; the relevance of a lead or a span is the sum
  of ``|g * x|`` (or ``|g|``) over its samples. One backward pass instead of one forward pass
  per region, but local: it says how the probability reacts to small changes, not to removal.
- **Calibration** (Naeini et al. 2015; Guo et al. 2017), one class at a time (multi-label:
  every class is its own yes/no question): ``M`` equal-width bins ``B_m`` over [0, 1], and

      ECE = sum_m |B_m| / N * |acc(B_m) - conf(B_m)|,

  ``conf`` the mean predicted probability of the bin, ``acc`` the fraction of positives in it.
  The reliability diagram plots ``acc`` against ``conf``; a calibrated model lies on the diagonal.
- **Precision-recall** curves and average precision ``AP = sum_k (R_k - R_{k-1}) P_k``
  (the step sum of ``sklearn.metrics.average_precision_score``): unlike ROC they show how many
  of the flagged records are right, which matters for rare classes.
- **Error analysis**: the most confident false positives (label 0, highest probability) and
  false negatives (label 1, lowest probability) at the decision thresholds.
- A **clinician-readable summary** of one ECG: the superclasses above their thresholds with the
  PTB-XL diagnostic statements (``scp_statements.csv``) that belong to them. An educational
  output of a teaching model, never a diagnosis; the text says so.

Pure functions return numpy arrays and plain values (tests check them); the ``*_figure``
functions only assemble plotly traces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor, nn

from evl_lite.constants import LEADS, SUPERCLASSES
from evl_lite.explorers import TEMPLATE
from evl_lite.explorers.ecg_plots import display_lead
from evl_lite.training.loop import window_starts

Fill = Literal["zero", "mean"]

SUPERCLASS_NAMES: dict[str, str] = {
    "NORM": "normal ECG",
    "MI": "myocardial infarction",
    "STTC": "ST/T change",
    "CD": "conduction disturbance",
    "HYP": "hypertrophy",
}
DISCLAIMER = (
    "EDUCATIONAL OUTPUT - NOT A DIAGNOSIS. This text was written automatically from the scores of a "
    "teaching model trained on a small data set. It must not be used for patient care: an ECG is "
    "interpreted by a qualified clinician, with the patient's history and earlier ECGs."
)
PALETTE = ("#1f4e9c", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")


# --------------------------------------------------------------------------- relevance


def model_logits(model: nn.Module | Callable[[Tensor], Any], x: Tensor) -> Tensor:
    """``model(x)`` as logits [B, C], whether it returns a ``ModelOutput`` or a tensor."""
    out = model(x)
    return out.logits if hasattr(out, "logits") else out


def _check_window(x: Tensor | np.ndarray) -> Tensor:
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.ndim != 2 or x.shape[0] != len(LEADS):
        raise ValueError(f"expected one ECG window [{len(LEADS)}, T]; got shape {tuple(x.shape)}")
    return x


def time_spans(n_samples: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end samples [S] of consecutive spans of ``span`` samples tiling ``n_samples``."""
    if span < 1 or n_samples % span:
        raise ValueError(f"span must divide the window: {n_samples} samples, span {span}")
    starts = np.arange(0, n_samples, span)
    return starts, starts + span


@dataclass(frozen=True)
class OcclusionMap:
    """Drop in the probability of ``target`` when a region of the window is hidden.

    ``base`` p_c(x); ``lead [12]`` one lead hidden; ``time [S]`` one span hidden in every lead;
    ``grid [12, S]`` one (lead, span) cell hidden; ``starts``/``ends [S]`` the spans in samples.
    """

    target: int
    base: float
    lead: np.ndarray
    time: np.ndarray
    grid: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


@torch.no_grad()
def occlusion_map(
    model: nn.Module, x: Tensor | np.ndarray, target: int, span: int = 25, fill: Fill = "zero",
    batch_size: int = 128,
) -> OcclusionMap:
    """Occlusion relevance of every lead, every span and every (lead, span) cell of x [12, T].

    All occluded copies go through the model in the same batches as the unoccluded window
    (row 0), so an unchanged input gives exactly the same probability.
    """
    x = _check_window(x)
    n_leads, n_samples = x.shape
    starts, ends = time_spans(n_samples, span)
    if fill == "zero":
        filler = torch.zeros(n_leads, 1)
    elif fill == "mean":
        filler = x.mean(dim=1, keepdim=True)  # [12, 1]
    else:
        raise ValueError(f"fill must be 'zero' or 'mean'; got {fill!r}")
    copies = [x]
    for lead in range(n_leads):  # one lead hidden
        c = x.clone()
        c[lead] = filler[lead]
        copies.append(c)
    for s, e in zip(starts, ends, strict=True):  # one span hidden in every lead
        c = x.clone()
        c[:, s:e] = filler
        copies.append(c)
    for lead in range(n_leads):  # one (lead, span) cell hidden
        for s, e in zip(starts, ends, strict=True):
            c = x.clone()
            c[lead, s:e] = filler[lead]
            copies.append(c)
    batch = torch.stack(copies)  # [1 + 12 + S + 12 S, 12, T]
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        probs = torch.cat([torch.sigmoid(model_logits(model, batch[i : i + batch_size]))[:, target]
                           for i in range(0, len(batch), batch_size)]).double().numpy()
    finally:
        for m, flag in flags.items():
            m.training = flag
    base = probs[0]
    n_spans = len(starts)
    drop = base - probs  # [1 + 12 + S + 12 S]
    return OcclusionMap(
        target=target,
        base=float(base),
        lead=drop[1 : 1 + n_leads],
        time=drop[1 + n_leads : 1 + n_leads + n_spans],
        grid=drop[1 + n_leads + n_spans :].reshape(n_leads, n_spans),
        starts=starts,
        ends=ends,
    )


def input_gradients(
    model: nn.Module, x: Tensor | np.ndarray, target: int, times_input: bool = True
) -> np.ndarray:
    """``dp_target / dx`` for one window x [12, T], times x when ``times_input``: [12, T].

    Uses ``torch.autograd.grad``, so the model's parameter gradients are left untouched; the
    model runs in eval mode and its flags are restored.
    """
    x = _check_window(x).clone().requires_grad_(True)
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.enable_grad():
            p = torch.sigmoid(model_logits(model, x[None]))[0, target]
            (g,) = torch.autograd.grad(p, x)  # [12, T]
    finally:
        for m, flag in flags.items():
            m.training = flag
    return ((g * x) if times_input else g).detach().double().numpy()


def relevance_per_lead(relevance: np.ndarray) -> np.ndarray:
    """Sum of |relevance| over time of a map [12, T]: [12]."""
    return np.abs(np.asarray(relevance, dtype=np.float64)).sum(axis=1)


def relevance_per_span(relevance: np.ndarray, span: int) -> np.ndarray:
    """Sum of |relevance| over each span of ``span`` samples of a map [12, T]: [12, S]."""
    r = np.abs(np.asarray(relevance, dtype=np.float64))
    time_spans(r.shape[1], span)  # checks that the spans tile the window
    return r.reshape(r.shape[0], -1, span).sum(axis=2)


@torch.no_grad()
def best_window(
    model: nn.Module, x: Tensor | np.ndarray, target: int, crop: int = 250, n_windows: int = 7
) -> int:
    """Start sample of the sliding window (``predict``'s grid) where p_target is highest, for x [12, T]."""
    x = _check_window(x)
    starts = window_starts(x.shape[1], crop, n_windows)
    batch = torch.stack([x[:, s : s + crop] for s in starts])  # [K, 12, crop]
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        p = torch.sigmoid(model_logits(model, batch))[:, target]  # [K]
    finally:
        for m, flag in flags.items():
            m.training = flag
    return int(starts[int(p.argmax())])


def shares(values: Any) -> np.ndarray:
    """Non-negative parts as fractions of their total (all zeros if nothing is positive)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0, None)
    total = v.sum()
    return v / total if total > 0 else v


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class ReliabilityCurve:
    """Equal-width bins over [0, 1]: ``edges [M + 1]``; per bin ``confidence`` (mean probability),
    ``accuracy`` (fraction of positives), both NaN for an empty bin, and ``count [M]``; ``ece``."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    ece: float


def reliability_curve(y_true: Any, probs: Any, n_bins: int = 10) -> ReliabilityCurve:
    """Reliability diagram data and ECE of one class: y [N] 0/1, probabilities [N] in [0, 1].

    Bin m holds m / M <= p < (m + 1) / M; p = 1 falls in the last bin.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape or len(y) == 0:
        raise ValueError(f"y_true and probs must both be [N] with N > 0; got {y.shape} and {p.shape}")
    if not np.isin(y, (0, 1)).all() or not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise ValueError("y_true must hold 0/1 labels and probs finite values in [0, 1]")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1; got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)  # [N]
    count = np.bincount(bins, minlength=n_bins)  # [M]
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(bins, weights=p, minlength=n_bins) / count  # [M], NaN if empty
        accuracy = np.bincount(bins, weights=y, minlength=n_bins) / count
    gaps = np.where(count > 0, np.abs(accuracy - confidence), 0.0)
    ece = float((count / len(y) * gaps).sum())  # sum_m |B_m| / N |acc - conf|
    return ReliabilityCurve(edges, confidence, accuracy, count, ece)


def expected_calibration_error(y_true: Any, probs: Any, n_bins: int = 10) -> float:
    """ECE of one class (module docstring): y [N] 0/1, probabilities [N]."""
    return reliability_curve(y_true, probs, n_bins).ece


def ece_per_class(
    y_true: Any, probs: Any, classes: Sequence[str] = SUPERCLASSES, n_bins: int = 10
) -> dict[str, float]:
    """ECE of every class of y [N, C], probabilities [N, C]."""
    y, p = np.asarray(y_true), np.asarray(probs)
    if y.ndim != 2 or y.shape != p.shape or y.shape[1] != len(classes):
        raise ValueError(f"expected y_true and probs [N, {len(classes)}]; got {y.shape} and {p.shape}")
    return {name: expected_calibration_error(y[:, c], p[:, c], n_bins) for c, name in enumerate(classes)}


# --------------------------------------------------------------------------- precision-recall


def precision_recall_points(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision [K + 1], recall [K + 1] and thresholds [K] of one class, thresholds high to low.

    One point per distinct score (predict positive when ``score >= threshold``), after the
    starting point recall 0, precision 1.
    """
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape or not np.isin(y, (0, 1)).all() or not np.isfinite(s).all():
        raise ValueError(f"y_true (0/1) and finite scores must both be [N]; got {y.shape} and {s.shape}")
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("a precision-recall curve needs at least one positive")
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order].astype(bool)
    last = np.append(s_desc[:-1] != s_desc[1:], True)  # last record of each distinct score
    tp = np.cumsum(y_desc)[last]
    k = np.cumsum(np.ones_like(y_desc, dtype=np.int64))[last]  # records predicted positive
    precision = np.concatenate([[1.0], tp / k])
    recall = np.concatenate([[0.0], tp / n_pos])
    return precision, recall, s_desc[last]


def average_precision(y_true: Any, scores: Any) -> float:
    """AP = sum_k (R_k - R_{k-1}) P_k over the points of ``precision_recall_points``."""
    precision, recall, _ = precision_recall_points(y_true, scores)
    return float(np.sum(np.diff(recall) * precision[1:]))


# --------------------------------------------------------------------------- errors


def confident_errors(
    y_true: Any, probs: Any, thresholds: Any, classes: Sequence[str] = SUPERCLASSES, k: int = 3
) -> list[dict[str, Any]]:
    """The ``k`` most confident false positives and the ``k`` most confident false negatives.

    A false positive is (record, class) with label 0 and ``p >= threshold``, ranked by p high
    to low; a false negative has label 1 and ``p < threshold``, ranked by p low to high. Each
    entry: record index, class, kind, probability, threshold.
    """
    y = np.asarray(y_true)
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(thresholds, dtype=np.float64)
    if y.ndim != 2 or y.shape != p.shape or t.shape != (y.shape[1],) or y.shape[1] != len(classes):
        raise ValueError(f"expected y_true and probs [N, {len(classes)}] and thresholds [{len(classes)}]; "
                         f"got {y.shape}, {p.shape} and {t.shape}")
    rows, cols = np.nonzero((y == 0) & (p >= t))
    fp = sorted(zip(rows, cols, strict=True), key=lambda rc: (-p[rc], rc))[:k]
    rows, cols = np.nonzero((y == 1) & (p < t))
    fn = sorted(zip(rows, cols, strict=True), key=lambda rc: (p[rc], rc))[:k]
    return [{"index": int(r), "class": classes[c], "kind": kind, "probability": float(p[r, c]),
             "threshold": float(t[c])}
            for kind, pairs in (("false positive", fp), ("false negative", fn)) for r, c in pairs]


def example_record(
    y_true: Any,
    probs: Any,
    thresholds: Any,
    classes: Sequence[str] = SUPERCLASSES,
    avoid: Sequence[str] = ("NORM",),
) -> tuple[int, int]:
    """(record, class) of the most confident true positive, preferring classes not in ``avoid``.

    Falls back to any true positive, then to the positive label with the highest probability.
    """
    y = np.asarray(y_true)
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(thresholds, dtype=np.float64)
    hit = (y == 1) & (p >= t)  # [N, C] true positives
    preferred = hit & ~np.isin(np.asarray(classes), list(avoid))[None, :]
    for mask in (preferred, hit, y == 1):
        if mask.any():
            r, c = np.unravel_index(int(np.where(mask, p, -np.inf).argmax()), p.shape)
            return int(r), int(c)
    raise ValueError("y_true holds no positive label")


def label_names(row: Any, classes: Sequence[str] = SUPERCLASSES) -> list[str]:
    """Names of the classes set in a 0/1 (or boolean) row [C]."""
    return [name for name, v in zip(classes, np.asarray(row), strict=True) if v]


# --------------------------------------------------------------------------- clinician summary


def statements_for_superclass(
    statements: pd.DataFrame, superclass: str, counts: Mapping[str, int] | None = None
) -> list[tuple[str, str]]:
    """(SCP code, description) of the diagnostic statements of ``superclass`` in ``scp_statements.csv``.

    ``statements``: ``data.load_statements`` output (indexed by code). Ordered by ``counts``
    (how often each code occurs, e.g. in the training records: most frequent first), then code.
    """
    table = statements
    diagnostic = pd.to_numeric(table["diagnostic"], errors="coerce").fillna(0) == 1
    rows = table[diagnostic & (table["diagnostic_class"].astype(str) == superclass)]
    counts = counts or {}
    codes = sorted(rows.index, key=lambda code: (-counts.get(code, 0), code))
    return [(code, str(rows.at[code, "description"])) for code in codes]


def clinician_summary(
    probabilities: Any,
    thresholds: Any,
    statements: pd.DataFrame,
    classes: Sequence[str] = SUPERCLASSES,
    record: str | None = None,
    reference_codes: Iterable[str] | None = None,
    statement_counts: Mapping[str, int] | None = None,
    max_statements: int = 6,
    model_name: str = "the EVL-ECG Lite student",
) -> str:
    """A plain-text reading of one ECG's superclass scores, marked as educational, not a diagnosis.

    ``probabilities``, ``thresholds``: [C]; a class is flagged when ``p >= threshold``. For every
    flagged class the text lists up to ``max_statements`` PTB-XL diagnostic statements of that
    superclass (``statements_for_superclass``): the model scores superclasses only, so these are
    the statements it *could* stand for, not findings. ``reference_codes``: the record's own SCP
    codes, if known (printed as the dataset's annotation, for teaching).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if p.shape != (len(classes),) or t.shape != (len(classes),):
        raise ValueError(f"expected probabilities and thresholds [{len(classes)}]; "
                         f"got {p.shape} and {t.shape}")
    flagged = [c for c in range(len(classes)) if p[c] >= t[c]]

    def name(c: int) -> str:
        long = SUPERCLASS_NAMES.get(classes[c])
        return f"{classes[c]} ({long})" if long else classes[c]

    lines = [DISCLAIMER, ""]
    lines.append(f"Automatic reading of ECG {record + ' ' if record else ''}by {model_name}.")
    lines.append("A superclass is flagged when its probability reaches its decision threshold "
                 "(tuned for F1 on the validation split).")
    lines.append("")
    if flagged:
        lines.append("Flagged superclasses:")
        for c in flagged:
            lines.append(f"- {name(c)}: probability {p[c]:.3f} (threshold {t[c]:.3f}).")
            items = statements_for_superclass(statements, classes[c], statement_counts)
            if items:
                shown = "; ".join(f"{desc} ({code})" for code, desc in items[:max_statements])
                more = f"; and {len(items) - max_statements} more" if len(items) > max_statements else ""
                lines.append(f"  PTB-XL diagnostic statements in this superclass: {shown}{more}.")
        lines.append("The model scores superclasses only: it does not say which of these statements, "
                     "if any, applies.")
    else:
        lines.append(f"No superclass reaches its threshold: the model flags none of {', '.join(classes)} "
                     "for this ECG. That is not a normal reading: NORM is a class of its own, and the "
                     "record may hold findings the model misses or was never trained on.")
    others = [c for c in range(len(classes)) if c not in flagged]
    if others:
        lines.append("")
        lines.append("Not flagged: " + ", ".join(f"{classes[c]} {p[c]:.3f} (threshold {t[c]:.3f})"
                                                 for c in others) + ".")
    if reference_codes is not None:
        codes = [str(code) for code in reference_codes]
        described = [f"{statements.at[code, 'description']} ({code})" if code in statements.index else code
                     for code in codes]
        lines.append("")
        lines.append("Statements annotated for this record in the data set: "
                     + ("; ".join(described) if described else "none") + ".")
    lines.append("")
    lines.append("Not a diagnosis: educational output only.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures


def pr_figure(y_true: Any, scores: Any, classes: Sequence[str] = SUPERCLASSES,
              title: str = "precision-recall curves") -> go.Figure:
    """Per-class precision-recall curves of scores [N, C], AP and prevalence (the chance level) in the legend.

    Classes without positives are skipped. Traces: one per usable class.
    """
    y, s = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape or y.shape[1] != len(classes):
        raise ValueError(f"expected y_true and scores [N, {len(classes)}]; got {y.shape} and {s.shape}")
    fig = go.Figure()
    for c, name in enumerate(classes):
        if y[:, c].sum() > 0:
            precision, recall, _ = precision_recall_points(y[:, c], s[:, c])
            fig.add_trace(go.Scatter(x=recall, y=precision, mode="lines", line=dict(color=PALETTE[c % 5],
                                                                                    shape="hv"),
                                     name=f"{name} (AP {average_precision(y[:, c], s[:, c]):.3f}, "
                                          f"prevalence {y[:, c].mean():.2f})"))
    fig.update_layout(title=title, template=TEMPLATE, width=560, height=480, xaxis_title="recall",
                      yaxis_title="precision", xaxis_range=[0, 1.01], yaxis_range=[0, 1.02])
    return fig


def reliability_figure(y_true: Any, probs: Any, classes: Sequence[str] = SUPERCLASSES, n_bins: int = 10,
                       title: str = "reliability diagram") -> go.Figure:
    """Fraction of positives against mean probability per bin, one line per class, ECE in the legend.

    Traces: one per class (markers sized by the bin's count), then the diagonal.
    """
    y, p = np.asarray(y_true), np.asarray(probs)
    fig = go.Figure()
    for c, name in enumerate(classes):
        curve = reliability_curve(y[:, c], p[:, c], n_bins)
        keep = curve.count > 0
        size = 6 + 14 * np.sqrt(curve.count[keep] / curve.count.max())
        fig.add_trace(go.Scatter(x=curve.confidence[keep], y=curve.accuracy[keep], mode="lines+markers",
                                 marker=dict(size=size), line=dict(color=PALETTE[c % 5]),
                                 name=f"{name} (ECE {curve.ece:.3f})", customdata=curve.count[keep],
                                 hovertemplate="mean p %{x:.2f}, positives %{y:.2f}, "
                                               "%{customdata} records<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#7f7f7f", dash="dash"),
                             name="calibrated"))
    fig.update_layout(title=title, template=TEMPLATE, width=560, height=520,
                      xaxis_title="mean predicted probability (bin)",
                      yaxis_title="fraction of positives (bin)")
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[-0.02, 1.02], scaleanchor="x", scaleratio=1)
    return fig


def relevance_grid_figure(grids: Mapping[str, np.ndarray], starts: np.ndarray, ends: np.ndarray, fs: float,
                          title: str = "relevance over leads and time") -> go.Figure:
    """Heat maps [12, S] side by side (one per model), each scaled by its own largest |value|.

    Scaling makes models whose probabilities move by different amounts comparable in *where*
    they look; the colour bar is shared, from -1 (hiding it raises p) to 1 (the largest drop).
    Traces: one heat map per model.
    """
    names = list(grids)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=True,
                        horizontal_spacing=0.04)
    centres = (np.asarray(starts) + np.asarray(ends)) / 2 / fs
    leads = [display_lead(lead) for lead in LEADS]
    for i, name in enumerate(names, start=1):
        g = np.asarray(grids[name], dtype=np.float64)
        scale = max(float(np.abs(g).max()), 1e-12)
        fig.add_trace(go.Heatmap(z=g / scale, x=centres, y=leads, coloraxis="coloraxis", customdata=g,
                                 hovertemplate="%{y}, %{x:.2f} s: %{customdata:.4f}<extra>" + name
                                               + "</extra>"), row=1, col=i)
        fig.update_xaxes(title_text="time (s)", row=1, col=i)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, template=TEMPLATE, height=420, width=420 * len(names) + 80,
                      coloraxis=dict(colorscale="RdBu", reversescale=True, cmin=-1, cmax=1,
                                     colorbar=dict(title="relative<br>drop")))
    return fig


def lead_relevance_figure(values: Mapping[str, Any], title: str = "relevance per lead",
                          yaxis_title: str = "share of the model's relevance") -> go.Figure:
    """Grouped bars of one value per lead [12] per model. Traces: one bar trace per model."""
    fig = go.Figure()
    leads = [display_lead(lead) for lead in LEADS]
    for i, (name, v) in enumerate(values.items()):
        fig.add_trace(go.Bar(x=leads, y=np.asarray(v, dtype=np.float64), name=name,
                             marker_color=PALETTE[i % 5]))
    fig.update_layout(title=title, template=TEMPLATE, barmode="group", height=360,
                      yaxis_title=yaxis_title)
    return fig
