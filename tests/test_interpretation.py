"""Interpretation: occlusion and gradient relevance, calibration, precision-recall, errors, the summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score
from torch import nn

from evl_lite.constants import LEADS, SUPERCLASSES
from evl_lite.data.ptbxl import load_statements
from evl_lite.evaluation.interpretation import (
    average_precision,
    best_window,
    clinician_summary,
    confident_errors,
    ece_per_class,
    example_record,
    expected_calibration_error,
    input_gradients,
    label_names,
    occlusion_map,
    precision_recall_points,
    relevance_per_lead,
    relevance_per_span,
    reliability_curve,
    shares,
    statements_for_superclass,
    time_spans,
)
from evl_lite.models.student import ECGStudentCNN, StudentConfig

LEAD_II = LEADS.index("II")


class LeadIIOnly(nn.Module):
    """A small CNN that reads lead II only: conv -> ReLU -> mean over time -> Linear(4 -> 5)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(1, 4, 5, padding=2)
        self.head = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x[:, LEAD_II : LEAD_II + 1]))  # [B, 4, T]
        return self.head(h.mean(dim=2))  # [B, 5]


class MeanOfLeadII(nn.Module):
    """logit_c = a * mean(x[lead II]) for every class: occlusion has a closed form."""

    def __init__(self, a: float = 3.0) -> None:
        super().__init__()
        self.a = a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.a * x[:, LEAD_II].mean(dim=1, keepdim=True)).repeat(1, 5)  # [B, 5]


def window(seed: int = 0, t: int = 100) -> torch.Tensor:
    return torch.randn(12, t, generator=torch.Generator().manual_seed(seed)) + 0.3  # [12, T]


# --------------------------------------------------------------------------- relevance


@pytest.mark.parametrize("fill", ["zero", "mean"])
def test_occlusion_is_exactly_zero_for_leads_the_model_ignores(fill):
    result = occlusion_map(LeadIIOnly(), window(), target=1, span=20, fill=fill)
    assert result.lead.shape == (12,)
    assert result.grid.shape == (12, 5) and result.time.shape == (5,)
    others = [lead for lead in range(12) if lead != LEAD_II]
    assert np.all(result.lead[others] == 0.0)  # exactly: the model never sees these leads
    assert np.all(result.grid[others] == 0.0)
    assert result.lead[LEAD_II] != 0.0
    assert np.any(result.grid[LEAD_II] != 0.0)
    assert 0.0 < result.base < 1.0


def test_occlusion_matches_its_closed_form():
    x = window(1, t=60)
    a = 3.0
    result = occlusion_map(MeanOfLeadII(a), x, target=0, span=20, fill="zero")
    m = float(x[LEAD_II].double().mean())
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    assert result.base == pytest.approx(sigmoid(a * m), abs=1e-6)
    assert result.lead[LEAD_II] == pytest.approx(sigmoid(a * m) - 0.5, abs=1e-6)  # lead II -> zeros
    first = float(x[LEAD_II, :20].double().sum())  # hiding span 0 removes its share of the mean
    assert result.time[0] == pytest.approx(sigmoid(a * m) - sigmoid(a * (m - first / 60)), abs=1e-6)
    assert result.grid[LEAD_II, 0] == pytest.approx(result.time[0], abs=1e-7)
    # "mean" fill replaces lead II by its own mean: the mean of the lead does not change
    assert occlusion_map(MeanOfLeadII(a), x, target=0, span=20, fill="mean").lead[LEAD_II] == pytest.approx(
        0.0, abs=1e-6)


def test_occlusion_restores_the_training_flag_and_checks_its_input():
    model = ECGStudentCNN(StudentConfig(stem_channels=8, stage_channels=(8,), stage_strides=(1,),
                                        stage_dilations=(1,)))
    model.train()
    result = occlusion_map(model, window(t=80), target=2, span=40)
    assert model.training and result.grid.shape == (12, 2)
    assert np.isfinite(result.grid).all()
    with pytest.raises(ValueError, match="span must divide"):
        occlusion_map(model, window(t=80), target=2, span=30)
    with pytest.raises(ValueError, match="one ECG window"):
        occlusion_map(model, torch.zeros(1, 12, 80), target=2)
    with pytest.raises(ValueError, match="fill"):
        occlusion_map(model, window(t=80), target=2, span=40, fill="noise")


def test_input_gradients_are_zero_on_ignored_leads_and_leave_parameters_alone():
    model = LeadIIOnly()
    x = window()
    g = input_gradients(model, x, target=3, times_input=False)
    assert g.shape == (12, 100)
    others = [lead for lead in range(12) if lead != LEAD_II]
    assert np.all(g[others] == 0.0) and np.any(g[LEAD_II] != 0.0)
    assert all(p.grad is None for p in model.parameters())
    gx = input_gradients(model, x, target=3)  # gradient x input
    np.testing.assert_allclose(gx, g * x.double().numpy(), rtol=1e-6)
    per_lead = relevance_per_lead(gx)
    assert per_lead.shape == (12,) and np.all(per_lead[others] == 0.0) and per_lead[LEAD_II] > 0
    per_span = relevance_per_span(gx, 25)
    assert per_span.shape == (12, 4)
    np.testing.assert_allclose(per_span.sum(axis=1), per_lead)


