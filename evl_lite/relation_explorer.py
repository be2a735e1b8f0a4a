"""Relation explorer: the teacher's and a student's relation matrices side by side, and their mismatch.

The relation matching component (``distillation.relation``) never compares a CNN feature with a
transformer feature. Each model describes a batch by relations computed in its own space, and
only those are compared (Park et al. 2019):

    psi_D(i, j)    = ||f_i - f_j|| / mu,     mu = mean of the positive distances     [B, B] or [K, K]
    psi_A(i, j, k) = < e_ij, e_ik >,         e_ij = (f_j - f_i) / ||f_j - f_i||       [B, B, B]
    mismatch       = mean over entries of SmoothL1(psi^s - psi^t)

This module shows one of these matrices at a time (``RELATIONS``): the sample distances of the
pooled embeddings, the token distances of one record on the common grid of K time bins
(``time_bins.bin_tokens``), or the angles at one anchor sample (the ``[B, B]`` slice
``psi_A(anchor, ., .)``). Everything is computed in float64.

:func:`explorer_state` is the pure, tested logic; :func:`relation_figure` draws a state;
:class:`RelationExplorer` wires it to ipywidgets (relation, student, record, anchor) and redraws
the figure into an ``Output`` widget (the pattern of ``evl_lite.widgets``: no FigureWidget, no
``with output:``). :func:`relation_mismatch` measures the component's loss on many records.
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
from torch.nn import functional as F

from evl_lite.distillation.relation import GeometricRelationMatching, angle_relation, distance_relation
from evl_lite.distillation.time_bins import bin_tokens, common_bins
from evl_lite.model_output import ModelOutput
from evl_lite.model_plots import PALETTE
from evl_lite.widgets import figure_bundle

RELATIONS = {
    "sample_distance": "sample distances",
    "token_distance": "token distances of one record",
    "angle": "angles at one anchor sample",
}
STUDENT, TEACHER = PALETTE[0], PALETTE[1]


# --------------------------------------------------------------------------- pure logic


def _check_index(value: Any, n: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer in 0..{n - 1}; got {value!r}")
    if not 0 <= int(value) < n:
        raise ValueError(f"{name} must lie in 0..{n - 1} (there are {n}); got {value}")
    return int(value)


def raw_scale(features: torch.Tensor) -> float:
    """Mean positive Euclidean distance between the rows of ``features [..., N, d]`` (the mu of psi_D)."""
    x = features.double()
    d = torch.cdist(x, x)  # [..., N, N], direct differences: exact at any offset from the origin
    return float(d[d > 0].mean()) if (d > 0).any() else 0.0


def relation_matrix(output: ModelOutput, relation: str, n_bins: int, record: int = 0,
                    anchor: int = 0) -> np.ndarray:
    """One relation matrix of one model, float64: ``[B, B]`` (sample distances, angles at ``anchor``)
    or ``[K, K]`` (token distances of ``record`` on K time bins)."""
    if relation == "sample_distance":
        return distance_relation(output.pooled.double()).numpy()
    if relation == "angle":
        pooled = output.pooled.double()
        pooled = pooled - pooled.mean(dim=0)  # no angle changes; avoids cancellation in the Gram matrix
        return angle_relation(pooled)[anchor].numpy()  # [B, B]: cos of the angle at the anchor
    if relation == "token_distance":
        binned = bin_tokens(output.tokens[record : record + 1].double(), output.token_layout, n_bins)
        return distance_relation(binned)[0].numpy()  # [K, K]
    raise ValueError(f"relation must be one of {', '.join(RELATIONS)}; got {relation!r}")


def smooth_l1(student: np.ndarray, teacher: np.ndarray) -> float:
    """Mean SmoothL1 (beta = 1) between two relation matrices, as ``F.smooth_l1_loss``."""
    return float(F.smooth_l1_loss(torch.as_tensor(student), torch.as_tensor(teacher)))


def explorer_state(teacher: ModelOutput, students: Mapping[str, ModelOutput],
                   relation: str = "sample_distance", student: str | None = None, record: int = 0,
                   anchor: int = 0, n_bins: int | None = None,
                   labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Teacher and student relation matrices for one view, and their smooth-L1 mismatch.

    ``teacher`` and every entry of ``students`` describe the same B windows. ``relation``: a key of
    ``RELATIONS``; ``student``: a key of ``students`` (default: the first); ``record`` picks the
    window of the token relation, ``anchor`` the sample at which the angles are measured;
    ``n_bins``: the time grid (default: the finest one every layout fills, ``common_bins``).

    Returns ``teacher_matrix`` and ``student_matrix`` (``[M, M]``), ``loss_map`` (SmoothL1 per
    entry, whose mean is ``mismatch``), ``mismatches`` ({student: mismatch of the same view}),
    ``ticks`` (M axis labels), ``axis_title``, the raw (unnormalised) mean distances
    ``teacher_scale``/``student_scale`` of the features behind the view, and the choices.
    """
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {', '.join(RELATIONS)}; got {relation!r}")
    if not students:
        raise ValueError("the relation explorer needs at least one student")
    names = list(students)
    student = names[0] if student is None else student
    if student not in students:
        raise ValueError(f"student must be one of {', '.join(map(repr, names))}; got {student!r}")
    b = teacher.pooled.shape[0]
    for name, out in students.items():
        if out.pooled.shape[0] != b:
            raise ValueError(f"student {name!r} has {out.pooled.shape[0]} windows, the teacher {b}: "
                             "relations compare the same windows")
    if b < (3 if relation == "angle" else 2):
        raise ValueError(f"{RELATIONS[relation]} need at least {3 if relation == 'angle' else 2} windows; "
                         f"got B = {b}")
    record = _check_index(record, b, "record")
    anchor = _check_index(anchor, b, "anchor")
    layouts = [teacher.token_layout, *(out.token_layout for out in students.values())]
    n_bins = common_bins(*layouts) if n_bins is None else n_bins
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2; got {n_bins!r}")
    labels = [f"window {i}" for i in range(b)] if labels is None else [str(x) for x in labels]
    if len(labels) != b:
        raise ValueError(f"{len(labels)} labels for {b} windows")

    t_matrix = relation_matrix(teacher, relation, n_bins, record, anchor)
    s_matrices = {name: relation_matrix(out, relation, n_bins, record, anchor) for name, out in students.items()}
    s_matrix = s_matrices[student]
    if relation == "token_distance":
        n_samples, fs = teacher.token_layout.n_samples, teacher.token_layout.fs
        centres = (np.arange(n_bins) + 0.5) * n_samples / n_bins / fs
        ticks, axis_title = [f"{c:.2f} s" for c in centres], "time bin (centre)"
        t_scale = raw_scale(bin_tokens(teacher.tokens[record : record + 1].double(), teacher.token_layout,
                                       n_bins))
        s_out = students[student]
        s_scale = raw_scale(bin_tokens(s_out.tokens[record : record + 1].double(), s_out.token_layout, n_bins))
    else:
        ticks, axis_title = labels, "sample"
        t_scale, s_scale = raw_scale(teacher.pooled), raw_scale(students[student].pooled)
    loss_map = F.smooth_l1_loss(torch.as_tensor(s_matrix), torch.as_tensor(t_matrix), reduction="none").numpy()
    return {
        "relation": relation, "relation_label": RELATIONS[relation], "student": student, "record": record,
        "anchor": anchor, "n_bins": int(n_bins), "labels": labels, "ticks": ticks, "axis_title": axis_title,
        "teacher_matrix": t_matrix, "student_matrix": s_matrix, "loss_map": loss_map,
        "mismatch": smooth_l1(s_matrix, t_matrix),
        "mismatches": {name: smooth_l1(m, t_matrix) for name, m in s_matrices.items()},
        "teacher_scale": t_scale, "student_scale": s_scale,
    }


