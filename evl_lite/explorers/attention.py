"""Cross-attention explorer: where one student time position reads the teacher, per head, on the ECG.

The cross-attention alignment (``distillation.cross_attention``) gives, per record and head h,
a map ``A_h [N_s, N_t]``: row n spreads one unit of attention (softmax: non-negative, sums to
1) over the teacher's ``12 x P`` lead-patch tokens. The two models' ``TokenLayout`` put a row
back on the ECG:

- teacher token ``l * P + p`` covers lead l over patch p, so the row is a [12 leads x P
  patches] grid (``model_plots.token_grid``), and lead l receives the share
  ``m_l = sum_p A_h[n, l * P + p]``;
- student token n sees every lead over its receptive field ``[n J + o, n J + o + R)``
  (Araujo et al. 2019; clipped to the window) and is centred at ``c_n = n J + o + R / 2``.
  Its *cell* ``[c_n - J / 2, c_n + J / 2)`` is the moment it stands for. The attention on
  teacher patches overlapping the cell, next to the share equal attention would give there,
  says whether a head reads the teacher at the student's own time.

:func:`explorer_state` is the pure, tested logic; :class:`AttentionExplorer` wires it to
ipywidgets (record, head, student position) and redraws two plotly figures into an
``Output`` widget (the pattern of ``evl_lite.explorers.widgets``: no FigureWidget, no ``with output:``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from IPython.display import display
from plotly.subplots import make_subplots

from evl_lite.constants import LEADS
from evl_lite.explorers import TEMPLATE
from evl_lite.explorers.ecg_plots import display_lead
from evl_lite.explorers.model_plots import (
    SHADE,
    TokenGrid,
    attention_grid_figure,
    attention_on_ecg_figure,
    token_grid,
    values_on_samples,
)
from evl_lite.explorers.widgets import figure_bundle
from evl_lite.models.output import TokenLayout

CELL = "#1f77b4"  # the student token's cell (its own moment)
FIELD = "#7f7f7f"  # the student token's receptive field


# --------------------------------------------------------------------------- pure logic


def as_attention(attention: Any) -> np.ndarray:
    """Attention maps ``[B, H, N_s, N_t]`` as float64 numpy, or a clear ``ValueError``."""
    if isinstance(attention, torch.Tensor):
        attention = attention.detach().float().cpu().numpy()
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim != 4 or 0 in a.shape:
        raise ValueError(f"attention must be [B, H, N_s, N_t] with every size > 0; got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("attention holds NaN or infinite values")
    return a


def _check_teacher_layout(layout: TokenLayout) -> None:
    if (layout.lead < 0).any():
        raise ValueError("the teacher layout must hold lead-aware tokens (lead >= 0); this one has tokens of "
                         "all leads (-1): is it the student's?")


def lead_shares(weights: Any, layout: TokenLayout, n_leads: int = len(LEADS)) -> np.ndarray:
    """Attention per lead, ``m_l = sum of w_i over the tokens i of lead l``: [..., N_t] -> [..., 12]."""
    _check_teacher_layout(layout)
    w = weights.detach().float().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights)
    w = w.astype(np.float64)
    if w.ndim == 0 or w.shape[-1] != len(layout):
        raise ValueError(f"expected weights [..., N_t] with N_t = {len(layout)}; got shape {w.shape}")
    one_hot = np.eye(n_leads)[layout.lead.numpy()]  # [N_t, 12]
    return w @ one_hot  # [..., 12]


def student_geometry(layout: TokenLayout, receptive_field: tuple[int, int, int] | None = None
                     ) -> dict[str, np.ndarray]:
    """Receptive field, centre and cell of every student token, in samples (arrays ``[N_s]``).

    ``receptive_field``: ``(R, J, o)`` from ``ECGStudentCNN.receptive_field()``; the centres are
    then exact, ``c_n = n J + o + R / 2``, and the cells ``[c_n - J / 2, c_n + J / 2)`` (clipped to
    the window). Without it, the centre of the clipped field and cells of ``T / N_s`` samples.
    """
    if (layout.lead >= 0).any():
        raise ValueError("the student layout must hold time positions that see all leads (lead -1); this one "
                         "has lead-specific tokens: is it the teacher's?")
    n, t = len(layout), layout.n_samples
    start, end = layout.start.numpy().astype(np.float64), layout.end.numpy().astype(np.float64)
    if receptive_field is None:
        centre, half = (start + end) / 2, t / n / 2
    else:
        size, jump, offset = receptive_field
        first = np.arange(n) * jump + offset  # unclipped field starts [N_s]
        clipped = np.clip(first, 0, t), np.clip(first + size, 0, t)
        if not (np.array_equal(clipped[0], start) and np.array_equal(clipped[1], end)):
            raise ValueError(f"receptive field (R={size}, J={jump}, o={offset}) does not match the student "
                             f"layout of {n} tokens over {t} samples")
        centre, half = first + size / 2, jump / 2
    return {"field_start": start, "field_end": end, "centre": centre,
            "cell_start": np.clip(centre - half, 0, t), "cell_end": np.clip(centre + half, 0, t)}


def _choice(name: str, value: Any, n: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer index; got {value!r}")
    if not 0 <= value < n:
        raise ValueError(f"{name} {value} out of range: {what} (valid: 0 to {n - 1})")
    return int(value)


def explorer_state(attention: Any, teacher_layout: TokenLayout, student_layout: TokenLayout, record: int = 0,
                   head: int | str = 0, position: int = 0,
                   receptive_field: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """What one head's attention from one student position says, for one record.

    ``attention`` [B, H, N_s, N_t] (``CrossAttentionAlignment.attend``); ``head`` an index or
    ``"mean"`` (the average over heads, still a distribution). Returns the row ``weights``
    [N_t] and ``row_sum``; ``grid`` (TokenGrid, [12, P]); ``lead_shares`` [12] and ``time_shares``
    [P]; ``top_leads`` (lead indices, most attended first); ``top_token`` with its ``top_token_lead``
    and ``top_token_span_s``; the student token's ``field_s``, ``centre_s`` and ``cell_s``;
    ``at_cell`` (attention on teacher patches overlapping the cell) and ``at_cell_uniform`` (what
    equal attention would put there); ``entropy`` ``H(w) / log N_t`` in [0, 1]; ``on_samples``
    [12, T] (``values_on_samples``); the two layouts and ``fs``. Bad choices raise ``ValueError``.
    """
    a = as_attention(attention)
    b, h, n_s, n_t = a.shape
    _check_teacher_layout(teacher_layout)
    if n_s != len(student_layout) or n_t != len(teacher_layout):
        raise ValueError(f"attention [B, H, N_s, N_t] = {list(a.shape)} does not fit the layouts: "
                         f"{len(student_layout)} student and {len(teacher_layout)} teacher tokens")
    if student_layout.n_samples != teacher_layout.n_samples or student_layout.fs != teacher_layout.fs:
        raise ValueError(f"the layouts describe different windows: student {student_layout.n_samples} "
                         f"samples at {student_layout.fs:g} Hz, teacher {teacher_layout.n_samples} at "
                         f"{teacher_layout.fs:g} Hz")
    record = _choice("record", record, b, f"the attention holds {b} records")
    position = _choice("position", position, n_s, f"the student has {n_s} time positions")
    if head == "mean":
        weights = a[record, :, position].mean(axis=0)  # [N_t]
    elif isinstance(head, str):
        raise ValueError(f"head must be an index or 'mean'; got {head!r}")
    else:
        head = _choice("head", head, h, f"the component has {h} heads")
        weights = a[record, head, position]  # [N_t]
    geometry = student_geometry(student_layout, receptive_field)
    fs = teacher_layout.fs
    grid: TokenGrid = token_grid(weights, teacher_layout)  # [12, P]
    shares = lead_shares(weights, teacher_layout)  # [12]
    cell = (geometry["cell_start"][position], geometry["cell_end"][position])
    t_start, t_end = teacher_layout.start.numpy(), teacher_layout.end.numpy()
    at_cell = (t_start < cell[1]) & (t_end > cell[0])  # [N_t] teacher patches overlapping the cell
    top = int(np.argmax(weights))
    p = np.clip(weights, 1e-300, None)
    return {
        "record": record, "head": head, "position": position, "n_records": b, "n_heads": h,
        "weights": weights, "row_sum": float(weights.sum()), "grid": grid,
        "lead_shares": shares, "time_shares": np.nansum(grid.values, axis=0),
        "top_leads": [int(i) for i in np.argsort(-shares, kind="stable")],
        "top_token": top, "top_token_lead": int(teacher_layout.lead[top]),
        "top_token_span_s": (float(t_start[top]) / fs, float(t_end[top]) / fs),
        "field_s": (float(geometry["field_start"][position]) / fs,
                    float(geometry["field_end"][position]) / fs),
        "centre_s": float(geometry["centre"][position]) / fs,
        "cell_s": (float(cell[0]) / fs, float(cell[1]) / fs),
        "at_cell": float(weights[at_cell].sum()), "at_cell_uniform": float(at_cell.mean()),
        "entropy": float(-(weights * np.log(p)).sum() / np.log(n_t)) if n_t > 1 else 0.0,
        "on_samples": values_on_samples(weights, teacher_layout),
        "teacher_layout": teacher_layout, "student_layout": student_layout, "fs": fs,
    }


def status_text(state: Mapping[str, Any]) -> str:
    """One line summarising a state: the student token, where its attention goes, how spread it is."""
    lead = state["top_leads"][0]
    t0, t1 = state["top_token_span_s"]
    f0, f1 = state["field_s"]
    head = "mean of heads" if state["head"] == "mean" else f"head {state['head']}"
    return (f"record {state['record']}, {head}, student position {state['position']} (centre "
            f"{state['centre_s']:.2f} s, receptive field {f0:.2f}-{f1:.2f} s): most attended lead "
            f"{display_lead(LEADS[lead])} ({100 * state['lead_shares'][lead]:.0f}%, equal shares "
            f"{100 / len(state['lead_shares']):.0f}%); top token {state['top_token']} = lead "
            f"{display_lead(LEADS[state['top_token_lead']])} {t0:.2f}-{t1:.2f} s; at the student's own "
            f"moment {100 * state['at_cell']:.0f}% (equal: {100 * state['at_cell_uniform']:.0f}%); "
            f"entropy {state['entropy']:.2f}")


# --------------------------------------------------------------------------- figures


def _mark_student(fig: go.Figure, state: Mapping[str, Any], **where: Any) -> None:
    """Receptive field (dotted outline) and cell (shaded band) of the student token, on every panel."""
    f0, f1 = state["field_s"]
    c0, c1 = state["cell_s"]
    fig.add_vrect(x0=f0, x1=f1, line=dict(color=FIELD, dash="dot", width=1.5), fillcolor=FIELD, opacity=0.06,
                  **where)
    fig.add_vrect(x0=c0, x1=c1, line_width=0, fillcolor=CELL, opacity=0.35, **where)


def heatmap_figure(state: Mapping[str, Any], title: str | None = None) -> go.Figure:
    """The row as a [12 leads x time] heat map, with the student token's field (dotted) and cell (blue)."""
    head = "mean of heads" if state["head"] == "mean" else f"head {state['head']}"
    fig = attention_grid_figure(state["weights"], state["teacher_layout"], title=title or (
        f"{head}: attention of student position {state['position']} over the teacher's lead x time tokens"))
    _mark_student(fig, state)
    fig.update_xaxes(range=[0, state["teacher_layout"].n_samples / state["fs"]])
    return fig


