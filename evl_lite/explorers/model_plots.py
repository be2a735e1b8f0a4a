"""Plotly figures of the models: tokens, reconstructions, training curves, ROC, attention, receptive fields.

What the course draws about its models (notebooks 02 and 03 and the distillation notebooks):

- how the teacher cuts an ECG into **lead-aware patches** (ViT-style patching per lead,
  Dosovitskiy et al. 2021): token ``l * P + p`` is patch ``p`` of lead ``l``;
- **masked-patch reconstruction** (He et al. 2022, MAE; Xie et al. 2022, SimMIM): the
  original next to what the teacher predicts for the hidden patches;
- training **curves** from the per-epoch history lists of ``pretrain`` and ``train``;
- per-class **ROC curves**, the curve whose area is the benchmark's macro-AUC;
- one **attention** head mapped back onto the ECG: attention weights
  ``softmax(q k^T / sqrt(d_h))`` of one query (the CLS token or a chosen token) over the N
  tokens, placed on a [leads x time] grid through the model's ``TokenLayout``;
- the student CNN's **receptive field** (Araujo et al. 2019) drawn on the ECG;
- a **comparison table** of models (accuracy, size, latency).

The data shaping lives in small pure functions (``token_grid``, ``attention_to_tokens``,
``attention_entropy``, ``values_on_samples``, ``roc_curve_points``, ``reconstruction_traces``,
``most_masked_leads``, ``most_attended_leads``, ``history_series``, ``comparison_rows``) that
``tests/test_model_plots.py`` checks; the ``*_figure`` functions only assemble traces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from evl_lite.constants import LEADS, SUPERCLASSES
from evl_lite.errors import ECGDataError
from evl_lite.explorers import TEMPLATE
from evl_lite.explorers.ecg_plots import display_lead, lead_index, time_axis
from evl_lite.models.output import TokenLayout

TRACE = "#111111"
RECON = "#d62728"
SHADE = "#1f77b4"
PALETTE = ("#1f4e9c", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")

# --------------------------------------------------------------------------- pure helpers


def _as_numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def _check_record(x: Any, n_leads: int = len(LEADS)) -> np.ndarray:
    """x [12, T] as float64, or a clear error."""
    arr = _as_numpy(x)
    if arr.ndim != 2 or arr.shape[0] != n_leads:
        raise ECGDataError(None, f"expected an ECG [{n_leads}, T]; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ECGDataError(None, "the ECG holds NaN or infinite samples")
    return arr


def _lead_rows(leads: Sequence[str | int]) -> list[int]:
    return [lead if isinstance(lead, int) else lead_index(lead) for lead in leads]


def _lead_label(lead: int) -> str:
    return "all leads" if lead < 0 else display_lead(LEADS[lead])


@dataclass(frozen=True)
class TokenGrid:
    """Per-token values placed on a [rows x columns] grid: rows are leads, columns time spans.

    ``values [R, P]`` (NaN where no token covers the cell), ``leads [R]`` the lead index of
    each row in increasing order (-1: a token that sees all leads, as a CNN position does),
    ``start``/``end [P]`` the samples each column covers, ``fs`` the sampling rate.
    """

    values: np.ndarray
    leads: list[int]
    start: np.ndarray
    end: np.ndarray
    fs: float

    @property
    def lead_names(self) -> list[str]:
        return [_lead_label(lead) for lead in self.leads]

    @property
    def centres_s(self) -> np.ndarray:
        """Centre of each column's span in seconds [P]."""
        return (self.start + self.end) / 2 / self.fs


