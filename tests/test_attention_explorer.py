"""Cross-attention explorer: the pure state logic (rows, leads, student spans, errors) and its widget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evl_lite.constants import LEADS
from evl_lite.distillation import CrossAttentionAlignment
from evl_lite.explorers import attention as ae
from evl_lite.models.output import TokenLayout
from evl_lite.models.student import ECGStudentCNN

FS = 100.0
T = 250
TEACHER = TokenLayout.lead_patches(12, T, 25, FS)  # 12 leads x P = 10 patches of 0.25 s
FIELD = (235, 8, -117)  # the default student's (R, J, o), see notebook 03
STUDENT = TokenLayout.time_positions(32, T, 8, -117, 235, FS)
V1, II = LEADS.index("V1"), LEADS.index("II")


def token(lead: int, patch: int) -> int:
    return lead * 10 + patch  # lead-major


@pytest.fixture()
def attention() -> np.ndarray:
    """[B=2, H=3, N_s=32, N_t=120]: uniform rows, except record 1, head 2 and a few positions."""
    a = np.full((2, 3, 32, 120), 1 / 120)
    for position in (5, 12, 13):
        a[1, 2, position] = 0.0
        a[1, 2, position, token(V1, 4)] = 0.6  # V1 over 1.00-1.25 s
        a[1, 2, position, token(II, 0)] = 0.4  # II over 0.00-0.25 s
    a[0, 0, 7] = 0.0
    a[0, 0, 7, token(0, 9)] = 1.0  # head 0 looks at lead I, last patch
    a[0, 1, 7] = 0.0
    a[0, 1, 7, token(11, 0)] = 1.0  # head 1 at V6, first patch
    return a


def test_the_student_layout_fixture_is_the_real_students():
    out = ECGStudentCNN().eval()(torch.zeros(1, 12, T))
    layout = out.token_layout
    assert torch.equal(layout.start, STUDENT.start) and torch.equal(layout.end, STUDENT.end)
    assert (layout.lead == -1).all()
    assert ECGStudentCNN().receptive_field() == FIELD


def test_lead_shares_sum_each_leads_tokens():
    w = np.arange(120, dtype=float)
    shares = ae.lead_shares(w, TEACHER)
    assert shares.shape == (12,)
    np.testing.assert_allclose(shares, [w[10 * lead:10 * (lead + 1)].sum() for lead in range(12)])
    batch = ae.lead_shares(torch.rand(2, 3, 120), TEACHER)
    assert batch.shape == (2, 3, 12)
    with pytest.raises(ValueError, match="N_t = 120"):
        ae.lead_shares(np.ones(60), TEACHER)
    with pytest.raises(ValueError, match="lead-aware"):
        ae.lead_shares(np.ones(32), STUDENT)


def test_student_geometry_gives_exact_centres_and_cells():
    g = ae.student_geometry(STUDENT, FIELD)
    n = np.arange(32)
    np.testing.assert_allclose(g["centre"], 8 * n + 0.5)  # n J + o + R / 2 = 8 n - 117 + 117.5
    np.testing.assert_allclose(g["cell_start"], np.clip(8 * n - 3.5, 0, T))
    np.testing.assert_allclose(g["cell_end"], np.clip(8 * n + 4.5, 0, T))
    np.testing.assert_array_equal(g["field_start"], np.clip(8 * n - 117, 0, T))
    np.testing.assert_array_equal(g["field_end"], np.clip(8 * n + 118, 0, T))
    rough = ae.student_geometry(STUDENT)  # without (R, J, o): the middle of the clipped field
    assert rough["centre"][0] == pytest.approx(59.0) and rough["centre"][16] == pytest.approx((11 + 246) / 2)
    assert rough["cell_end"][16] - rough["cell_start"][16] == pytest.approx(T / 32)
    with pytest.raises(ValueError, match="does not match the student layout"):
        ae.student_geometry(STUDENT, (235, 4, -117))
    with pytest.raises(ValueError, match="all leads"):
        ae.student_geometry(TEACHER, FIELD)


def test_state_reads_the_row_back_onto_leads_time_and_the_student(attention):
    s = ae.explorer_state(attention, TEACHER, STUDENT, record=1, head=2, position=5, receptive_field=FIELD)
    assert (s["record"], s["head"], s["position"], s["n_records"], s["n_heads"]) == (1, 2, 5, 2, 3)
    assert s["weights"].shape == (120,) and s["row_sum"] == pytest.approx(1.0)
    assert s["grid"].values.shape == (12, 10) and s["grid"].values[V1, 4] == pytest.approx(0.6)
    assert s["grid"].values[II, 0] == pytest.approx(0.4) and np.nansum(s["grid"].values) == pytest.approx(1.0)
    assert s["lead_shares"][V1] == pytest.approx(0.6) and s["lead_shares"][II] == pytest.approx(0.4)
    assert s["top_leads"][:2] == [V1, II] and sorted(s["top_leads"]) == list(range(12))
    np.testing.assert_allclose(s["time_shares"], [0.4, 0, 0, 0, 0.6, 0, 0, 0, 0, 0], atol=1e-12)
    assert s["top_token"] == token(V1, 4) and s["top_token_lead"] == V1
    assert s["top_token_span_s"] == pytest.approx((1.0, 1.25))
    assert s["field_s"] == pytest.approx((0.0, 1.58))  # token 5 sees samples [0, 158)
    assert s["centre_s"] == pytest.approx(0.405) and s["cell_s"] == pytest.approx((0.365, 0.445))
    assert s["at_cell"] == pytest.approx(0.0) and s["at_cell_uniform"] == pytest.approx(0.1)  # patch 1 only
    expected_entropy = -(0.6 * np.log(0.6) + 0.4 * np.log(0.4)) / np.log(120)
    assert s["entropy"] == pytest.approx(expected_entropy)
    assert s["on_samples"].shape == (12, T)
    assert (s["on_samples"][V1, 100:125] == pytest.approx(0.6)) and s["on_samples"][V1, 99] == 0.0
    assert "V1" in ae.status_text(s) and "60%" in ae.status_text(s)


def test_attention_at_the_students_own_moment(attention):
    at_13 = ae.explorer_state(attention, TEACHER, STUDENT, 1, 2, 13, FIELD)  # cell [100.5, 108.5): patch 4
    assert at_13["at_cell"] == pytest.approx(0.6) and at_13["at_cell_uniform"] == pytest.approx(0.1)
    at_12 = ae.explorer_state(attention, TEACHER, STUDENT, 1, 2, 12, FIELD)  # [92.5, 100.5): patches 3, 4
    assert at_12["at_cell"] == pytest.approx(0.6) and at_12["at_cell_uniform"] == pytest.approx(0.2)


def test_uniform_rows_are_maximally_spread(attention):
    s = ae.explorer_state(attention, TEACHER, STUDENT, record=0, head=2, position=20, receptive_field=FIELD)
    assert s["entropy"] == pytest.approx(1.0)
    np.testing.assert_allclose(s["lead_shares"], np.full(12, 1 / 12))
    assert s["at_cell"] == pytest.approx(s["at_cell_uniform"])


def test_heads_are_separate_and_mean_averages_them(attention):
    h0 = ae.explorer_state(attention, TEACHER, STUDENT, 0, 0, 7, FIELD)
    h1 = ae.explorer_state(attention, TEACHER, STUDENT, 0, 1, 7, FIELD)
    assert h0["top_token_lead"] == 0 and h0["top_token_span_s"] == pytest.approx((2.25, 2.5))
    assert h1["top_token_lead"] == 11 and h1["top_token_span_s"] == pytest.approx((0.0, 0.25))
    mean = ae.explorer_state(attention, TEACHER, STUDENT, 0, "mean", 7, FIELD)
    np.testing.assert_allclose(mean["weights"], attention[0, :, 7].mean(axis=0))
    assert mean["row_sum"] == pytest.approx(1.0) and mean["lead_shares"][0] == pytest.approx((1 + 1 / 12) / 3)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"record": 2}, "record 2 out of range"),
    ({"record": -1}, "record -1 out of range"),
    ({"record": True}, "integer index"),
    ({"head": 3}, "head 3 out of range: the component has 3 heads"),
    ({"head": "max"}, "index or 'mean'"),
    ({"position": 32}, "position 32 out of range: the student has 32 time positions"),
    ({"position": 1.5}, "integer index"),
])
def test_bad_choices_raise_clear_errors(attention, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ae.explorer_state(attention, TEACHER, STUDENT, receptive_field=FIELD, **kwargs)


def test_bad_attention_or_layouts_raise_clear_errors(attention):
    with pytest.raises(ValueError, match=r"\[B, H, N_s, N_t\]"):
        ae.explorer_state(attention[0], TEACHER, STUDENT)
    bad = attention.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ae.explorer_state(bad, TEACHER, STUDENT)
    with pytest.raises(ValueError, match="does not fit the layouts"):
        ae.explorer_state(attention[..., :60], TEACHER, STUDENT)
    with pytest.raises(ValueError, match="lead-aware"):
        ae.explorer_state(attention, STUDENT, TEACHER)
    other_window = TokenLayout.lead_patches(12, 500, 50, FS)  # also 120 tokens, but 5 s
    with pytest.raises(ValueError, match="different windows"):
        ae.explorer_state(attention, other_window, STUDENT)


def test_state_of_the_real_component_on_the_real_student():
    torch.manual_seed(0)
    student = ECGStudentCNN().eval()
    with torch.no_grad():
        out = student(torch.randn(3, 12, T))
        component = CrossAttentionAlignment(out.tokens.shape[-1], 32, n_heads=4)
        _, _, a = component.attend(out.tokens, torch.randn(3, 120, 32))  # [3, 4, 32, 120]
    for position in (0, 16, 31):
        s = ae.explorer_state(a, TEACHER, out.token_layout, 2, 3, position, student.receptive_field())
        assert s["row_sum"] == pytest.approx(1.0, abs=1e-5) and 0.0 < s["entropy"] <= 1.0
        np.testing.assert_allclose(s["weights"], a[2, 3, position].numpy(), rtol=1e-6)


def test_figures_mark_the_student_token(attention):
    s = ae.explorer_state(attention, TEACHER, STUDENT, 1, 2, 13, FIELD)
    heat = ae.heatmap_figure(s)
    cells = [shape for shape in heat.layout.shapes if shape.fillcolor == ae.CELL]
    assert len(cells) == 1 and (cells[0].x0, cells[0].x1) == pytest.approx(s["cell_s"])
    x = np.random.default_rng(0).standard_normal((12, T))
    ecg = ae.ecg_figure(x, s)
    assert len(ecg.data) == 4  # the four most attended leads (ties: lower lead first), in lead order
    assert [a.text for a in ecg.layout.annotations[:4]] == ["I", "II", "III", "V1"]
    pair = ae.side_by_side_figure({"untrained": s, "trained": s})
    assert len(pair.data) == 2 and pair.data[0].zmax == pytest.approx(0.6)
    by_lead = ae.lead_shares_figure(ae.lead_shares(attention[1, 2], TEACHER), np.arange(32) * 0.08)
    assert by_lead.data[0].z.shape == (12, 32)
    with pytest.raises(ValueError, match="centres"):
        ae.lead_shares_figure(np.ones((32, 12)), np.arange(5))
    full = ae.attention_map_figure(attention[1, 2], TEACHER)
    assert full.data[0].z.shape == (32, 120) and list(full.layout.xaxis.ticktext)[:2] == ["I", "II"]


def test_widget_redraws_two_figures_when_a_control_changes(attention):
    x = np.random.default_rng(0).standard_normal((2, 12, T))
    explorer = ae.AttentionExplorer({"a": x[0], "b": x[1]}, attention, TEACHER, STUDENT, FIELD)
    assert explorer.state["position"] == 16 and len(explorer.output.outputs) == 2
    explorer.record.value, explorer.head.value, explorer.position.value = 1, 2, 13
    assert (explorer.state["record"], explorer.state["head"], explorer.state["position"]) == (1, 2, 13)
    assert explorer.state["top_token"] == token(V1, 4) and "V1" in explorer.status.value
    assert all("data" in o for o in explorer.output.outputs)
    with pytest.raises(ValueError, match="1 records for attention of 2"):
        ae.AttentionExplorer({"a": x[0]}, attention, TEACHER, STUDENT)
