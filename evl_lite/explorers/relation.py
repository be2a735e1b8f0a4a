"""Relation explorer: the teacher's and a student's relation matrices side by side, and their mismatch.

The relation matching component (``distillation.relation``) never compares a CNN feature with a
transformer feature. Each model describes a batch by relations computed in its own space, and
only those are compared (Park et al. 2019):

    psi_D(i, j)    = ||f_i - f_j|| / mu,     mu = mean of the positive distances     [B, B] or [K, K]
    psi_A(i, j, k) = < e_ij, e_ik >,         e_ij = (f_j - f_i) / ||f_j - f_i||       [B, B, B]
    mismatch       = mean over entries of SmoothL1(psi^s - psi^t)

One matrix is shown at a time (``KINDS``): the sample distances of the pooled embeddings, the
token distances of one record on the common grid of K time bins (``time_bins.bin_tokens``), or
the angles at one anchor record (the ``[B, B]`` slice ``psi_A(anchor, ., .)``). Everything is
computed in float64; the angles on centred embeddings (no angle changes, and the Gram-matrix
formula loses no precision when the points sit far from the origin).

:func:`explorer_state` is the pure, tested logic; :func:`relation_figure` draws a state;
:class:`RelationExplorer` wires it to ipywidgets (relation kind, student, record or anchor) and
redraws the figure into an ``Output`` widget (the pattern of ``evl_lite.explorers.widgets``: no
FigureWidget, no ``with output:``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from IPython.display import display
from plotly.subplots import make_subplots
from torch import Tensor
from torch.nn import functional as F

from evl_lite.distillation.relation import angle_relation, distance_relation
from evl_lite.distillation.time_bins import bin_tokens, common_bins
from evl_lite.explorers import TEMPLATE
from evl_lite.explorers.model_plots import PALETTE
from evl_lite.explorers.widgets import figure_bundle
from evl_lite.models.output import ModelOutput

KINDS = {
    "sample_distance": "distances between records",
    "token_distance": "distances between the moments of one record",
    "angle": "angles at one anchor record",
}
STUDENT = PALETTE[0]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")


def _check_record(record: Any, n: int) -> int:
    if isinstance(record, bool) or not isinstance(record, int | np.integer) or not 0 <= record < n:
        raise ValueError(f"record must be in 0..{n - 1}; got {record!r}")
    return int(record)


def relation_matrix(output: ModelOutput, kind: str, record: int = 0, n_bins: int | None = None) -> Tensor:
    """One relation matrix of one model (float64): ``[B, B]`` for ``sample_distance`` and ``angle``
    (the cosines at anchor ``record``), ``[K, K]`` for ``token_distance`` (of ``record``, on
    ``n_bins`` time bins; default: the finest grid its layout fills)."""
    _check_kind(kind)
    record = _check_record(record, output.pooled.shape[0])
    if kind == "sample_distance":
        return distance_relation(output.pooled.double())  # [B, B]
    if kind == "angle":
        pooled = output.pooled.double()  # [B, d]
        return angle_relation(pooled - pooled.mean(dim=0))[record]  # [B, B]: angle at the anchor
    n_bins = n_bins or common_bins(output.token_layout)
    binned = bin_tokens(output.tokens[record : record + 1].double(), output.token_layout, n_bins)  # [1, K, d]
    return distance_relation(binned)[0]  # [K, K]


def explorer_state(students: Mapping[str, ModelOutput], teacher: ModelOutput, kind: str = "sample_distance",
                   student: str | None = None, record: int = 0, n_bins: int | None = None) -> dict[str, Any]:
    """Teacher and student matrices of one relation ``kind`` and their smooth-L1 mismatch.

    ``students``: {name: output} on the same B windows as ``teacher``; ``student``: which one
    (default: the first); ``record``: the window of the token relation, or the anchor of the
    angles. Returns ``teacher_matrix``/``student_matrix`` (numpy ``[M, M]``), ``mismatch`` (mean
    SmoothL1 between them), ``mismatches`` ({student: mismatch of the same view}), ``n_bins`` and
    the choices.
    """
    if not students:
        raise ValueError("the relation explorer needs at least one student")
    _check_kind(kind)
    student = next(iter(students)) if student is None else student
    if student not in students:
        raise ValueError(f"unknown student {student!r}; choose from {', '.join(map(repr, students))}")
    b = teacher.pooled.shape[0]
    for name, out in students.items():
        if out.pooled.shape[0] != b:
            raise ValueError(f"student {name!r} has {out.pooled.shape[0]} windows and the teacher {b}: "
                             "relations compare the same records")
    record = _check_record(record, b)
    n_bins = n_bins or common_bins(teacher.token_layout, *(out.token_layout for out in students.values()))
    t = relation_matrix(teacher, kind, record, n_bins)
    s = {name: relation_matrix(out, kind, record, n_bins) for name, out in students.items()}
    return {
        "kind": kind, "student": student, "record": record, "n_bins": int(n_bins),
        "teacher_matrix": t.numpy(), "student_matrix": s[student].numpy(),
        "mismatch": float(F.smooth_l1_loss(s[student], t)),
        "mismatches": {name: float(F.smooth_l1_loss(m, t)) for name, m in s.items()},
    }


def status_text(state: Mapping[str, Any]) -> str:
    """One line: the view and the mismatch of every student."""
    where = {"sample_distance": "", "token_distance": f" (record {state['record']}, {state['n_bins']} bins)",
             "angle": f" (anchor record {state['record']})"}[state["kind"]]
    others = ", ".join(f"{name} {value:.4f}" for name, value in state["mismatches"].items())
    return (f"{KINDS[state['kind']]}{where}: smooth-L1 mismatch of {state['student']} = "
            f"{state['mismatch']:.4f} (every student: {others})")


def relation_figure(state: Mapping[str, Any]) -> go.Figure:
    """The teacher's and the student's matrices side by side, on one colour scale."""
    t, s = state["teacher_matrix"], state["student_matrix"]
    low, high = float(min(t.min(), s.min())), float(max(t.max(), s.max()))
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("teacher", f"student: {state['student']}"))
    for col, z in ((1, t), (2, s)):
        fig.add_trace(go.Heatmap(z=z, coloraxis="coloraxis",
                                 hovertemplate="%{y}, %{x}: %{z:.3f}<extra></extra>"), row=1, col=col)
    axis = "time bin" if state["kind"] == "token_distance" else "record"
    fig.update_layout(title=f"{status_text(state).split(':')[0]}: smooth-L1 mismatch {state['mismatch']:.4f}",
                      template=TEMPLATE, height=420,
                      coloraxis=dict(colorscale="Viridis", cmin=low, cmax=high,
                                     colorbar=dict(title="cos" if state["kind"] == "angle" else "psi_D")))
    fig.update_xaxes(title_text=axis)
    fig.update_yaxes(title_text=axis, autorange="reversed")
    return fig


class RelationExplorer:
    """ipywidgets controls (relation kind, student, record/anchor) wired to :func:`explorer_state`.

    Every change recomputes the state, the ``status`` line and the figure in ``output``. Display
    the explorer as the last expression of a cell.
    """

    def __init__(self, students: Mapping[str, ModelOutput], teacher: ModelOutput,
                 kind: str = "sample_distance", n_bins: int | None = None):
        self.students, self.teacher, self.n_bins = dict(students), teacher, n_bins
        explorer_state(self.students, teacher, kind, n_bins=n_bins)  # fail early on bad inputs
        style = {"description_width": "initial"}
        self.kind = widgets.Dropdown(options=[(v, k) for k, v in KINDS.items()], value=kind,
                                     description="relation", style=style)
        self.student = widgets.ToggleButtons(options=list(self.students), description="student", style=style)
        self.record = widgets.IntSlider(value=0, min=0, max=teacher.pooled.shape[0] - 1,
                                        description="record / anchor", continuous_update=False, style=style)
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.state: dict[str, Any] = {}
        for control in (self.kind, self.student, self.record):
            control.observe(self._on_change, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.kind, self.record]), self.student, self.status,
                                    self.output])
        self.update()

    def _on_change(self, _change: dict) -> None:
        self.update()

    def update(self) -> None:
        """Recompute the state from the controls and redraw."""
        self.state = explorer_state(self.students, self.teacher, self.kind.value, self.student.value,
                                    self.record.value, self.n_bins)
        self.status.value = f'<span style="color:{STUDENT}">{status_text(self.state)}</span>'
        # Replace the Output widget's content directly: `with output:` + clear_output can hang papermill.
        shown = {"output_type": "display_data", "data": figure_bundle(relation_figure(self.state)),
                 "metadata": {}}
        self.output.outputs = (shown,)

    def _ipython_display_(self) -> None:
        try:
            from google.colab import output as colab_output
        except ImportError:
            pass
        else:
            colab_output.enable_custom_widget_manager()
        display(self.widget)