def token_grid(values: Any, layout: TokenLayout) -> TokenGrid:
    """Place one value per token, ``values [N]``, on the [leads x time spans] grid of ``layout``.

    For the teacher's lead-aware patches this is the [12, P] grid ``values[l * P + p]``; for
    the student's time positions it is a single "all leads" row. Two tokens on the same
    (lead, span) cell are an error: the grid would have to hide one of them.
    """
    v = _as_numpy(values)
    n = len(layout)
    if v.shape != (n,):
        raise ValueError(f"expected one value per token, [N] = [{n}]; got shape {v.shape}")
    lead = layout.lead.numpy()
    spans = np.stack([layout.start.numpy(), layout.end.numpy()], axis=1)  # [N, 2]
    leads = sorted(set(lead.tolist()))
    columns, col_of = np.unique(spans, axis=0, return_inverse=True)  # [P, 2] sorted by start
    row_of = np.searchsorted(leads, lead)
    grid = np.full((len(leads), len(columns)), np.nan)
    filled = np.zeros(grid.shape, dtype=bool)
    for i, (r, c) in enumerate(zip(row_of, col_of.reshape(-1), strict=True)):
        if filled[r, c]:
            raise ValueError(f"two tokens cover lead {lead[i]} over samples {spans[i].tolist()}")
        grid[r, c], filled[r, c] = v[i], True
    return TokenGrid(grid, [int(x) for x in leads], columns[:, 0].copy(), columns[:, 1].copy(), layout.fs)


def _query_rows(maps: np.ndarray, query: int | str, record: int) -> np.ndarray:
    """Attention rows [heads, 1 + N] of ``query`` (an index, or ``"tokens"``: the mean of rows 1..N)."""
    if query == "tokens":
        return maps[record, :, 1:, :].mean(axis=1)
    if not isinstance(query, int | np.integer) or not 0 <= query < maps.shape[2]:
        raise ValueError(f"query {query!r} out of range for {maps.shape[2]} positions (CLS + tokens), "
                         "or 'tokens'")
    return maps[record, :, query, :]


def attention_to_tokens(attentions: Sequence[Any], layer: int = -1, head: int | str = 0,
                        query: int | str = 0, record: int = 0) -> np.ndarray:
    """Attention [N] that one query pays to each of the N tokens, from a teacher's ``attentions``.

    ``attentions``: one map ``[B, heads, 1 + N, 1 + N]`` per layer, index 0 the CLS token and
    ``1 + i`` token i (``ModelOutput.attentions``). ``query``: the row, 0 for CLS or ``1 + i``,
    or ``"tokens"``, the mean of the N token rows (what the tokens read on average: with
    ``pooling="leads"`` every token feeds the record's embedding); ``head``: a head index or
    ``"mean"`` (average over heads). The N weights sum to one minus the attention paid to CLS.
    """
    if not attentions:
        raise ValueError("no attention maps: call the teacher with output_attentions=True")
    if not -len(attentions) <= layer < len(attentions):
        raise ValueError(f"layer {layer} out of range for {len(attentions)} layers")
    maps = _as_numpy(attentions[layer])
    if maps.ndim != 4 or maps.shape[2] != maps.shape[3]:
        raise ValueError(f"an attention map must be [B, heads, 1 + N, 1 + N]; got {maps.shape}")
    if not 0 <= record < maps.shape[0]:
        raise ValueError(f"record {record} out of range for a batch of {maps.shape[0]}")
    per_head = _query_rows(maps, query, record)  # [heads, 1 + N]
    if head == "mean":
        row = per_head.mean(axis=0)
    elif isinstance(head, int) and -per_head.shape[0] <= head < per_head.shape[0]:
        row = per_head[head]
    else:
        raise ValueError(f"head must be 'mean' or an index below {per_head.shape[0]}; got {head!r}")
    return row[1:]  # [N], CLS column dropped


def attention_entropy(attentions: Sequence[Any], query: int | str = 0, record: int = 0) -> np.ndarray:
    """How spread out each head's attention row of ``query`` is: normalised entropy [layers, heads].

    ``H(a) / log(1 + N)`` over the whole softmax row ``a`` (CLS and the N tokens; for
    ``query="tokens"`` the mean row): 1 means equal shares for every position, 0 all attention
    on one. The most selective head is the argmin.
    """
    if not attentions:
        raise ValueError("no attention maps: call the teacher with output_attentions=True")
    rows = []
    for layer, maps in enumerate(attentions):
        m = _as_numpy(maps)
        if m.ndim != 4 or not 0 <= record < m.shape[0]:
            raise ValueError(f"layer {layer}: map {m.shape} has no record {record}")
        a = _query_rows(m, query, record)  # [heads, 1 + N]
        rows.append(-(a * np.log(np.clip(a, 1e-12, None))).sum(axis=1) / np.log(a.shape[1]))
    return np.stack(rows)  # [layers, heads]