def ecg_figure(x: Any, state: Mapping[str, Any], leads: Sequence[str | int] | None = None) -> go.Figure:
    """The ECG window x [12, T] shaded by the row (4 most attended leads unless ``leads``), student marked."""
    rows = sorted(state["top_leads"][:4]) if leads is None else leads
    fig = attention_on_ecg_figure(x, state["weights"], state["teacher_layout"], leads=rows,
                                  title=f"where student position {state['position']} reads the teacher "
                                        f"(red: attention; blue: its moment; dotted: its receptive field)")
    _mark_student(fig, state, row="all", col=1)
    return fig


def attention_map_figure(attention_map: Any, teacher_layout: TokenLayout, title: str = "attention map"
                         ) -> go.Figure:
    """One record's and head's full map ``[N_s, N_t]``: student positions (rows) x teacher tokens (columns).

    Teacher tokens are lead-major, so each lead is a block of P columns (separated by lines).
    """
    _check_teacher_layout(teacher_layout)
    a = np.asarray(attention_map.detach().float().cpu() if isinstance(attention_map, torch.Tensor)
                   else attention_map, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != len(teacher_layout):
        raise ValueError(f"expected a map [N_s, {len(teacher_layout)}]; got shape {a.shape}")
    lead = teacher_layout.lead.numpy()
    starts = np.flatnonzero(np.r_[True, lead[1:] != lead[:-1]])  # first token of each lead block
    ends = np.r_[starts[1:], len(lead)]
    fig = go.Figure(go.Heatmap(z=a, colorscale="Viridis", colorbar=dict(title="weight"),
                               hovertemplate="student %{y}, teacher token %{x}: %{z:.4f}<extra></extra>"))
    for s in starts[1:]:
        fig.add_vline(x=s - 0.5, line=dict(color="white", width=1))
    fig.update_xaxes(tickvals=((starts + ends - 1) / 2).tolist(), title_text="teacher token (lead block)",
                     ticktext=[display_lead(LEADS[lead[s]]) for s in starts])
    fig.update_yaxes(title_text="student position", autorange="reversed")
    fig.update_layout(title=title, template=TEMPLATE, height=380)
    return fig


def lead_shares_figure(shares: Any, centres_s: Any, title: str = "attention per lead") -> go.Figure:
    """Heat map of ``shares [N_s, 12]`` (each student position's attention summed per lead) over time."""
    s = np.asarray(shares, dtype=np.float64)
    c = np.asarray(centres_s, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(LEADS) or c.shape != (s.shape[0],):
        raise ValueError(f"expected shares [N_s, 12] and centres [N_s]; got {s.shape} and {c.shape}")
    fig = go.Figure(go.Heatmap(z=s.T, x=c, y=[display_lead(n) for n in LEADS], colorscale="Viridis",
                               colorbar=dict(title="share"),
                               hovertemplate="student at %{x:.2f} s, lead %{y}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=f"{title}<br><sup>equal shares: {1 / len(LEADS):.3f} per lead</sup>",
                      template=TEMPLATE, height=420, xaxis_title="student position: centre (s)")
    fig.update_yaxes(autorange="reversed")
    return fig


def side_by_side_figure(states: Mapping[str, Mapping[str, Any]], title: str = "") -> go.Figure:
    """Lead x time heat maps of several states (e.g. untrained vs trained), one colour scale for all."""
    if not states:
        raise ValueError("side_by_side_figure needs at least one state")
    names = list(states)
    grids = [states[n]["grid"] for n in names]
    top = max(float(np.nanmax(g.values)) for g in grids)
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[f"{n} (entropy {states[n]['entropy']:.2f})" for n in names])
    for i, (name, grid) in enumerate(zip(names, grids, strict=True), start=1):
        fig.add_trace(go.Heatmap(z=grid.values, x=grid.centres_s, y=grid.lead_names, zmin=0.0, zmax=top,
                                 colorscale="Viridis", showscale=i == 1, colorbar=dict(title="weight"),
                                 name=name, hovertemplate="%{y}, %{x:.2f} s: %{z:.4f}<extra></extra>"),
                      row=i, col=1)
        _mark_student(fig, states[name], row=i, col=1)
        fig.update_yaxes(autorange="reversed", row=i, col=1)
    fig.update_xaxes(title_text="time (s), centre of each token's span", row=len(names), col=1)
    fig.update_layout(title=title, template=TEMPLATE, height=120 + 300 * len(names))
    return fig


# --------------------------------------------------------------------------- widget


class AttentionExplorer:
    """ipywidgets controls (record, head, student position) wired to :func:`explorer_state`.

    ``records``: {label: x [12, T]}, in the order of the attention's records; ``attention``
    [B, H, N_s, N_t] of those windows. Every change recomputes the state, the ``status`` line and
    the two figures shown in ``output``. Display the explorer as the last expression of a cell.
    """

    def __init__(self, records: Mapping[str, Any], attention: Any, teacher_layout: TokenLayout,
                 student_layout: TokenLayout, receptive_field: tuple[int, int, int] | None = None,
                 record: int = 0, head: int | str = 0, position: int | None = None):
        self.attention = as_attention(attention)
        self.x = [np.asarray(x, dtype=np.float64) for x in records.values()]
        if len(self.x) != self.attention.shape[0]:
            raise ValueError(f"{len(self.x)} records for attention of {self.attention.shape[0]} records")
        self.layouts = (teacher_layout, student_layout)
        self.receptive_field = receptive_field
        n_s = self.attention.shape[2]
        style = {"description_width": "initial"}
        self.record = widgets.Dropdown(options=[(str(k), i) for i, k in enumerate(records)], value=record,
                                       description="record", style=style)
        self.head = widgets.Dropdown(options=[*((f"head {i}", i) for i in range(self.attention.shape[1])),
                                              ("mean of heads", "mean")], value=head, description="head",
                                     style=style)
        self.position = widgets.IntSlider(value=n_s // 2 if position is None else position, min=0,
                                          max=n_s - 1, description="student position",
                                          continuous_update=False, style=style)
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.state: dict[str, Any] = {}
        for control in (self.record, self.head, self.position):
            control.observe(self._on_change, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.record, self.head, self.position]), self.status,
                                    self.output])
        self.update()

    def _on_change(self, _change: dict) -> None:
        self.update()

    def update(self) -> None:
        """Recompute the state from the controls and redraw both figures."""
        self.state = explorer_state(self.attention, *self.layouts, record=self.record.value,
                                    head=self.head.value, position=self.position.value,
                                    receptive_field=self.receptive_field)
        self.status.value = f'<span style="color:{SHADE}">{status_text(self.state)}</span>'
        figures = (heatmap_figure(self.state), ecg_figure(self.x[self.state["record"]], self.state))
        # Replace the Output widget's content directly: `with output:` + clear_output can hang papermill.
        self.output.outputs = tuple({"output_type": "display_data", "data": figure_bundle(f), "metadata": {}}
                                    for f in figures)

    def _ipython_display_(self) -> None:
        display(self.widget)


def attention_explorer(records: Mapping[str, Any], attention: Any, teacher_layout: TokenLayout,
                       student_layout: TokenLayout, **kwargs: Any) -> AttentionExplorer:
    """Build the explorer (see :class:`AttentionExplorer`); in Colab, enable its widget manager first."""
    try:
        from google.colab import output as colab_output
    except ImportError:
        pass
    else:
        colab_output.enable_custom_widget_manager()
    return AttentionExplorer(records, attention, teacher_layout, student_layout, **kwargs)