def test_input_gradient_of_a_linear_model_is_its_weight():
    torch.manual_seed(0)
    lin = nn.Linear(12 * 10, 5)
    model = nn.Sequential(nn.Flatten(), lin)
    x = window(t=10)
    g = input_gradients(model, x, target=2, times_input=False)
    p = torch.sigmoid(model(x[None]))[0, 2]
    expected = (p * (1 - p)) * lin.weight[2].reshape(12, 10)  # d sigmoid(w.x + b) / dx
    np.testing.assert_allclose(g, expected.detach().double().numpy(), rtol=1e-5, atol=1e-7)


def test_best_window_is_where_the_probability_peaks():
    x = torch.zeros(12, 1000)
    x[LEAD_II, 600:850] = 1.0  # only the window starting at 600 sees the whole bump
    model = MeanOfLeadII(a=3.0)
    assert best_window(model, x, target=0, crop=250, n_windows=7) == 625  # grid 0, 125, ..., 750
    assert best_window(MeanOfLeadII(a=-3.0), x, target=0, crop=250, n_windows=7) in (0, 125, 250)


def test_example_record_prefers_confident_true_positives_outside_norm():
    y = np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]])
    p = np.array([[0.99, 0.1, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.4, 0.1, 0.1]])
    assert example_record(y, p, [0.5] * 5) == (1, 1)  # MI hit; NORM's higher p is avoided
    assert example_record(y, p, [0.5] * 5, avoid=()) == (0, 0)
    assert example_record(y, p, [0.5, 0.9, 0.5, 0.5, 0.5]) == (0, 0)  # only NORM is a hit
    assert example_record(y, p, [1.0] * 5) == (0, 0)  # no hit: the most probable positive label
    with pytest.raises(ValueError):
        example_record(np.zeros((2, 5)), np.zeros((2, 5)), [0.5] * 5)


def test_time_spans_and_shares():
    starts, ends = time_spans(250, 25)
    assert starts.tolist()[:3] == [0, 25, 50] and ends[-1] == 250 and len(starts) == 10
    with pytest.raises(ValueError):
        time_spans(250, 0)
    np.testing.assert_allclose(shares([1.0, 3.0, -2.0]), [0.25, 0.75, 0.0])
    assert shares([-1.0, 0.0]).tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------- calibration


def test_ece_by_hand():
    # bin [0, .5): p .1 .2, no positive -> |0 - .15|; bin [.5, 1]: p .8 .9, both positive -> |1 - .85|
    assert expected_calibration_error([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], n_bins=2) == pytest.approx(0.15)
    # bin 0: conf .3, acc .5 -> .2; bin 1: conf .7, acc 1 -> .3; weights 1/2 each
    assert expected_calibration_error([0, 1, 1, 1], [0.3, 0.3, 0.7, 0.7], n_bins=2) == pytest.approx(0.25)
    # bins of different sizes weigh by their share: 3/4 * |1/3 - .1| + 1/4 * |1 - .6| = .275
    assert expected_calibration_error([0, 0, 1, 1], [0.1, 0.1, 0.1, 0.6], n_bins=2) == pytest.approx(0.275)
    # a quarter of the records at p = .25 are positive: perfectly calibrated
    assert expected_calibration_error([1, 0, 0, 0], [0.25] * 4, n_bins=10) == pytest.approx(0.0)
    # always sure and always wrong: ECE 1
    assert expected_calibration_error([0, 1], [1.0, 0.0], n_bins=10) == pytest.approx(1.0)