def values_on_samples(values: Any, layout: TokenLayout, n_leads: int = len(LEADS)) -> np.ndarray:
    """Token values painted onto the samples they cover: [n_leads, T], NaN where no token reaches.

    A token of lead ``l`` covers its span of that lead only; a token of lead -1 (a CNN position)
    covers its span of every lead. Where spans overlap (receptive fields do) the mean is taken.
    """
    v = _as_numpy(values)
    if v.shape != (len(layout),):
        raise ValueError(f"expected one value per token, [N] = [{len(layout)}]; got shape {v.shape}")
    total = np.zeros((n_leads, layout.n_samples))
    count = np.zeros((n_leads, layout.n_samples))
    for value, lead, start, end in zip(v, layout.lead.tolist(), layout.start.tolist(), layout.end.tolist(),
                                       strict=True):
        rows = slice(None) if lead < 0 else slice(lead, lead + 1)
        total[rows, start:end] += value
        count[rows, start:end] += 1
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def roc_curve_points(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of one class: false-positive rate, true-positive rate and thresholds.

    One point per distinct score (predict positive when ``score >= threshold``, thresholds high
    to low), plus (0, 0) for "nothing positive" (threshold +inf). The trapezoid area under
    (fpr, tpr) equals the Mann-Whitney AUC of ``evaluation.macro_auc``, ties counting one half.
    """
    y = np.asarray(y_true)
    s = _as_numpy(scores)
    if y.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"y_true and scores must both be [N]; got {y.shape} and {s.shape}")
    if not np.isin(y, (0, 1)).all() or not np.isfinite(s).all():
        raise ValueError("y_true must hold 0/1 labels and scores finite values")
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"a ROC curve needs positives and negatives; got {n_pos} and {n_neg}")
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order].astype(bool)
    last = np.append(s_desc[:-1] != s_desc[1:], True)  # [N] last record of each distinct score
    tp = np.cumsum(y_desc)[last]
    fp = np.cumsum(~y_desc)[last]
    fpr = np.concatenate([[0.0], fp / n_neg])
    tpr = np.concatenate([[0.0], tp / n_pos])
    return fpr, tpr, np.concatenate([[np.inf], s_desc[last]])


def reconstruction_traces(target: Any, prediction: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """Original [12, P * L] and reconstruction [12, P * L] (NaN outside the hidden patches).

    ``target``, ``prediction``: [12, P, L] patches of one record (``masked_patch_loss`` details);
    ``mask`` [12, P] bool, True where the patch was hidden from the encoder.
    """
    t, p, m = _as_numpy(target), _as_numpy(prediction), np.asarray(mask)
    if t.ndim != 3 or p.shape != t.shape or m.shape != t.shape[:2] or m.dtype != bool:
        raise ValueError(f"expected target and prediction [12, P, L] and a bool mask [12, P]; got "
                         f"{t.shape}, {p.shape} and {m.dtype} {m.shape}")
    recon = np.where(m[..., None], p, np.nan)  # [12, P, L]
    return t.reshape(t.shape[0], -1), recon.reshape(t.shape[0], -1)


def masked_spans(mask: Any, patch_len: int) -> list[tuple[int, int, int]]:
    """(lead, start sample, end sample) of every hidden patch of a mask [12, P], lead-major."""
    m = np.asarray(mask, dtype=bool)
    return [(int(lead), int(p) * patch_len, (int(p) + 1) * patch_len) for lead, p in zip(*np.nonzero(m),
                                                                                           strict=True)]


def history_series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of one logged quantity, epochs counted from 1; rows without a finite value skipped."""
    epochs, values = [], []
    for i, row in enumerate(history):
        value = row.get(key)
        if value is None or not np.isfinite(float(value)):
            continue
        epochs.append(int(row.get("epoch", i)) + 1)
        values.append(float(value))
    return epochs, values


def comparison_rows(results: Mapping[str, Mapping[str, Any]], reference: str) -> list[dict[str, Any]]:
    """One row per model with its figures and its size and latency relative to ``reference``.

    ``results``: {model name: {"macro_auc", "params", "latency_ms", optional "macro_auc_ci" (low,
    high), "flops"}}. Adds ``params_vs_ref`` = params / params of the reference, the same for
    latency and FLOPs, and ``auc_vs_ref`` = macro_auc - the reference's.
    """
    if reference not in results:
        raise ValueError(f"reference {reference!r} is not among {list(results)}")
    ref = results[reference]
    rows = []
    for name, r in results.items():
        row = {"model": name, **r, "auc_vs_ref": float(r["macro_auc"]) - float(ref["macro_auc"]),
               "params_vs_ref": float(r["params"]) / float(ref["params"]),
               "latency_vs_ref": float(r["latency_ms"]) / float(ref["latency_ms"])}
        if "flops" in r and "flops" in ref:
            row["flops_vs_ref"] = float(r["flops"]) / float(ref["flops"])
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- figures


def _stacked(n_rows: int, titles: Sequence[str], height_per_row: int = 110) -> go.Figure:
    fig = make_subplots(rows=n_rows, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_titles=list(titles))
    fig.update_layout(template=TEMPLATE, height=90 + height_per_row * n_rows,
                      margin=dict(l=50, r=60, t=70, b=40), legend=dict(orientation="h", y=-0.08))
    fig.update_xaxes(title_text="time (s)", row=n_rows, col=1)
    return fig


def patching_figure(x: Any, patch_len: int, fs: float, leads: Sequence[str | int] = ("I", "II", "V1", "V5"),
                    unit: str = "z-score") -> go.Figure:
    """An ECG window x [12, T] cut into lead-aware patches, every patch labelled with its token index.

    Alternate patches are shaded; the label is the token's index in the teacher's sequence
    (``l * P + p``, CLS excluded), taken from ``TokenLayout.lead_patches``. Traces: one per lead shown.
    """
    arr = _check_record(x)
    layout = TokenLayout.lead_patches(arr.shape[0], arr.shape[1], patch_len, fs)
    n_patches = arr.shape[1] // patch_len
    rows = _lead_rows(leads)
    fig = _stacked(len(rows), [_lead_label(r) for r in rows])
    t = time_axis(arr.shape[1], fs)
    for i, lead in enumerate(rows, start=1):
        fig.add_trace(go.Scatter(x=t, y=arr[lead], mode="lines", line=dict(color=TRACE, width=1),
                                 name=_lead_label(lead), showlegend=False), row=i, col=1)
        top = float(arr[lead].max())
        for token in range(lead * n_patches, (lead + 1) * n_patches):
            start, end = int(layout.start[token]), int(layout.end[token])
            if (token - lead * n_patches) % 2 == 0:
                fig.add_vrect(x0=start / fs, x1=end / fs, fillcolor=SHADE, opacity=0.12, line_width=0,
                              row=i, col=1)
            fig.add_annotation(x=(start + end) / 2 / fs, y=top, text=str(token), showarrow=False,
                               yshift=10, font=dict(size=9, color=SHADE), row=i, col=1)
    fig.update_yaxes(title_text=unit)
    fig.update_layout(title=f"{arr.shape[0]} leads x {n_patches} patches of {patch_len / fs:g} s = "
                            f"{len(layout)} tokens (+ CLS); numbers are token indices l * {n_patches} + p")
    return fig


def most_masked_leads(mask: Any, n: int = 4) -> list[int]:
    """The ``n`` leads of a mask [12, P] with the most hidden patches, in lead order (ties: lower lead)."""
    hidden = np.asarray(mask, dtype=bool).sum(axis=1)  # [12]
    return sorted(np.argsort(-hidden, kind="stable")[:n].tolist())


def most_attended_leads(values: Any, layout: TokenLayout, n: int = 4) -> list[int]:
    """The ``n`` leads whose tokens carry the largest total of ``values [N]``, in lead order.

    For lead-aware layouts (the teacher's patches); tokens covering all leads (lead -1) are ignored.
    """
    v = _as_numpy(values)
    if v.shape != (len(layout),):
        raise ValueError(f"expected one value per token, [N] = [{len(layout)}]; got shape {v.shape}")
    lead = layout.lead.numpy()
    if not (lead >= 0).any():
        raise ValueError("the layout has no lead-specific tokens (a CNN's tokens cover all leads)")
    totals = np.bincount(lead[lead >= 0], weights=v[lead >= 0], minlength=int(lead.max()) + 1)  # [leads]
    return sorted(np.argsort(-totals, kind="stable")[:n].tolist())


def reconstruction_figure(target: Any, prediction: Any, mask: Any, fs: float,
                          leads: Sequence[str | int] | None = None,
                          title: str = "masked-patch reconstruction", unit: str = "z-score") -> go.Figure:
    """Original (black) and the teacher's reconstruction of the hidden patches (red, shaded spans).

    ``target``, ``prediction`` [12, P, L], ``mask`` [12, P] of one record; ``leads`` to show
    (None: the four with the most hidden patches). Traces: per lead shown, the original then the
    reconstruction.
    """
    original, recon = reconstruction_traces(target, prediction, mask)
    patch_len = _as_numpy(target).shape[2]
    spans = masked_spans(mask, patch_len)
    rows = most_masked_leads(mask) if leads is None else _lead_rows(leads)
    fig = _stacked(len(rows), [_lead_label(r) for r in rows])
    t = time_axis(original.shape[1], fs)
    for i, lead in enumerate(rows, start=1):
        fig.add_trace(go.Scatter(x=t, y=original[lead], mode="lines", line=dict(color=TRACE, width=1),
                                 name="original", legendgroup="original", showlegend=i == 1), row=i, col=1)
        fig.add_trace(go.Scatter(x=t, y=recon[lead], mode="lines", line=dict(color=RECON, width=2),
                                 name="reconstruction (hidden patches)", legendgroup="recon",
                                 showlegend=i == 1, connectgaps=False), row=i, col=1)
        for _, start, end in (s for s in spans if s[0] == lead):
            fig.add_vrect(x0=start / fs, x1=end / fs, fillcolor="#7f7f7f", opacity=0.18, line_width=0,
                          row=i, col=1)
    n_hidden, n_total = len(spans), int(np.asarray(mask).size)
    fig.update_yaxes(title_text=unit)
    fig.update_layout(title=f"{title}: {n_hidden} of {n_total} patches hidden (grey)")
    return fig


def curves_figure(histories: Mapping[str, Sequence[Mapping[str, Any]]], left: Mapping[str, str],
                  right: Mapping[str, str] | None = None, title: str = "", left_title: str = "loss",
                  right_title: str = "", best_epochs: Mapping[str, int] | None = None) -> go.Figure:
    """Per-epoch curves of one or more runs.

    ``histories``: {run name: history list}; ``left``/``right``: {history key: label} drawn on
    the left / a second right axis. Colour = run, dash = quantity. ``best_epochs`` (0-based, as
    ``TrainResult.best_epoch``) marks each run's selected epoch. Traces: runs x (left + right).
    """
    right = right or {}
    fig = make_subplots(specs=[[{"secondary_y": bool(right)}]])
    single = len(histories) == 1
    for r, (run, history) in enumerate(histories.items()):
        colour = PALETTE[r % len(PALETTE)]
        for k, (key, label) in enumerate([*left.items(), *right.items()]):
            epochs, values = history_series(history, key)
            fig.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", marker=dict(size=5),
                                     line=dict(color=colour if not single else PALETTE[k % len(PALETTE)],
                                               dash=DASHES[k % len(DASHES)] if not single else "solid"),
                                     name=label if single else f"{run}: {label}"),
                          secondary_y=key in right and key not in left)
        if best_epochs and run in best_epochs:
            fig.add_vline(x=best_epochs[run] + 1, line=dict(color=colour, dash="dot", width=1))
    fig.update_layout(title=title, template=TEMPLATE, height=380, legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=left_title, secondary_y=False)
    if right:
        fig.update_yaxes(title_text=right_title, secondary_y=True, showgrid=False)
    return fig


