"""The relation explorer's logic: the matrices of each relation kind and their mismatch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from evl_lite.explorers.relation import RelationExplorer, explorer_state, relation_figure, relation_matrix
from evl_lite.models.output import ModelOutput, TokenLayout

TEACHER = TokenLayout.lead_patches(12, 250, 50, 100.0)
STUDENT = TokenLayout.time_positions(32, 250, 8, -117, 235, 100.0)


def out(tokens: torch.Tensor, layout: TokenLayout) -> ModelOutput:
    return ModelOutput(
        logits=torch.zeros(len(tokens), 5), tokens=tokens, pooled=tokens.mean(1), token_layout=layout
    )


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    return out(torch.randn(6, 32, 16, generator=g), STUDENT), out(
        torch.randn(6, 60, 24, generator=g), TEACHER
    )


@pytest.mark.parametrize(
    ("kind", "shape"), [("sample_distance", (6, 6)), ("token_distance", (5, 5)), ("angle", (6, 6))]
)
def test_matrices_have_their_shapes(pair, kind, shape):
    student, teacher = pair
    state = explorer_state({"untrained": student}, teacher, kind, record=2)
    assert state["student_matrix"].shape == state["teacher_matrix"].shape == shape


@pytest.mark.parametrize("kind", ["sample_distance", "token_distance"])
def test_distance_matrices_are_symmetric_with_zero_diagonal_and_unit_mean(pair, kind):
    student, _ = pair
    m = relation_matrix(student, kind, record=1, n_bins=5).numpy()
    np.testing.assert_allclose(m, m.T, atol=1e-6)
    assert np.allclose(np.diag(m), 0) and m[~np.eye(len(m), dtype=bool)].mean() == pytest.approx(1, rel=1e-5)


def test_angles_at_the_anchor_are_cosines(pair):
    student, _ = pair
    m = relation_matrix(student, "angle", record=3).numpy()
    assert (np.abs(m) <= 1 + 1e-6).all() and np.allclose(m[3], 0) and np.allclose(m[:, 3], 0)
    p = student.pooled.numpy()
    e1, e2 = p[0] - p[3], p[1] - p[3]
    assert m[0, 1] == pytest.approx(e1 @ e2 / np.linalg.norm(e1) / np.linalg.norm(e2), rel=1e-4)


def test_mismatch_is_the_smooth_l1_of_the_two_matrices_and_zero_for_a_scaled_copy(pair):
    student, teacher = pair
    state = explorer_state({"s": student}, teacher, "sample_distance")
    expected = F.smooth_l1_loss(
        torch.from_numpy(state["student_matrix"]), torch.from_numpy(state["teacher_matrix"])
    )
    assert state["mismatch"] == pytest.approx(float(expected)) and state["mismatch"] > 1e-3
    copy = out(teacher.tokens * 3.0, TEACHER)
    for kind in ("sample_distance", "token_distance", "angle"):
        assert explorer_state({"copy": copy}, teacher, kind, record=1)["mismatch"] < 1e-10


def test_bad_choices_are_clear_errors(pair):
    student, teacher = pair
    with pytest.raises(ValueError, match="kind must be one of"):
        explorer_state({"s": student}, teacher, "gram")
    with pytest.raises(ValueError, match="record must be in 0..5"):
        explorer_state({"s": student}, teacher, "token_distance", record=6)
    with pytest.raises(ValueError, match="unknown student"):
        explorer_state({"s": student}, teacher, student="distilled")
    with pytest.raises(ValueError, match="same records"):
        explorer_state({"s": out(student.tokens[:4], STUDENT)}, teacher)
    with pytest.raises(ValueError, match="at least one student"):
        explorer_state({}, teacher)


def test_figure_and_widget_follow_the_controls(pair):
    student, teacher = pair
    explorer = RelationExplorer(
        {"untrained": student, "distilled": out(teacher.tokens * 2, TEACHER)}, teacher
    )
    assert len(explorer.output.outputs) == 1 and explorer.state["student"] == "untrained"
    explorer.student.value = "distilled"
    assert explorer.state["mismatch"] < 1e-10 and "0.0000" in explorer.status.value
    explorer.kind.value = "token_distance"
    assert explorer.state["student_matrix"].shape == (5, 5)
    fig = relation_figure(explorer.state)
    assert len(fig.data) == 2 and "mismatch" in fig.layout.title.text
