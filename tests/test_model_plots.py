"""Model figures: the data shaping behind them (token grids, attention rows, ROC points) and their traces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from evl_lite.errors import ECGDataError
from evl_lite.evaluation.metrics import macro_auc
from evl_lite.explorers import model_plots as mp
from evl_lite.models.output import TokenLayout
from evl_lite.models.student import ECGStudentCNN
from evl_lite.models.teacher import ECGTransformer, ECGTransformerConfig

FS = 100.0


def record(n_samples: int = 250) -> np.ndarray:
    """x [12, T]: lead i is a 1 Hz sine of amplitude i + 1."""
    t = np.arange(n_samples) / FS
    return np.stack([(i + 1) * np.sin(2 * np.pi * t) for i in range(12)])


# --------------------------------------------------------------------------- token grid


def test_token_grid_of_lead_patches_is_lead_major():
    layout = TokenLayout.lead_patches(12, 250, 25, FS)  # P = 10
    grid = mp.token_grid(np.arange(120), layout)
    assert grid.values.shape == (12, 10) and grid.leads == list(range(12))
    assert grid.values[3, 7] == 3 * 10 + 7  # token l * P + p sits at row l, column p
    np.testing.assert_array_equal(grid.start, np.arange(10) * 25)
    np.testing.assert_array_equal(grid.end, np.arange(1, 11) * 25)
    np.testing.assert_allclose(grid.centres_s, (np.arange(10) * 25 + 12.5) / FS)
    assert grid.lead_names[:4] == ["I", "II", "III", "aVR"]


def test_token_grid_of_cnn_positions_is_one_all_leads_row_in_time_order():
    layout = TokenLayout.time_positions(5, 40, 8, -3, 11, FS)
    grid = mp.token_grid([10.0, 11.0, 12.0, 13.0, 14.0], layout)
    assert grid.values.shape == (1, 5) and grid.leads == [-1] and grid.lead_names == ["all leads"]
    np.testing.assert_array_equal(grid.values[0], [10, 11, 12, 13, 14])
    assert grid.start[0] == 0 and grid.end[0] == 8  # first field [-3, 8) clipped to the input


def test_token_grid_rejects_wrong_lengths_and_duplicate_cells():
    layout = TokenLayout.lead_patches(12, 250, 25, FS)
    with pytest.raises(ValueError, match=r"\[N\] = \[120\]"):
        mp.token_grid(np.zeros(119), layout)
    twice = TokenLayout(lead=torch.tensor([0, 0]), start=torch.tensor([0, 0]), end=torch.tensor([5, 5]),
                        fs=FS, n_samples=10)
    with pytest.raises(ValueError, match="two tokens cover lead 0"):
        mp.token_grid([1.0, 2.0], twice)


# --------------------------------------------------------------------------- attention


def test_attention_to_tokens_picks_the_query_row_and_drops_the_cls_column():
    rng = np.random.default_rng(0)
    maps = [torch.softmax(torch.from_numpy(rng.normal(size=(2, 3, 5, 5))), dim=-1) for _ in range(2)]
    row = mp.attention_to_tokens(maps, layer=1, head=2, query=0, record=1)
    np.testing.assert_allclose(row, maps[1][1, 2, 0, 1:].numpy())
    assert row.sum() + maps[1][1, 2, 0, 0].item() == pytest.approx(1.0)  # the rest went to CLS
    mean = mp.attention_to_tokens(maps, layer=-1, head="mean", query=3)
    np.testing.assert_allclose(mean, maps[1][0, :, 3, 1:].mean(0).numpy())
    with pytest.raises(ValueError, match="output_attentions=True"):
        mp.attention_to_tokens(None)
    with pytest.raises(ValueError, match="head must be"):
        mp.attention_to_tokens(maps, head=3)
    with pytest.raises(ValueError, match="query 5 out of range"):
        mp.attention_to_tokens(maps, query=5)
    # "tokens": the mean of the 4 token rows (every token feeds a lead-pooled embedding)
    tokens = mp.attention_to_tokens(maps, layer=0, head=1, query="tokens")
    np.testing.assert_allclose(tokens, maps[0][0, 1, 1:, 1:].mean(0).numpy())
    assert tokens.sum() + maps[0][0, 1, 1:, 0].mean().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="or 'tokens'"):
        mp.attention_to_tokens(maps, query="cls")


def test_attention_entropy_is_one_for_uniform_and_zero_for_one_hot_rows():
    uniform = torch.full((1, 2, 4, 4), 0.25)
    peaked = uniform.clone()
    peaked[0, 1, 0] = torch.tensor([0.0, 0.0, 1.0, 0.0])
    entropy = mp.attention_entropy([uniform, peaked])
    assert entropy.shape == (2, 2)
    np.testing.assert_allclose(entropy, [[1, 1], [1, 0]], atol=1e-9)
    assert np.unravel_index(np.argmin(entropy), entropy.shape) == (1, 1)
    peaked[0, 0, 1:] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # every token row of head 0 on token 1
    np.testing.assert_allclose(mp.attention_entropy([peaked], query="tokens"), [[0, 1]], atol=1e-9)


def test_teacher_attention_maps_onto_its_lead_by_patch_grid():
    torch.manual_seed(0)
    teacher = ECGTransformer(ECGTransformerConfig(d_model=16, n_layers=1, n_heads=2, ffn=32)).eval()
    x = torch.from_numpy(record(100)).float()[None]  # [1, 12, 100]: P = 4
    with torch.no_grad():
        out = teacher(x, output_attentions=True)
    weights = mp.attention_to_tokens(out.attentions, head=1)
    grid = mp.token_grid(weights, out.token_layout)
    assert grid.values.shape == (12, 4)
    # token 1 + l * P + p of the attention map is the cell (l, p)
    assert grid.values[5, 2] == pytest.approx(out.attentions[-1][0, 1, 0, 1 + 5 * 4 + 2].item())
    fig = mp.attention_grid_figure(weights, out.token_layout)
    assert np.asarray(fig.data[0].z).shape == (12, 4) and list(fig.data[0].y)[0] == "I"


def test_values_on_samples_paints_patches_per_lead_and_positions_on_all_leads():
    patches = TokenLayout.lead_patches(12, 20, 5, FS)  # P = 4, 48 tokens
    painted = mp.values_on_samples(np.arange(48, dtype=float), patches)
    assert painted.shape == (12, 20)
    np.testing.assert_array_equal(painted[2, 5:10], 2 * 4 + 1)  # lead 2, patch 1
    positions = TokenLayout.time_positions(2, 10, 4, 0, 6, FS)  # spans [0, 6) and [4, 10)
    painted = mp.values_on_samples([1.0, 3.0], positions)
    np.testing.assert_array_equal(painted[0], [1, 1, 1, 1, 2, 2, 3, 3, 3, 3])  # overlap: the mean
    np.testing.assert_array_equal(painted[11], painted[0])
    short = TokenLayout.time_positions(1, 10, 4, 0, 3, FS)
    assert np.isnan(mp.values_on_samples([1.0], short)[0, 3:]).all()


# --------------------------------------------------------------------------- ROC


def test_roc_points_match_sklearn_and_the_mann_whitney_auc():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)  # rounding makes ties
    fpr, tpr, thr = mp.roc_curve_points(y, s)
    ref_fpr, ref_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert thr[0] == np.inf and np.all(np.diff(thr[1:]) < 0)
    area = np.trapezoid(tpr, fpr)
    assert area == pytest.approx(roc_auc_score(y, s))
    auc, _ = macro_auc(np.stack([y] * 5, 1), np.stack([s] * 5, 1))
    assert area == pytest.approx(auc)


def test_roc_points_need_both_classes():
    with pytest.raises(ValueError, match="positives and negatives"):
        mp.roc_curve_points([1, 1, 1], [0.1, 0.2, 0.3])


def test_roc_figure_skips_classes_without_negatives():
    y = np.array([[1, 0, 1, 0, 1]] * 4 + [[1, 1, 0, 0, 0]] * 4)
    s = np.linspace(0, 1, 40).reshape(8, 5)
    fig = mp.roc_figure(y, s)
    names = [t.name for t in fig.data]
    assert len(names) == 4 and not any(n.startswith("NORM") for n in names)  # NORM: all positive
    assert names[-1] == "chance"
    assert "HYP (AUC 0.000" in names[2]  # HYP positives have the lowest scores


# --------------------------------------------------------------------------- reconstruction, history, table


def test_reconstruction_traces_keep_predictions_only_on_hidden_patches():
    target = np.arange(12 * 3 * 2, dtype=float).reshape(12, 3, 2)
    prediction = -target
    mask = np.zeros((12, 3), dtype=bool)
    mask[4, 1] = True
    original, recon = mp.reconstruction_traces(target, prediction, mask)
    assert original.shape == recon.shape == (12, 6)
    np.testing.assert_array_equal(original[4], target[4].reshape(-1))
    np.testing.assert_array_equal(recon[4, 2:4], -target[4, 1])
    assert np.isnan(recon).sum() == 12 * 6 - 2
    assert mp.masked_spans(mask, 2) == [(4, 2, 4)]
    mask[[1, 1, 7], [0, 2, 2]] = True
    assert mp.most_masked_leads(mask, 2) == [1, 4]  # lead 1 hides 2 patches; 4 and 7 one each: lower lead
    with pytest.raises(ValueError, match="bool mask"):
        mp.reconstruction_traces(target, prediction, mask.astype(int))


def test_reconstruction_figure_from_the_teacher_loss_details():
    torch.manual_seed(0)
    teacher = ECGTransformer(ECGTransformerConfig(d_model=16, n_layers=1, n_heads=2, ffn=32)).eval()
    x = torch.from_numpy(record(100)).float()[None]
    mask = teacher.random_patch_mask(x, 0.5, torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, details = teacher.masked_patch_loss(x, mask=mask)
    fig = mp.reconstruction_figure(details["target"][0], details["prediction"][0], details["mask"][0], FS,
                                   leads=("II",))
    assert len(fig.data) == 2
    hidden = int(mask[0, 1].sum())
    assert np.isfinite(np.asarray(fig.data[1].y, dtype=float)).sum() == hidden * 25
    assert len(fig.layout.shapes) == hidden


def test_history_series_counts_epochs_from_one_and_skips_missing_values():
    history = [{"epoch": 0, "loss": 1.0, "auc": float("nan")}, {"epoch": 1, "loss": 0.5, "auc": 0.7},
               {"epoch": 2, "auc": 0.8}]
    assert mp.history_series(history, "loss") == ([1, 2], [1.0, 0.5])
    assert mp.history_series(history, "auc") == ([2, 3], [0.7, 0.8])
    fig = mp.curves_figure({"a": history, "b": history}, {"loss": "loss"}, {"auc": "AUC"},
                           best_epochs={"a": 1})
    assert [t.name for t in fig.data] == ["a: loss", "a: AUC", "b: loss", "b: AUC"]
    assert fig.data[1].yaxis == "y2" and fig.data[0].yaxis == "y"
    assert fig.layout.shapes[0].x0 == 2


def test_comparison_rows_are_relative_to_the_reference():
    results = {"teacher": {"macro_auc": 0.9, "params": 1000, "latency_ms": 10.0, "flops": 400},
               "student": {"macro_auc": 0.85, "params": 50, "latency_ms": 2.0, "flops": 40,
                           "macro_auc_ci": [0.8, 0.9]}}
    rows = mp.comparison_rows(results, "teacher")
    assert rows[0]["params_vs_ref"] == 1.0 and rows[0]["auc_vs_ref"] == 0.0
    assert rows[1]["params_vs_ref"] == pytest.approx(0.05)
    assert rows[1]["latency_vs_ref"] == pytest.approx(0.2)
    assert rows[1]["flops_vs_ref"] == pytest.approx(0.1)
    assert rows[1]["auc_vs_ref"] == pytest.approx(-0.05)
    table = mp.comparison_table_figure(rows)
    cells = table.data[0].cells.values
    assert list(cells[0]) == ["teacher", "student"] and cells[1][1] == "0.850 [0.800, 0.900]"
    assert cells[3][0] == "1,000"
    with pytest.raises(ValueError, match="reference 'x'"):
        mp.comparison_rows(results, "x")


# --------------------------------------------------------------------------- ECG figures


def test_patching_figure_labels_every_patch_with_its_token_index():
    fig = mp.patching_figure(record(250), 25, FS, leads=("I", "V1"))
    labels = [a.text for a in fig.layout.annotations if a.text.isdigit()]
    assert labels[:10] == [str(i) for i in range(10)]  # lead I: tokens 0..9
    assert labels[10:] == [str(6 * 10 + p) for p in range(10)]  # V1 is lead 6: tokens 60..69
    assert len(fig.layout.shapes) == 2 * 5  # every other patch shaded
    with pytest.raises(ECGDataError, match=r"\[12, T\]"):
        mp.patching_figure(np.zeros((3, 250)), 25, FS)


def test_receptive_field_figure_shades_the_student_layout_spans():
    student = ECGStudentCNN().eval()
    x = torch.from_numpy(record(250)).float()[None]
    with torch.no_grad():
        layout = student(x).token_layout
    fig = mp.receptive_field_figure(record(250), layout, positions=[0, 15], leads=("II",))
    spans = [(s.x0, s.x1) for s in fig.layout.shapes]
    assert spans == [(layout.start[p].item() / FS, layout.end[p].item() / FS) for p in (0, 15)]
    size, jump, _ = student.receptive_field()
    assert layout.end[15] - layout.start[15] == size  # an interior token sees the full field
    assert len(fig.data[-1].x) == len(layout)
    with pytest.raises(ValueError, match="out of range"):
        mp.receptive_field_figure(record(250), layout, positions=[len(layout)])


def test_attention_on_ecg_figure_darkest_span_is_the_largest_value():
    layout = TokenLayout.lead_patches(12, 100, 25, FS)
    values = np.full(48, 0.01)
    values[1 * 4 + 2] = 0.5  # lead II, patch 2
    fig = mp.attention_on_ecg_figure(record(100), values, layout, leads=("I", "II"))
    darkest = max(fig.layout.shapes, key=lambda s: s.opacity)
    assert (darkest.x0, darkest.x1) == (0.5, 0.75) and darkest.yref.split()[0] == "y2"  # second row: lead II
    assert darkest.opacity == pytest.approx(0.6)
    values[8 * 4:9 * 4] = 0.2  # lead V3 in total (0.8) beats lead II (0.53)
    assert mp.most_attended_leads(values, layout, 2) == [1, 8]
    default = mp.attention_on_ecg_figure(record(100), values, layout)
    assert [a.text for a in default.layout.annotations] == ["I", "II", "III", "V3"]  # row titles
    with pytest.raises(ValueError, match="no lead-specific tokens"):
        mp.most_attended_leads([1.0], TokenLayout.time_positions(1, 10, 4, 0, 3, FS))