def roc_figure(y_true: Any, scores: Any, classes: Sequence[str] = SUPERCLASSES,
               title: str = "ROC curves") -> go.Figure:
    """Per-class ROC curves of ``scores [N, C]`` against ``y_true [N, C]``, AUC in the legend.

    Classes without both positives and negatives are skipped (their AUC is undefined).
    Traces: one per usable class, then the chance diagonal.
    """
    y, s = np.asarray(y_true), _as_numpy(scores)
    if y.ndim != 2 or y.shape != s.shape or y.shape[1] != len(classes):
        raise ValueError(f"expected y_true and scores [N, {len(classes)}]; got {y.shape} and {s.shape}")
    fig = go.Figure()
    for c, name in enumerate(classes):
        if 0 < y[:, c].sum() < len(y):
            fpr, tpr, _ = roc_curve_points(y[:, c], s[:, c])
            auc = float(np.trapezoid(tpr, fpr))
            fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", line=dict(color=PALETTE[c % len(PALETTE)]),
                                     name=f"{name} (AUC {auc:.3f}, {int(y[:, c].sum())} pos.)"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#7f7f7f", dash="dash"),
                             name="chance"))
    fig.update_layout(title=title, template=TEMPLATE, width=560, height=520,
                      xaxis_title="false-positive rate (1 - specificity)",
                      yaxis_title="true-positive rate (sensitivity)", legend=dict(x=0.45, y=0.05))
    fig.update_yaxes(scaleanchor="x", scaleratio=1, range=[0, 1.01])
    fig.update_xaxes(range=[0, 1])
    return fig