def view_text(state: Mapping[str, Any]) -> str:
    """What the matrices show, in words."""
    if state["relation"] == "token_distance":
        return f"token distances of {state['labels'][state['record']]} on {state['n_bins']} time bins"
    if state["relation"] == "angle":
        return f"angles at anchor {state['labels'][state['anchor']]}"
    return "sample distances"


def status_text(state: Mapping[str, Any]) -> str:
    """One line: the view, its mismatch for every student, the raw scales that normalisation removed."""
    per_student = ", ".join(f"{name} {value:.4f}" for name, value in state["mismatches"].items())
    scale = ""
    if state["relation"] != "angle":
        ratio = state["teacher_scale"] / max(state["student_scale"], 1e-300)
        scale = (f"; raw mean distance teacher {state['teacher_scale']:.3g}, {state['student']} "
                 f"{state['student_scale']:.3g} (x{ratio:.3g}), removed by the normalisation")
    return (f"{view_text(state)}: smooth-L1 mismatch of {state['student']} = {state['mismatch']:.4f} "
            f"(all students: {per_student}){scale}")


def relation_figure(state: Mapping[str, Any], title: str | None = None) -> go.Figure:
    """Three heat maps: the teacher's matrix, the student's (one colour scale), SmoothL1 per entry."""
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.1, subplot_titles=(
        "teacher", f"student: {state['student']}", f"smooth L1 per entry (mean {state['mismatch']:.4f})"))
    t, s = state["teacher_matrix"], state["student_matrix"]
    low, high = float(min(t.min(), s.min())), float(max(t.max(), s.max()))
    ticks = list(state["ticks"])
    hover = "%{y} / %{x}: %{z:.3f}<extra></extra>"
    for col, z in ((1, t), (2, s)):
        fig.add_trace(go.Heatmap(z=z, x=ticks, y=ticks, coloraxis="coloraxis", hovertemplate=hover),
                      row=1, col=col)
    fig.add_trace(go.Heatmap(z=state["loss_map"], x=ticks, y=ticks, coloraxis="coloraxis2",
                             hovertemplate=hover), row=1, col=3)
    value = "cos(angle)" if state["relation"] == "angle" else "psi_D"
    fig.update_layout(
        title=title or f"{view_text(state)}: teacher vs {state['student']}", template="plotly_white",
        height=400, width=1100,
        coloraxis=dict(colorscale="Viridis", cmin=low, cmax=high, colorbar=dict(title=value, x=0.645, len=0.9)),
        coloraxis2=dict(colorscale="Reds", cmin=0.0, colorbar=dict(title="SL1", x=1.02, len=0.9)),
    )
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False, title_text=state["axis_title"])
    return fig