def test_reliability_curve_bins():
    curve = reliability_curve([0, 1, 1, 0, 1], [0.05, 0.5, 1.0, 0.55, 0.95], n_bins=4)
    assert curve.edges.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curve.count.tolist() == [1, 0, 2, 2]  # p = 1 in the last bin, .5 in [.5, .75)
    assert np.isnan(curve.confidence[1]) and np.isnan(curve.accuracy[1])
    assert curve.confidence[2] == pytest.approx(0.525) and curve.accuracy[2] == pytest.approx(0.5)
    assert curve.accuracy[3] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        reliability_curve([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        reliability_curve([0, 1], [0.1, 1.2])


def test_ece_per_class():
    y = np.array([[0, 1], [0, 1], [1, 0], [1, 0]])
    p = np.array([[0.1, 0.9], [0.2, 0.8], [0.8, 0.1], [0.9, 0.2]])
    ece = ece_per_class(y, p, classes=("A", "B"), n_bins=2)
    assert ece == pytest.approx({"A": 0.15, "B": 0.15})
    with pytest.raises(ValueError):
        ece_per_class(y, p)  # five class names for two columns


# --------------------------------------------------------------------------- precision-recall


def test_precision_recall_by_hand_and_against_sklearn():
    precision, recall, thresholds = precision_recall_points([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    np.testing.assert_allclose(recall, [0, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(precision, [1, 1, 0.5, 2 / 3, 0.5])
    assert thresholds.tolist() == [0.9, 0.8, 0.7, 0.1]
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = (rng.random(200) < 0.2).astype(int)
        s = np.round(rng.random(200) + 0.3 * y, 1)  # ties
        assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))
    with pytest.raises(ValueError, match="positive"):
        precision_recall_points([0, 0], [0.1, 0.2])


# --------------------------------------------------------------------------- errors


def test_confident_errors_by_hand():
    y = np.array([[0, 1], [0, 1], [1, 0], [1, 1]])
    p = np.array([[0.9, 0.2], [0.6, 0.45], [0.3, 0.7], [0.8, 0.9]])
    errors = confident_errors(y, p, thresholds=[0.5, 0.5], classes=("A", "B"), k=2)
    fp = [(e["index"], e["class"]) for e in errors if e["kind"] == "false positive"]
    fn = [(e["index"], e["class"]) for e in errors if e["kind"] == "false negative"]
    assert fp == [(0, "A"), (2, "B")]  # p .9 then .7; (1, A) at .6 is the third
    assert fn == [(0, "B"), (2, "A")]  # p .2 then .3; (1, B) at .45 is the third
    assert errors[0]["probability"] == pytest.approx(0.9) and errors[0]["threshold"] == 0.5
    assert len(confident_errors(y, p, [0.5, 0.5], ("A", "B"), k=5)) == 6  # 3 FP + 3 FN exist
    assert confident_errors(y, y.astype(float), [0.5, 0.5], ("A", "B")) == []  # no errors
    assert label_names([1, 0, 1, 0, 0]) == ["NORM", "STTC"]


# --------------------------------------------------------------------------- clinician summary


@pytest.fixture
def statements(tmp_path) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "description": [
                "normal ECG", "inferior myocardial infarction", "anteroseptal myocardial infarction",
                "left ventricular hypertrophy", "complete right bundle branch block", "sinus rhythm",
            ],
            "diagnostic": [1.0, 1.0, 1.0, 1.0, 1.0, None],
            "form": [None] * 6,
            "rhythm": [None, None, None, None, None, 1.0],
            "diagnostic_class": ["NORM", "MI", "MI", "HYP", "CD", None],
            "diagnostic_subclass": ["NORM", "IMI", "AMI", "LVH", "CRBBB", None],
        },
        index=["NORM", "IMI", "ASMI", "LVH", "CRBBB", "SR"],
    )
    table.to_csv(tmp_path / "scp_statements.csv")
    return load_statements(tmp_path)


def test_statements_for_superclass(statements):
    assert statements_for_superclass(statements, "MI") == [
        ("ASMI", "anteroseptal myocardial infarction"), ("IMI", "inferior myocardial infarction")]
    ordered = statements_for_superclass(statements, "MI", counts={"IMI": 30, "ASMI": 2})
    assert [code for code, _ in ordered] == ["IMI", "ASMI"]
    assert statements_for_superclass(statements, "STTC") == []
    assert all(code != "SR" for cls in SUPERCLASSES for code, _ in statements_for_superclass(statements, cls))


def test_summary_names_the_statements_of_flagged_classes_and_disclaims(statements):
    probs = [0.10, 0.81, 0.20, 0.30, 0.05]  # NORM MI STTC CD HYP
    thresholds = [0.5, 0.4, 0.5, 0.5, 0.5]
    text = clinician_summary(probs, thresholds, statements, record="ecg_id 17", reference_codes=["IMI", "SR"])
    assert "NOT A DIAGNOSIS" in text and "not a diagnosis" in text.lower().splitlines()[-1]
    assert "inferior myocardial infarction (IMI)" in text and "anteroseptal myocardial infarction" in text
    assert "MI (myocardial infarction): probability 0.810 (threshold 0.400)" in text
    assert "left ventricular hypertrophy" not in text  # HYP is not flagged
    assert "complete right bundle branch block" not in text
    assert "ecg_id 17" in text and "sinus rhythm (SR)" in text  # the record's own annotation
    assert "Not flagged: NORM 0.100 (threshold 0.500)" in text


def test_summary_without_any_class_above_threshold(statements):
    text = clinician_summary([0.1, 0.2, 0.1, 0.3, 0.2], [0.5] * 5, statements)
    assert "No superclass reaches its threshold" in text
    assert "NOT A DIAGNOSIS" in text
    for description in ("normal ECG (NORM)", "myocardial infarction (IMI)", "hypertrophy (LVH)"):
        assert description not in text
    assert "Flagged superclasses" not in text


def test_summary_truncates_long_statement_lists_and_checks_shapes(statements):
    text = clinician_summary([0.1, 0.9, 0.1, 0.1, 0.1], [0.5] * 5, statements, max_statements=1)
    assert "and 1 more" in text
    with pytest.raises(ValueError):
        clinician_summary([0.1, 0.9], [0.5] * 5, statements)