def attention_grid_figure(values: Any, layout: TokenLayout, title: str = "attention") -> go.Figure:
    """Heat map of per-token values ``[N]`` (e.g. one head's attention) over leads x time.

    Rows are leads (lead I on top), columns the token spans in seconds. Trace: one heat map.
    """
    grid = token_grid(values, layout)
    fig = go.Figure(go.Heatmap(
        z=grid.values, x=grid.centres_s, y=grid.lead_names, colorscale="Viridis",
        colorbar=dict(title="weight"),
        hovertemplate="%{y}, %{x:.2f} s: %{z:.4f}<extra></extra>",
    ))
    fig.update_layout(title=title, template=TEMPLATE, height=120 + 24 * len(grid.leads),
                      xaxis_title="time (s), centre of each token's span")
    fig.update_yaxes(autorange="reversed")
    return fig


def attention_on_ecg_figure(x: Any, values: Any, layout: TokenLayout,
                            leads: Sequence[str | int] | None = None, title: str = "attention",
                            unit: str = "z-score") -> go.Figure:
    """The ECG x [12, T] with each token's span shaded in proportion to its value (e.g. attention).

    Opacity = value / largest value shown, so the most attended span of the figure is the darkest.
    Works for lead-aware patches (each lead its own shading) and CNN positions (all leads).
    ``leads``: the leads to draw (None: the four most attended, or I, II, V1, V5 for a CNN).
    Traces: one per lead shown.
    """
    arr = _check_record(x)
    v = _as_numpy(values)
    if layout.n_samples != arr.shape[1] or v.shape != (len(layout),):
        raise ValueError(f"layout covers {layout.n_samples} samples and {len(layout)} tokens; got x "
                         f"{arr.shape} and values {v.shape}")
    if leads is not None:
        rows = _lead_rows(leads)
    elif (layout.lead >= 0).any():
        rows = most_attended_leads(v, layout)
    else:
        rows = _lead_rows(("I", "II", "V1", "V5"))
    token_leads = layout.lead.tolist()
    shown = [i for i, lead in enumerate(token_leads) if lead < 0 or lead in rows]
    peak = max(float(np.max(v[shown])) if shown else 0.0, 1e-12)
    fig = _stacked(len(rows), [_lead_label(r) for r in rows])
    t = time_axis(arr.shape[1], layout.fs)
    for i, lead in enumerate(rows, start=1):
        fig.add_trace(go.Scatter(x=t, y=arr[lead], mode="lines", line=dict(color=TRACE, width=1),
                                 name=_lead_label(lead), showlegend=False), row=i, col=1)
        for token in (k for k in shown if token_leads[k] in (lead, -1)):
            fig.add_vrect(x0=float(layout.start[token]) / layout.fs, x1=float(layout.end[token]) / layout.fs,
                          fillcolor=RECON, opacity=0.6 * max(float(v[token]), 0.0) / peak, line_width=0,
                          row=i, col=1)
    fig.update_yaxes(title_text=unit)
    fig.update_layout(title=f"{title}<br><sup>darkest: {peak:.3g}; equal shares would give each of the "
                            f"{len(layout)} tokens {1 / len(layout):.3g}</sup>")
    return fig