def _take(output: ModelOutput, index: torch.Tensor) -> ModelOutput:
    return ModelOutput(logits=output.logits[index], tokens=output.tokens[index], pooled=output.pooled[index],
                       token_layout=output.token_layout)


@torch.no_grad()
def relation_mismatch(student: ModelOutput, teacher: ModelOutput, batch_size: int = 32,
                      loss: GeometricRelationMatching | None = None) -> dict[str, float]:
    """The relation loss between two models over many windows, as training sees it in batches.

    The B windows are cut into ``ceil(B / batch_size)`` near-equal chunks (relations only exist
    within a batch); the loss and its three terms are averaged over chunks, weighted by size.
    Returns ``{"total", "sample_distance", "angle", "token_distance"}``.
    """
    loss = loss or GeometricRelationMatching()
    b = teacher.pooled.shape[0]
    if student.pooled.shape[0] != b:
        raise ValueError(f"student has {student.pooled.shape[0]} windows, the teacher {b}")
    if batch_size < 3 or b < 3:
        raise ValueError(f"relations need batches of at least 3 windows; got batch_size={batch_size}, B={b}")
    sums = dict.fromkeys(("total", "sample_distance", "angle", "token_distance"), 0.0)
    for chunk in torch.arange(b).tensor_split(-(-b // batch_size)):
        value, extras = loss(_take(student, chunk), _take(teacher, chunk))
        sums["total"] += float(value) * len(chunk)
        for name in ("sample_distance", "angle", "token_distance"):
            sums[name] += float(extras[f"term_{name}"]) * len(chunk)
    return {name: value / b for name, value in sums.items()}


# --------------------------------------------------------------------------- widget


class RelationExplorer:
    """ipywidgets controls (relation, student, record, anchor) wired to :func:`explorer_state`.

    ``teacher`` and ``students`` ({name: ModelOutput}, e.g. untrained and distilled) describe the
    same B windows, named by ``labels``. Every change recomputes the state, the ``status`` line
    and the figure shown in ``output``. Display the explorer as the last expression of a cell.
    """

    def __init__(self, teacher: ModelOutput, students: Mapping[str, ModelOutput],
                 labels: Sequence[str] | None = None, n_bins: int | None = None,
                 relation: str = "sample_distance", student: str | None = None):
        self.teacher, self.students, self.n_bins = teacher, dict(students), n_bins
        b = teacher.pooled.shape[0]
        self.labels = [f"window {i}" for i in range(b)] if labels is None else [str(x) for x in labels]
        explorer_state(teacher, self.students, relation, student, labels=self.labels, n_bins=n_bins)  # checks
        style = {"description_width": "initial"}
        self.relation = widgets.Dropdown(options=[(v, k) for k, v in RELATIONS.items()], value=relation,
                                         description="relation", style=style)
        self.student = widgets.ToggleButtons(options=list(self.students), value=student or next(iter(students)),
                                             description="student", style=style)
        options = [(label, i) for i, label in enumerate(self.labels)]
        self.record = widgets.Dropdown(options=options, value=0, description="record (tokens)", style=style)
        self.anchor = widgets.Dropdown(options=options, value=0, description="anchor (angles)", style=style)
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.state: dict[str, Any] = {}
        for control in (self.relation, self.student, self.record, self.anchor):
            control.observe(self._on_change, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.relation, self.record, self.anchor]), self.student,
                                    self.status, self.output])
        self.update()

    def _on_change(self, _change: dict) -> None:
        self.update()

    def update(self) -> None:
        """Recompute the state from the controls and redraw the figure."""
        self.state = explorer_state(self.teacher, self.students, self.relation.value, self.student.value,
                                    self.record.value, self.anchor.value, self.n_bins, self.labels)
        self.record.disabled = self.relation.value != "token_distance"
        self.anchor.disabled = self.relation.value != "angle"
        self.status.value = f'<span style="color:{STUDENT}">{status_text(self.state)}</span>'
        # Replace the Output widget's content directly: `with output:` + clear_output can hang papermill.
        shown = {"output_type": "display_data", "data": figure_bundle(relation_figure(self.state)), "metadata": {}}
        self.output.outputs = (shown,)

    def _ipython_display_(self) -> None:
        display(self.widget)


def relation_explorer(teacher: ModelOutput, students: Mapping[str, ModelOutput], **kwargs: Any) -> RelationExplorer:
    """Build the explorer (see :class:`RelationExplorer`); in Colab, enable its widget manager first."""
    try:
        from google.colab import output as colab_output
    except ImportError:
        pass
    else:
        colab_output.enable_custom_widget_manager()
    return RelationExplorer(teacher, students, **kwargs)
