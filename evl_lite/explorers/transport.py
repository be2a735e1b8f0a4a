"""Transport-plan explorer: how the OT component moves the student's tokens onto the teacher's.

The OT feature matching (``distillation.optimal_transport``) compares, per record, the student's
projected tokens ``ŝ [N_s, d_t]`` with the teacher's ``t [N_t, d_t]`` through the cosine cost
``C_ij = 1 - cos(ŝ_i, t_j)`` and the entropic plan (Cuturi 2013)

    P* = argmin_{P 1 = a, P^T 1 = b, P >= 0} <P, C> - eps H(P),

found by Sinkhorn (``sinkhorn_plans``). Row i of ``P*`` says where student position i sends its
mass ``a_i``; column j where teacher token j receives its ``b_j`` from. Teacher tokens are
lead-major (token ``l * P + p`` = patch p of lead l), so summing a row over each lead's tokens,

    M_il = sum_{j : lead(j) = l} P*_ij,        sum_l M_il = (P* 1)_i = a_i,

gives the teacher leads each student position draws its mass from (``lead_mass``, [N_s, 12]).

:func:`explorer_state` is the pure, tested logic (one record, a regularisation, a choice of
marginals); :class:`TransportExplorer` wires it to ipywidgets (record, log-scale ``eps``
slider, marginals) and redraws three plotly figures into an ``Output`` widget (the pattern of
``evl_lite.explorers.widgets``: no FigureWidget, no ``with output:``). :func:`entropic_gap` and
:func:`plan_lines_figure` serve the toy problems of notebook 05.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import ot
import plotly.graph_objects as go
import torch
from IPython.display import display
from plotly.subplots import make_subplots

from evl_lite.constants import LEADS
from evl_lite.distillation.optimal_transport import MARGINALS, cosine_cost, sinkhorn_plans, token_marginals
from evl_lite.explorers import TEMPLATE
from evl_lite.explorers.ecg_plots import display_lead
from evl_lite.explorers.model_plots import PALETTE
from evl_lite.explorers.widgets import figure_bundle
from evl_lite.models.output import TokenLayout

REG_RANGE = (1e-3, 1.0)  # the slider's range of eps, in units of the cosine cost (which lies in [0, 2])
STUDENT, TEACHER = PALETTE[0], PALETTE[1]


# --------------------------------------------------------------------------- pure logic


def check_reg(reg: Any) -> float:
    """``eps`` as a float, or a ``ValueError`` saying why it cannot regularise a plan."""
    if isinstance(reg, bool) or not isinstance(reg, int | float | np.integer | np.floating):
        raise ValueError(f"reg (eps) must be a positive number; got {reg!r}")
    if not math.isfinite(reg) or reg <= 0:
        raise ValueError(f"reg (eps) must be a positive, finite number (the slider offers "
                         f"{REG_RANGE[0]:g} to {REG_RANGE[1]:g}); got {reg!r}")
    return float(reg)


def as_tokens(tokens: Any, name: str) -> torch.Tensor:
    """Tokens ``[B, N, d]`` as a float64 CPU tensor, or a clear ``ValueError``."""
    t = torch.as_tensor(tokens.detach().cpu() if isinstance(tokens, torch.Tensor) else tokens)
    if t.ndim != 3 or 0 in t.shape:
        raise ValueError(f"{name} must be [B, N, d] with every size > 0; got shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} hold NaN or infinite values")
    return t


def lead_mass(plan: Any, teacher_layout: TokenLayout, n_leads: int = len(LEADS)) -> np.ndarray:
    """``M_il = sum of P_ij over the teacher tokens j of lead l``: plan [N_s, N_t] -> [N_s, 12]."""
    if (teacher_layout.lead < 0).any():
        raise ValueError("the teacher layout must hold lead-aware tokens (lead >= 0); this one has tokens of "
                         "all leads (-1): is it the student's?")
    p = np.asarray(plan.detach().cpu() if isinstance(plan, torch.Tensor) else plan, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(teacher_layout):
        raise ValueError(f"expected a plan [N_s, N_t] with N_t = {len(teacher_layout)}; got shape {p.shape}")
    return p @ np.eye(n_leads)[teacher_layout.lead.numpy()]  # [N_s, N_t] @ [N_t, 12]


def entropic_gap(cost: Any, a: Any, b: Any, regs: Sequence[float], max_iter: int = 20_000,
                 tol: float = 1e-12) -> dict[str, Any]:
    """How far the entropic plan's cost is from the exact optimum: ``<P_eps, C> - OT(a, b)`` per eps.

    ``cost [N, M]``, ``a [N]``, ``b [M]`` (float64). The exact value comes from the network simplex
    (``ot.emd2``). Every ``P_eps`` is a feasible plan, so the gap is >= 0 (up to Sinkhorn's
    tolerance) and it shrinks to 0 with eps. Returns ``eps``, ``gap``, ``cost`` (<P_eps, C>), ``exact``
    and ``marginal_error`` (max over eps of the plans' worst marginal error).
    """
    c = torch.as_tensor(np.asarray(cost, dtype=np.float64))
    wa = torch.as_tensor(np.asarray(a, dtype=np.float64))
    wb = torch.as_tensor(np.asarray(b, dtype=np.float64))
    exact = float(ot.emd2(wa.numpy(), wb.numpy(), c.numpy()))
    costs, errors = [], []
    for reg in regs:
        plan = sinkhorn_plans(c[None], wa[None], wb[None], check_reg(reg), max_iter, tol)[0]  # [N, M]
        costs.append(float((plan * c).sum()))
        errors.append(max(float((plan.sum(1) - wa).abs().max()), float((plan.sum(0) - wb).abs().max())))
    return {"eps": [float(r) for r in regs], "cost": costs, "exact": exact,
            "gap": [v - exact for v in costs], "marginal_error": max(errors)}


def explorer_state(student_tokens: Any, teacher_tokens: Any, teacher_layout: TokenLayout,
                   student_layout: TokenLayout | None = None, record: int = 0, reg: float = 0.05,
                   marginals: str = "uniform", max_iter: int = 3000, tol: float = 1e-9) -> dict[str, Any]:
    """The transport plan of one record at one ``eps``, its marginals and its per-lead mass.

    ``student_tokens`` [B, N_s, d_t]: the student's tokens *after* the component's projector
    (``loss.projector(student.tokens)``); ``teacher_tokens`` [B, N_t, d_t]. Computed in float64.
    Returns ``plan`` [N_s, N_t], ``cost`` [N_s, N_t], targets ``a`` [N_s] and ``b`` [N_t], the plan's
    ``row_sums``/``col_sums``, ``marginal_error`` (max |P 1 - a|, |P^T 1 - b|), ``transport_cost``
    <P, C>, ``entropy`` H(P) / log(N_s N_t) in [0, 1], ``lead_mass`` [N_s, 12] (rows sum to the row
    sums) and ``lead_share`` (each row divided by its sum), ``top_lead`` [N_s], and the settings.
    Bad records, regularisations or marginals raise ``ValueError``.
    """
    reg = check_reg(reg)
    if marginals not in MARGINALS:
        raise ValueError(f"marginals must be one of {MARGINALS}; got {marginals!r}")
    s, t = as_tokens(student_tokens, "student tokens"), as_tokens(teacher_tokens, "teacher tokens")
    if s.shape[0] != t.shape[0] or s.shape[2] != t.shape[2]:
        raise ValueError(f"student tokens {tuple(s.shape)} and teacher tokens {tuple(t.shape)} need the same "
                         "batch and width: project the student's tokens first (loss.projector)")
    if t.shape[1] != len(teacher_layout):
        raise ValueError(f"{t.shape[1]} teacher tokens for a layout of {len(teacher_layout)}")
    if student_layout is not None and s.shape[1] != len(student_layout):
        raise ValueError(f"{s.shape[1]} student tokens for a layout of {len(student_layout)}")
    n_records = s.shape[0]
    if isinstance(record, bool) or not isinstance(record, int | np.integer) or not 0 <= record < n_records:
        raise ValueError(f"record must be an index from 0 to {n_records - 1}; got {record!r}")
    s, t = s[record:record + 1], t[record:record + 1]  # [1, N_s, d], [1, N_t, d]
    cost = cosine_cost(s, t)  # [1, N_s, N_t]
    a, b = token_marginals(s, marginals), token_marginals(t, marginals)  # [1, N_s], [1, N_t]
    plan = sinkhorn_plans(cost, a, b, reg, max_iter, tol)[0].numpy()  # [N_s, N_t]
    cost, a, b = cost[0].numpy(), a[0].numpy(), b[0].numpy()
    rows, cols = plan.sum(axis=1), plan.sum(axis=0)
    mass = lead_mass(plan, teacher_layout)  # [N_s, 12]
    p = np.clip(plan, 1e-300, None)
    return {
        "record": int(record), "n_records": n_records, "reg": reg, "marginals": marginals,
        "plan": plan, "cost": cost, "a": a, "b": b, "row_sums": rows, "col_sums": cols,
        "marginal_error": float(max(np.abs(rows - a).max(), np.abs(cols - b).max())),
        "transport_cost": float((plan * cost).sum()),
        "entropy": float(-(plan * np.log(p)).sum() / np.log(plan.size)),
        "lead_mass": mass, "lead_share": mass / np.clip(mass.sum(axis=1, keepdims=True), 1e-300, None),
        "top_lead": mass.argmax(axis=1),
        "teacher_layout": teacher_layout, "student_layout": student_layout,
    }


def status_text(state: Mapping[str, Any]) -> str:
    """One line summarising a state: settings, transport cost, spread, marginal error, busiest lead."""
    leads, counts = np.unique(state["top_lead"], return_counts=True)
    busiest = display_lead(LEADS[int(leads[counts.argmax()])])
    return (f"record {state['record']}, eps = {state['reg']:.3g}, {state['marginals']} marginals: "
            f"<P, C> = {state['transport_cost']:.4f}; entropy {state['entropy']:.2f} (1 = spread evenly); "
            f"marginal error {state['marginal_error']:.1e}; lead {busiest} is the main source of "
            f"{counts.max()} of {len(state['top_lead'])} student positions")


# --------------------------------------------------------------------------- figures


def _lead_blocks(layout: TokenLayout) -> tuple[np.ndarray, np.ndarray, list[str]]:
    lead = layout.lead.numpy()
    starts = np.flatnonzero(np.r_[True, lead[1:] != lead[:-1]])  # first token of each lead block
    ends = np.r_[starts[1:], len(lead)]
    return starts, ends, [display_lead(LEADS[lead[s]]) for s in starts]


def plan_figure(state: Mapping[str, Any], title: str | None = None) -> go.Figure:
    """The plan ``[N_s, N_t]`` as a heat map: student positions (rows) x teacher tokens (lead blocks)."""
    starts, ends, names = _lead_blocks(state["teacher_layout"])
    fig = go.Figure(go.Heatmap(z=state["plan"], colorscale="Viridis", colorbar=dict(title="mass"),
                               hovertemplate="student %{y} -> teacher token %{x}: %{z:.2e}<extra></extra>"))
    for s in starts[1:]:
        fig.add_vline(x=s - 0.5, line=dict(color="white", width=1))
    fig.update_xaxes(tickvals=((starts + ends - 1) / 2).tolist(), ticktext=names,
                     title_text="teacher token (one block of patches per lead)")
    fig.update_yaxes(title_text="student position", autorange="reversed")
    fig.update_layout(title=title or f"transport plan P* (eps = {state['reg']:.3g}, {state['marginals']} "
                                     f"marginals)", template=TEMPLATE, height=380)
    return fig


def marginals_figure(state: Mapping[str, Any]) -> go.Figure:
    """Row sums of the plan vs the student weights a, column sums vs the teacher weights b."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "rows: P 1 vs a (student positions)", "columns: P^T 1 vs b (teacher tokens)"))
    for col, (got, want, colour) in enumerate(((state["row_sums"], state["a"], STUDENT),
                                               (state["col_sums"], state["b"], TEACHER)), start=1):
        x = np.arange(len(want))
        fig.add_trace(go.Bar(x=x, y=got, marker_color=colour, opacity=0.55, name="plan sums",
                             showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Scatter(x=x, y=want, mode="markers", marker=dict(color="#111111", size=5,
                                 symbol="line-ew-open"), name="target weight", showlegend=col == 1),
                      row=1, col=col)
    starts, ends, names = _lead_blocks(state["teacher_layout"])
    fig.update_xaxes(title_text="student position", row=1, col=1)
    fig.update_xaxes(tickvals=((starts + ends - 1) / 2).tolist(), ticktext=names, title_text="teacher lead",
                     row=1, col=2)
    fig.update_yaxes(title_text="mass", rangemode="tozero")
    fig.update_layout(title=f"marginals (largest error {state['marginal_error']:.1e})",
                      template=TEMPLATE, height=320, bargap=0.1, legend=dict(orientation="h", y=-0.25))
    return fig


def lead_mass_figure(state_or_mass: Any, title: str = "which teacher leads each student position draws "
                     "its mass from") -> go.Figure:
    """Heat map of the per-lead shares ``[N_s, 12]`` (each student row divided by its mass a_i).

    Accepts a state (``lead_share``) or a mass matrix ``[N_s, 12]`` (normalised here).
    """
    if isinstance(state_or_mass, Mapping):
        share = np.asarray(state_or_mass["lead_share"])
    else:
        mass = np.asarray(state_or_mass, dtype=np.float64)
        if mass.ndim != 2 or mass.shape[1] != len(LEADS):
            raise ValueError(f"expected a lead mass [N_s, {len(LEADS)}]; got shape {mass.shape}")
        share = mass / np.clip(mass.sum(axis=1, keepdims=True), 1e-300, None)
    fig = go.Figure(go.Heatmap(z=share.T, y=[display_lead(n) for n in LEADS], colorscale="Viridis",
                               colorbar=dict(title="share"),
                               hovertemplate="student %{x}, lead %{y}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=f"{title}<br><sup>share of each position's mass; equal shares: "
                            f"{1 / len(LEADS):.3f} per lead</sup>", template=TEMPLATE, height=420,
                      xaxis_title="student position")
    fig.update_yaxes(autorange="reversed")
    return fig


def plan_lines_figure(x: Any, y: Any, plan: Any, title: str = "transport plan", labels: Sequence[str] = (
        "student", "teacher"), min_share: float = 0.01) -> go.Figure:
    """2-D point clouds ``x [N, 2]`` and ``y [M, 2]`` with a line per plan entry ``P_ij``.

    Line opacity and width grow with ``P_ij / max P``; entries below ``min_share`` of the largest
    are not drawn. Marker size grows with each point's mass (the plan's row and column sums).
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    p = np.asarray(plan, dtype=np.float64)
    if xs.ndim != 2 or ys.ndim != 2 or xs.shape[1] != 2 or ys.shape[1] != 2 or p.shape != (len(xs), len(ys)):
        raise ValueError(f"expected x [N, 2], y [M, 2] and plan [N, M]; got {xs.shape}, {ys.shape}, "
                         f"{p.shape}")
    fig = go.Figure()
    top = p.max() if p.size and p.max() > 0 else 1.0
    for i, j in zip(*np.nonzero(p >= min_share * top), strict=True):
        w = p[i, j] / top
        fig.add_trace(go.Scatter(x=[xs[i, 0], ys[j, 0]], y=[xs[i, 1], ys[j, 1]], mode="lines",
                                 line=dict(color="#555555", width=0.5 + 3.5 * w), opacity=0.15 + 0.85 * w,
                                 hoverinfo="text", text=f"P[{i},{j}] = {p[i, j]:.3f}", showlegend=False))
    for pts, mass, colour, label in ((xs, p.sum(1), STUDENT, labels[0]), (ys, p.sum(0), TEACHER, labels[1])):
        fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name=label,
                                 marker=dict(color=colour, size=6 + 24 * mass / max(mass.max(), 1e-300))))
    fig.update_layout(title=title, template=TEMPLATE, width=520, height=480,
                      legend=dict(orientation="h", y=-0.12))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


# --------------------------------------------------------------------------- widget


class TransportExplorer:
    """ipywidgets controls (record, eps on a log scale, marginals) wired to :func:`explorer_state`.

    ``student_tokens`` [B, N_s, d_t] (projected) and ``teacher_tokens`` [B, N_t, d_t] of the same B
    windows; ``labels`` names the records. Every change recomputes the state, the ``status`` line and
    the three figures shown in ``output``. Display the explorer as the last expression of a cell.
    """

    def __init__(self, student_tokens: Any, teacher_tokens: Any, teacher_layout: TokenLayout,
                 student_layout: TokenLayout | None = None, labels: Sequence[str] | None = None,
                 reg: float = 0.05, marginals: str = "uniform", **solver: Any):
        self.student = as_tokens(student_tokens, "student tokens")
        self.teacher = as_tokens(teacher_tokens, "teacher tokens")
        self.layouts = (teacher_layout, student_layout)
        self.solver = solver  # max_iter, tol
        n = self.student.shape[0]
        labels = list(labels) if labels is not None else [f"record {i}" for i in range(n)]
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} records")
        style = {"description_width": "initial"}
        self.record = widgets.Dropdown(options=[(str(k), i) for i, k in enumerate(labels)], value=0,
                                       description="record", style=style)
        self.reg = widgets.FloatLogSlider(value=check_reg(reg), base=10, min=math.log10(REG_RANGE[0]),
                                          max=math.log10(REG_RANGE[1]), step=0.1, readout_format=".3g",
                                          description="eps (regularisation)", continuous_update=False,
                                          style=style)
        self.marginals = widgets.ToggleButtons(options=list(MARGINALS), value=marginals,
                                               description="marginals", style=style)
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.state: dict[str, Any] = {}
        for control in (self.record, self.reg, self.marginals):
            control.observe(self._on_change, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.record, self.reg, self.marginals]), self.status,
                                    self.output])
        self.update()

    def _on_change(self, _change: dict) -> None:
        self.update()

    def update(self) -> None:
        """Recompute the state from the controls and redraw the three figures."""
        self.state = explorer_state(self.student, self.teacher, *self.layouts, record=self.record.value,
                                    reg=self.reg.value, marginals=self.marginals.value, **self.solver)
        self.status.value = f'<span style="color:{STUDENT}">{status_text(self.state)}</span>'
        figures = (plan_figure(self.state), marginals_figure(self.state), lead_mass_figure(self.state))
        # Replace the Output widget's content directly: `with output:` + clear_output can hang papermill.
        self.output.outputs = tuple({"output_type": "display_data", "data": figure_bundle(f), "metadata": {}}
                                    for f in figures)

    def _ipython_display_(self) -> None:
        display(self.widget)


def transport_explorer(student_tokens: Any, teacher_tokens: Any, teacher_layout: TokenLayout,
                       student_layout: TokenLayout | None = None, **kwargs: Any) -> TransportExplorer:
    """Build the explorer (see :class:`TransportExplorer`); in Colab, enable its widget manager first."""
    try:
        from google.colab import output as colab_output
    except ImportError:
        pass
    else:
        colab_output.enable_custom_widget_manager()
    return TransportExplorer(student_tokens, teacher_tokens, teacher_layout, student_layout, **kwargs)