def receptive_field_figure(x: Any, layout: TokenLayout, positions: Sequence[int],
                           leads: Sequence[str | int] = ("II", "V1", "V5"),
                           unit: str = "z-score") -> go.Figure:
    """The input samples that chosen student tokens see (their receptive fields), shaded on the ECG.

    ``layout``: the student's ``TokenLayout`` (time positions covering all leads) for x [12, T];
    ``positions``: token indices to show. Small ticks at the bottom mark every token's centre
    (the stride between them). Traces: one per lead shown, then the token centres.
    """
    arr = _check_record(x)
    if layout.n_samples != arr.shape[1]:
        raise ValueError(f"layout covers {layout.n_samples} samples; x has {arr.shape[1]}")
    bad = [p for p in positions if not 0 <= p < len(layout)]
    if bad:
        raise ValueError(f"positions {bad} out of range for {len(layout)} tokens")
    rows = _lead_rows(leads)
    fig = _stacked(len(rows), [_lead_label(r) for r in rows])
    t = time_axis(arr.shape[1], layout.fs)
    for i, lead in enumerate(rows, start=1):
        fig.add_trace(go.Scatter(x=t, y=arr[lead], mode="lines", line=dict(color=TRACE, width=1),
                                 name=_lead_label(lead), showlegend=False), row=i, col=1)
        for k, p in enumerate(positions):
            start, end = float(layout.start[p]) / layout.fs, float(layout.end[p]) / layout.fs
            fig.add_vrect(x0=start, x1=end, fillcolor=PALETTE[k % len(PALETTE)], opacity=0.18, line_width=0,
                          row=i, col=1)
            if i == 1:
                fig.add_annotation(x=(start + end) / 2, y=float(arr[lead].max()), yshift=12, showarrow=False,
                                   text=f"token {p}: {start:.2f}-{end:.2f} s", row=i, col=1,
                                   font=dict(size=10, color=PALETTE[k % len(PALETTE)]))
    centres = (layout.start + layout.end).numpy() / 2 / layout.fs
    low = float(arr[rows[-1]].min())
    fig.add_trace(go.Scatter(x=centres, y=np.full(len(centres), low), mode="markers",
                             marker=dict(symbol="line-ns-open", size=8, color=SHADE),
                             name=f"{len(layout)} token centres"), row=len(rows), col=1)
    fig.update_yaxes(title_text=unit)
    return fig


