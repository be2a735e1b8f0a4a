"""Transport-plan explorer: the pure state logic (plan, marginals, per-lead mass, errors), figures, widget."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

from evl_lite.constants import LEADS
from evl_lite.distillation.optimal_transport import cosine_cost
from evl_lite.explorers import transport as te
from evl_lite.models.output import TokenLayout

FS = 100.0
T = 250
TEACHER = TokenLayout.lead_patches(12, T, 25, FS)  # 12 leads x P = 10 patches: N_t = 120
STUDENT = TokenLayout.time_positions(32, T, 8, -117, 235, FS)  # N_s = 32
V1 = LEADS.index("V1")


@pytest.fixture(scope="module")
def tokens() -> tuple[torch.Tensor, torch.Tensor]:
    """Projected student tokens [2, 32, 16] and teacher tokens [2, 120, 16], with unequal norms."""
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 32, 16, generator=g) * torch.linspace(0.2, 2.0, 32)[None, :, None]
    t = torch.randn(2, 120, 16, generator=g) + 0.5
    return s, t


def test_state_has_the_shapes_and_meets_its_marginals(tokens):
    s, t = tokens
    state = te.explorer_state(s, t, TEACHER, STUDENT, record=1, reg=0.05)
    assert state["plan"].shape == (32, 120) and state["cost"].shape == (32, 120)
    assert state["a"].shape == (32,) and state["b"].shape == (120,)
    assert (state["plan"] >= 0).all()
    np.testing.assert_allclose(state["row_sums"], np.full(32, 1 / 32), atol=1e-7)
    np.testing.assert_allclose(state["col_sums"], np.full(120, 1 / 120), atol=1e-7)
    assert state["marginal_error"] < 1e-7
    expected_cost = cosine_cost(s[1:2].double(), t[1:2].double())[0].numpy()
    np.testing.assert_allclose(state["cost"], expected_cost, atol=1e-12)
    assert state["transport_cost"] == pytest.approx(float((state["plan"] * state["cost"]).sum()))
    assert 0.0 < state["entropy"] <= 1.0


def test_norm_marginals_follow_the_token_norms(tokens):
    s, t = tokens
    state = te.explorer_state(s, t, TEACHER, record=0, reg=0.1, marginals="norm")
    norms = s[0].double().norm(dim=-1).numpy()
    np.testing.assert_allclose(state["a"], norms / norms.sum(), rtol=1e-6)
    assert state["a"][-1] > 3 * state["a"][0]  # the last student tokens are ten times larger
    np.testing.assert_allclose(state["row_sums"], state["a"], atol=1e-7)
    uniform = te.explorer_state(s, t, TEACHER, record=0, reg=0.1, marginals="uniform")
    assert not np.allclose(state["plan"], uniform["plan"])


def test_lead_mass_rows_sum_to_the_student_weights(tokens):
    s, t = tokens
    for marginals in ("uniform", "norm"):
        state = te.explorer_state(s, t, TEACHER, record=0, reg=0.05, marginals=marginals)
        assert state["lead_mass"].shape == (32, 12)
        np.testing.assert_allclose(state["lead_mass"].sum(axis=1), state["a"], atol=1e-7)
        np.testing.assert_allclose(state["lead_share"].sum(axis=1), 1.0, atol=1e-12)
        # lead-major layout: lead l's mass is the sum of the plan's columns l*10 .. l*10 + 9
        np.testing.assert_allclose(state["lead_mass"][:, V1], state["plan"][:, V1 * 10:(V1 + 1) * 10].sum(1))


def test_lead_mass_sends_the_mass_to_the_right_lead():
    plan = np.zeros((3, 120))
    plan[0, V1 * 10 + 4] = 0.2  # student 0 -> V1, patch 4
    plan[1, 0:10] = 0.03  # student 1 -> every patch of lead I
    plan[2, 119] = 0.1  # student 2 -> V6, last patch
    mass = te.lead_mass(plan, TEACHER)
    expected = np.zeros((3, 12))
    expected[0, V1], expected[1, 0], expected[2, 11] = 0.2, 0.3, 0.1
    np.testing.assert_allclose(mass, expected)
    with pytest.raises(ValueError, match="lead-aware"):
        te.lead_mass(np.zeros((3, 32)), STUDENT)
    with pytest.raises(ValueError, match="N_t = 120"):
        te.lead_mass(np.zeros((3, 100)), TEACHER)


def test_smaller_eps_gives_a_sharper_cheaper_plan(tokens):
    s, t = tokens
    wide = te.explorer_state(s, t, TEACHER, reg=1.0)
    sharp = te.explorer_state(s, t, TEACHER, reg=0.005)
    assert sharp["entropy"] < wide["entropy"]
    assert sharp["transport_cost"] < wide["transport_cost"]
    assert sharp["marginal_error"] < 1e-6  # still a valid plan at a small eps (log domain)


@pytest.mark.parametrize("reg", [0, -0.1, float("nan"), float("inf"), "0.05", None, True])
def test_bad_reg_is_a_clear_error(tokens, reg):
    s, t = tokens
    with pytest.raises(ValueError, match="reg"):
        te.explorer_state(s, t, TEACHER, reg=reg)


def test_bad_inputs_are_clear_errors(tokens):
    s, t = tokens
    with pytest.raises(ValueError, match="marginals"):
        te.explorer_state(s, t, TEACHER, marginals="mass")
    with pytest.raises(ValueError, match="record"):
        te.explorer_state(s, t, TEACHER, record=2)
    with pytest.raises(ValueError, match="projector"):
        te.explorer_state(torch.randn(2, 32, 64), t, TEACHER)  # unprojected student width
    with pytest.raises(ValueError, match="layout"):
        te.explorer_state(s, t[:, :100], TEACHER)
    with pytest.raises(ValueError, match=r"\[B, N, d\]"):
        te.explorer_state(s[0], t, TEACHER)
    with pytest.raises(ValueError, match="NaN"):
        te.explorer_state(s * float("nan"), t, TEACHER)


def test_entropic_gap_is_positive_and_shrinks_with_eps():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 2)), rng.standard_normal((7, 2))
    cost = cosine_cost(torch.tensor(x)[None], torch.tensor(y)[None])[0].numpy()
    a, b = np.full(5, 1 / 5), np.full(7, 1 / 7)
    result = te.entropic_gap(cost, a, b, [1.0, 0.1, 0.01, 0.001])
    assert result["exact"] == pytest.approx(ot.emd2(a, b, cost))
    gap = np.array(result["gap"])
    assert (gap >= -1e-9).all()
    assert (np.diff(gap) <= 1e-9).all()  # non-increasing as eps shrinks
    assert gap[0] > 0.05 and gap[-1] < 1e-2
    assert result["marginal_error"] < 1e-8


def test_figures_show_the_state(tokens):
    s, t = tokens
    state = te.explorer_state(s, t, TEACHER, reg=0.05)
    heat = te.plan_figure(state)
    np.testing.assert_allclose(np.asarray(heat.data[0].z), state["plan"])
    margins = te.marginals_figure(state)
    np.testing.assert_allclose(margins.data[0].y, state["row_sums"])
    np.testing.assert_allclose(margins.data[3].y, state["b"])
    leads = te.lead_mass_figure(state)
    np.testing.assert_allclose(np.asarray(leads.data[0].z), state["lead_share"].T)
    np.testing.assert_allclose(np.asarray(te.lead_mass_figure(state["lead_mass"]).data[0].z),
                               state["lead_share"].T)
    plan = np.array([[0.5, 0.0], [0.0, 0.5]])
    lines = te.plan_lines_figure(np.eye(2), -np.eye(2), plan)
    assert len(lines.data) == 2 + 2  # two lines (the zero entries are not drawn) + the two clouds
    with pytest.raises(ValueError, match="plan"):
        te.plan_lines_figure(np.eye(2), np.eye(3)[:, :2], plan)


def test_the_widget_redraws_when_a_control_changes(tokens):
    s, t = tokens
    explorer = te.transport_explorer(s, t, TEACHER, STUDENT, labels=["a", "b"])
    assert len(explorer.output.outputs) == 3
    first = explorer.state["plan"].copy()
    assert explorer.reg.min == pytest.approx(math.log10(te.REG_RANGE[0]))
    explorer.reg.value = 0.01
    assert explorer.state["reg"] == pytest.approx(0.01) and not np.allclose(explorer.state["plan"], first)
    explorer.record.value = 1
    assert explorer.state["record"] == 1
    explorer.marginals.value = "norm"
    assert explorer.state["marginals"] == "norm" and "norm marginals" in explorer.status.value
    with pytest.raises(ValueError, match="labels"):
        te.TransportExplorer(s, t, TEACHER, labels=["only one"])