def per_class_auc_figure(per_class: Mapping[str, Mapping[str, float | None]],
                         title: str = "test AUC per class") -> go.Figure:
    """Grouped bars: {model: {class: AUC or None}} (None = undefined on this split, drawn as a gap)."""
    fig = go.Figure([go.Bar(name=model, x=list(aucs), y=[np.nan if a is None else a for a in aucs.values()],
                            marker_color=PALETTE[m % len(PALETTE)])
                     for m, (model, aucs) in enumerate(per_class.items())])
    fig.add_hline(y=0.5, line=dict(color="#7f7f7f", dash="dash"))
    fig.update_layout(title=title, barmode="group", template=TEMPLATE, height=360, yaxis_title="AUC",
                      yaxis_range=[0.4, 1.0], legend=dict(orientation="h", y=-0.15))
    return fig


def comparison_table_figure(rows: Sequence[Mapping[str, Any]],
                            title: str = "teacher vs students") -> go.Figure:
    """A table of ``comparison_rows`` output: test macro-AUC (CI), parameters, latency and their ratios."""

    def auc(r: Mapping[str, Any]) -> str:
        ci = r.get("macro_auc_ci")
        return f"{r['macro_auc']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

    header = ["model", "test macro-AUC [95% CI]", "vs reference", "parameters", "x reference",
              "CPU latency (ms)", "x reference"]
    cells = [
        [r["model"] for r in rows],
        [auc(r) for r in rows],
        [f"{r['auc_vs_ref']:+.3f}" for r in rows],
        [f"{int(r['params']):,}" for r in rows],
        [f"{r['params_vs_ref']:.3f}" for r in rows],
        [f"{r['latency_ms']:.2f}" for r in rows],
        [f"{r['latency_vs_ref']:.3f}" for r in rows],
    ]
    fig = go.Figure(go.Table(header=dict(values=header, fill_color="#e8eef7", align="left"),
                             cells=dict(values=cells, align="left", height=26)))
    fig.update_layout(title=title, height=140 + 30 * len(rows), margin=dict(l=10, r=10, t=50, b=10))
    return fig
