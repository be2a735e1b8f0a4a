"""The distillation components and baselines: formulas, invariances, gradients, shape contracts.

Each test can fail: values are compared with ``ot.emd2``, with the reference RKD/SP values
computed by the public reference code (``../shared/reference/kd_reference.json``), or with
properties the losses must have (zero at alignment, scale invariance, teacher gets no gradient).
"""

from __future__ import annotations

import json

import hypothesis.extra.numpy as hnp
import numpy as np
import ot
import pytest
import torch
from conftest import require_shared_path
from hypothesis import given, settings
from hypothesis import strategies as st

from evl_lite.distillation import (
    CRD,
    OFAKD,
    RKD,
    CrossAttentionAlignment,
    FitNet,
    GeometricRelationMatching,
    LogitKD,
    OTFeatureMatching,
    SimilarityPreserving,
)
from evl_lite.distillation.optimal_transport import cosine_cost, sinkhorn_plans, token_marginals
from evl_lite.distillation.relation import (
    angle_relation,
    distance_relation,
    pairwise_distances,
    rkd_angle_loss,
    rkd_distance_loss,
)
from evl_lite.distillation.similarity_preserving import similarity_preserving_loss
from evl_lite.distillation.time_bins import bin_tokens, common_bins, time_bin_weights
from evl_lite.models.output import ModelOutput, TokenLayout
from evl_lite.models.student import ECGStudentCNN, StudentConfig
from evl_lite.models.teacher import ECGTransformer, ECGTransformerConfig

T = 250
TEACHER_LAYOUT = TokenLayout.lead_patches(12, T, 50, 100.0)  # N_t = 60
STUDENT_LAYOUT = TokenLayout.time_positions(32, T, 8, -117, 235, 100.0)  # N_s = 32


def output(
    tokens: torch.Tensor,
    layout: TokenLayout,
    pooled: torch.Tensor | None = None,
    logits: torch.Tensor | None = None,
) -> ModelOutput:
    b = tokens.shape[0]
    return ModelOutput(
        logits=torch.zeros(b, 5) if logits is None else logits,
        tokens=tokens,
        pooled=tokens.mean(1) if pooled is None else pooled,
        token_layout=layout,
    )


def pair(b: int = 6, d_s: int = 16, d_t: int = 32, seed: int = 0, grad: bool = True):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, len(STUDENT_LAYOUT), d_s, generator=g).requires_grad_(grad)
    t = torch.randn(b, len(TEACHER_LAYOUT), d_t, generator=g).requires_grad_(grad)
    return s, t, output(s, STUDENT_LAYOUT), output(t, TEACHER_LAYOUT)


ALL_LOSSES = {
    "kd": lambda: LogitKD(),
    "cross_attention": lambda: CrossAttentionAlignment(16, 32, n_heads=4),
    "ot": lambda: OTFeatureMatching(16, 32),
    "relation": lambda: GeometricRelationMatching(),
    "fitnet": lambda: FitNet(16, 32),
    "rkd": lambda: RKD(),
    "sp": lambda: SimilarityPreserving(),
    "crd": lambda: CRD(16, 32, dim=8),
}


# ----------------------------------------------------------------------------- shared contract


@pytest.mark.parametrize("name", [n for n in ALL_LOSSES if n != "kd"])
def test_gradients_reach_student_and_projector_never_the_teacher(name):
    loss_fn = ALL_LOSSES[name]()
    s, t, so, to = pair()
    loss, extras = loss_fn(so, to, {})
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0, f"{name}: no gradient reaches the student"
    assert t.grad is None, f"{name}: the teacher received a gradient"
    for pname, p in loss_fn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: {pname} gets no gradient"
    assert all(not v.requires_grad for v in extras.values() if isinstance(v, torch.Tensor))


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(3, 8),
    scale=st.floats(1e-2, 1e2),
    data=st.data(),
)
def test_every_loss_is_finite_for_finite_inputs(b, scale, data):
    """Property: finite features of any batch size and scale give a finite scalar loss."""
    floats = st.floats(-10, 10, allow_nan=False, width=32)
    s = torch.from_numpy(data.draw(hnp.arrays(np.float32, (b, len(STUDENT_LAYOUT), 16), elements=floats)))
    t = torch.from_numpy(data.draw(hnp.arrays(np.float32, (b, len(TEACHER_LAYOUT), 32), elements=floats)))
    logits = torch.from_numpy(data.draw(hnp.arrays(np.float32, (b, 5), elements=floats)))
    so, to = (
        output(s * scale, STUDENT_LAYOUT, logits=logits),
        output(t * scale, TEACHER_LAYOUT, logits=-logits),
    )
    for name, make in ALL_LOSSES.items():
        loss, _ = make()(so, to, {})
        assert loss.shape == () and torch.isfinite(loss), f"{name} gave {loss}"


# ----------------------------------------------------------------------------- time bins


def test_time_bin_weights_average_overlapping_tokens():
    w = time_bin_weights(TEACHER_LAYOUT, 5)  # 5 bins of 50 samples = the 5 patches of each lead
    assert w.shape == (5, 60)
    assert torch.allclose(w.sum(1), torch.ones(5))
    assert torch.allclose(w[2].reshape(12, 5), torch.tensor([0, 0, 1 / 12, 0, 0]).expand(12, 5))
    assert common_bins(TEACHER_LAYOUT, STUDENT_LAYOUT) == 5
    x = torch.arange(60.0).reshape(1, 60, 1)  # token value = its index
    assert bin_tokens(x, TEACHER_LAYOUT, 5)[0, :, 0].tolist() == pytest.approx([27.5, 28.5, 29.5, 30.5, 31.5])
    with pytest.raises(ValueError, match="covered by no token"):
        time_bin_weights(TokenLayout.time_positions(2, 100, 10, 0, 10, 100.0), 10)


# ----------------------------------------------------------------------------- cross-attention


@pytest.mark.parametrize(("n_s", "d_s", "n_t", "d_t", "heads"), [(32, 16, 60, 32, 4), (7, 64, 120, 48, 3)])
def test_cross_attention_shape_contract_and_rows_sum_to_one(n_s, d_s, n_t, d_t, heads):
    module = CrossAttentionAlignment(d_s, d_t, n_heads=heads)
    s_hat, aligned, attention = module.attend(torch.randn(5, n_s, d_s), torch.randn(5, n_t, d_t))
    assert s_hat.shape == aligned.shape == (5, n_s, d_t)
    assert attention.shape == (5, heads, n_s, n_t)
    assert torch.allclose(attention.sum(-1), torch.ones(5, heads, n_s), atol=1e-6)
    assert (attention >= 0).all()


def test_cross_attention_aligned_tokens_are_attention_weighted_teacher_tokens():
    module = CrossAttentionAlignment(8, 12, n_heads=3)
    t = torch.randn(2, 10, 12)
    _, aligned, attention = module.attend(torch.randn(2, 4, 8), t)
    t_bar = torch.nn.functional.layer_norm(t, (12,))
    for h in range(3):  # head h reads channel group h of the normalised teacher tokens
        expected = attention[:, h] @ t_bar[..., 4 * h : 4 * h + 4]
        assert torch.allclose(aligned[..., 4 * h : 4 * h + 4], expected, atol=1e-5)


def test_cross_attention_zero_loss_at_perfect_alignment_and_positive_otherwise():
    d = 8
    module = CrossAttentionAlignment(d, d, n_heads=2, d_key=4)
    with torch.no_grad():  # the projector is the identity and attention is one-hot on the matching token
        module.student_proj.weight.copy_(torch.eye(d))
        module.student_proj.bias.zero_()
        module.query.weight.copy_(torch.eye(d) * 40)
        module.key.weight.copy_(torch.eye(d) * 40)
    # six teacher tokens whose halves (one per head) are +-u_1..3, an orthonormal basis of the zero-mean
    # subspace of R^4: already layer-normalised up to a factor, each token's best key match is itself
    u = torch.linalg.qr(torch.tensor([[1.0, -1, 0, 0], [1, 1, -2, 0], [1, 1, 1, -3]]).T)[0].T  # [3, 4]
    half = torch.cat([u, -u])  # [6, 4]
    t = torch.nn.functional.layer_norm(torch.cat([half, half], 1), (d,)).expand(3, 6, d).contiguous()
    loss, extras = module(
        output(t.clone(), TokenLayout.time_positions(6, 60, 10, 0, 10, 100.0)),
        output(t, TokenLayout.time_positions(6, 60, 10, 0, 10, 100.0)),
        {},
    )
    assert float(loss.detach()) < 1e-6
    eye = torch.eye(6).expand(3, 2, 6, 6)
    assert torch.allclose(extras["attention"], eye, atol=1e-4)
    moved, _ = module(
        output(t.flip(1) + 0.5, TokenLayout.time_positions(6, 60, 10, 0, 10, 100.0)),
        output(t, TokenLayout.time_positions(6, 60, 10, 0, 10, 100.0)),
        {},
    )
    assert float(moved.detach()) > 1e-2


def test_cross_attention_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        CrossAttentionAlignment(16, 30, n_heads=4)


# ----------------------------------------------------------------------------- optimal transport


def test_ot_plan_marginals_match_the_weights():
    _, _, so, to = pair(grad=False)
    for marginals in ("uniform", "norm"):
        _, extras = OTFeatureMatching(16, 32, reg=0.05, marginals=marginals, max_iter=2000, tol=1e-9)(
            so, to, {}
        )
        plan, a, b = extras["plan"], extras["a"], extras["b"]
        assert plan.shape == (6, 32, 60)
        assert torch.allclose(plan.sum(2), a, atol=1e-5) and torch.allclose(plan.sum(1), b, atol=1e-6)
        assert torch.allclose(a.sum(1), torch.ones(6)) and torch.allclose(b.sum(1), torch.ones(6))
    _, extras = OTFeatureMatching(16, 32, marginals="uniform")(so, to, {})
    assert torch.allclose(extras["a"], torch.full((6, 32), 1 / 32))


def test_ot_cost_approaches_exact_emd_as_regularisation_shrinks():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 12, 8, generator=g), torch.randn(3, 20, 8, generator=g)
    cost = cosine_cost(x, y).double()
    a, b = token_marginals(x, "uniform").double(), token_marginals(y, "norm").double()
    exact = torch.tensor([ot.emd2(a[i].numpy(), b[i].numpy(), cost[i].numpy()) for i in range(3)])
    gaps = []
    for reg in (0.1, 0.03, 0.01, 0.003):
        plan = sinkhorn_plans(cost, a, b, reg, max_iter=20000, tol=1e-10)
        entropic = (plan * cost).sum((1, 2))
        assert (entropic >= exact - 1e-6).all()  # no plan beats the exact optimum
        gaps.append(float((entropic - exact).max()))
    assert gaps == sorted(gaps, reverse=True), f"gap does not shrink with reg: {gaps}"
    assert gaps[-1] < 0.01 * float(exact.mean()), gaps


@pytest.mark.parametrize("reg", [1e-3, 1e-2])
def test_ot_stays_finite_for_small_regularisation_on_standardised_features(reg):
    g = torch.Generator().manual_seed(2)
    s = torch.randn(8, 32, 16, generator=g) * 3
    t = torch.randn(8, 60, 32, generator=g) * 3
    s = ((s - s.mean()) / s.std()).requires_grad_()
    module = OTFeatureMatching(16, 32, reg=reg, max_iter=500)
    loss, extras = module(output(s, STUDENT_LAYOUT), output(t, TEACHER_LAYOUT), {})
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(extras["plan"]).all() and torch.isfinite(s.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


def test_ot_rejects_bad_options():
    with pytest.raises(ValueError, match="marginals"):
        OTFeatureMatching(4, 4, marginals="balanced")
    with pytest.raises(ValueError, match="reg"):
        OTFeatureMatching(4, 4, reg=0.0)


# ----------------------------------------------------------------------------- relations


def test_relation_matching_is_zero_when_student_equals_teacher_up_to_scale():
    t = torch.randn(6, len(TEACHER_LAYOUT), 32)
    module = GeometricRelationMatching()
    loss, extras = module(output(2.5 * t, TEACHER_LAYOUT), output(t, TEACHER_LAYOUT), {})
    assert float(loss) < 1e-10
    assert extras["student_sample_distance"].shape == (6, 6)
    assert extras["teacher_angle"].shape == (6, 6, 6)
    assert extras["teacher_token_distance"].shape == (6, 5, 5)


@pytest.mark.parametrize("side", ["student", "teacher"])
def test_relation_matching_is_invariant_to_a_global_scaling_of_either_side(side):
    _, _, so, to = pair(grad=False)
    module = GeometricRelationMatching()
    base = float(module(so, to, {})[0])
    assert base > 1e-3
    scaled = lambda o: output(o.tokens * 7.0, o.token_layout)  # noqa: E731
    moved = module(scaled(so), to, {})[0] if side == "student" else module(so, scaled(to), {})[0]
    assert float(moved) == pytest.approx(base, rel=1e-5)


def test_relation_primitives_on_a_hand_example():
    x = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    d = distance_relation(x)  # distances 3, 4, 5: mean 4
    assert torch.allclose(d, torch.tensor([[0, 3, 4], [3, 0, 5], [4, 5, 0]], dtype=torch.float64) / 4)
    a = angle_relation(x)
    assert float(a[0, 1, 2]) == pytest.approx(0.0, abs=1e-12)  # right angle at the origin
    assert float(a[1, 0, 2]) == pytest.approx(3 / 5)  # cos of the angle at (3, 0)


def test_rkd_and_sp_reproduce_the_reference_implementations():
    cases = json.loads(require_shared_path("reference/kd_reference.json").read_text())["cases"]
    assert len(cases) >= 3
    for case in cases:
        s = torch.tensor(case["student"], dtype=torch.float64)
        t = torch.tensor(case["teacher"], dtype=torch.float64)
        assert float(rkd_distance_loss(s, t)) == pytest.approx(case["rkd_distance"], abs=1e-9)
        assert float(rkd_angle_loss(s, t)) == pytest.approx(case["rkd_angle"], abs=1e-9)
        assert float(similarity_preserving_loss(s, t)) == pytest.approx(
            case["similarity_preserving"], abs=1e-9
        )
        loss, extras = RKD(distance_weight=1.0, angle_weight=1.0)(
            output(s[:, None], TEACHER_LAYOUT, pooled=s), output(t[:, None], TEACHER_LAYOUT, pooled=t), {}
        )
        assert float(loss) == pytest.approx(case["rkd_distance"] + case["rkd_angle"], abs=1e-6)


# ----------------------------------------------------------------------------- baselines


def test_fitnet_is_zero_when_the_regressor_maps_student_onto_teacher():
    t = torch.randn(4, len(TEACHER_LAYOUT), 8)
    module = FitNet(8, 8)
    with torch.no_grad():
        module.regressor.weight.copy_(torch.eye(8) * 0.5)
        module.regressor.bias.zero_()
    loss, extras = module(output(2 * t, TEACHER_LAYOUT), output(t, TEACHER_LAYOUT), {})
    assert float(loss.detach()) < 1e-10 and extras["hint"].shape == (4, 5, 8)


def test_similarity_preserving_is_zero_for_features_equal_up_to_scale():
    _, t, _, to = pair(grad=False)
    loss, extras = SimilarityPreserving()(
        output(3 * t[..., :16], TEACHER_LAYOUT), output(t[..., :16], TEACHER_LAYOUT), {}
    )
    assert float(loss) < 1e-10 and extras["teacher_similarity"].shape == (6, 6)


# ----------------------------------------------------------------------------- on the real models


def test_every_loss_runs_on_the_real_teacher_and_student_outputs():
    teacher = ECGTransformer(ECGTransformerConfig(d_model=32, n_layers=1, n_heads=2, ffn=64, patch_len=50))
    student = ECGStudentCNN(StudentConfig())
    x = torch.randn(4, 12, T)
    so, to = student(x), teacher(x)
    assert so.tokens.shape[1] != to.tokens.shape[1] and so.tokens.shape[2] != to.tokens.shape[2]
    d_s, d_t = so.tokens.shape[2], to.tokens.shape[2]
    losses = [
        LogitKD(),
        CrossAttentionAlignment(d_s, d_t, n_heads=4),
        OTFeatureMatching(d_s, d_t),
        GeometricRelationMatching(),
        FitNet(d_s, d_t),
        RKD(),
        SimilarityPreserving(),
    ]
    total = sum(fn(so, to, {})[0] for fn in losses)
    total.backward()
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)
    assert all(p.grad is None for p in teacher.parameters())


# ----------------------------------------------------------------------------- methods and benchmark


def test_every_method_is_a_set_of_weighted_losses():
    from evl_lite.distillation.evl import ABLATIONS, METHODS, DistillConfig, method_losses

    assert {"scratch", "kd", "fitnet", "rkd", "sp", "evl"} <= set(METHODS)
    assert method_losses("scratch", 64, 128)[0] == {}
    losses, weights = method_losses("evl", 64, 128, DistillConfig(ot_weight=0.5))
    assert set(losses) == {"kd", "cross_attention", "ot", "relation"} and weights["ot"] == 0.5
    for ablation in ABLATIONS:
        dropped = ablation.removeprefix("evl-no-")
        assert set(method_losses(ablation, 64, 128)[0]) == {"kd", "cross_attention", "ot", "relation"} - {
            dropped
        }
    assert set(method_losses("kd+ot", 64, 128)[0]) == {"kd", "ot"}
    with pytest.raises(ValueError, match="unknown method"):
        method_losses("dkd", 64, 128)
    assert set(method_losses("ofa", 64, 128)[0]) == {"ofa"}  # OFA-KD's loss takes logit KD's place
    assert set(method_losses("crd", 64, 128)[0]) == {"kd", "crd"}


def test_component_benchmark_reports_its_figures():
    from evl_lite.experiments.benchmarks import bench_components

    result = bench_components(batch_size=4, repeats=1)
    assert result["student_tokens"][0] != result["teacher_tokens"][0]
    assert set(result["component_fwd_bwd_ms"]) == {"cross_attention", "ot", "relation"}
    assert all(v > 0 for v in result["component_fwd_bwd_ms"].values())
    assert result["student_with_components_fwd_bwd_ms"] > 0 and result["student_fwd_bwd_ms"] > 0


def test_ot_scaling_and_log_domain_solvers_give_the_same_plan():
    import evl_lite.distillation.optimal_transport as otm

    g = torch.Generator().manual_seed(3)
    cost = cosine_cost(torch.randn(4, 10, 8, generator=g), torch.randn(4, 14, 8, generator=g))
    a, b = (
        token_marginals(cost[..., :1].expand(4, 10, 3), "uniform"),
        token_marginals(cost[:, :1].mT, "uniform"),
    )
    fast = sinkhorn_plans(cost, a, b, reg=0.05, max_iter=500, tol=1e-7)  # max(C) / reg <= 40: scaling domain
    limit, otm.SCALING_DOMAIN_LIMIT = otm.SCALING_DOMAIN_LIMIT, 0.0  # force the log domain
    try:
        logd = sinkhorn_plans(cost, a, b, reg=0.05, max_iter=500, tol=1e-7)
    finally:
        otm.SCALING_DOMAIN_LIMIT = limit
    assert torch.allclose(fast, logd, atol=1e-6)


def test_relations_stay_precise_in_float32_far_from_the_origin():
    """A tight cloud far from the origin (as a LayerNorm-ed teacher's pooled embeddings are)."""
    g = torch.Generator().manual_seed(4)
    x64 = torch.randn(16, 32, generator=g, dtype=torch.float64) * 0.01 + 3.0  # spread / norm ~ 0.003
    exact_d = (x64[:, None] - x64[None]).norm(dim=-1)
    e = -(x64[:, None] - x64[None]) / exact_d.clamp(min=1e-300)[..., None]
    exact_a = torch.einsum("ijd,ikd->ijk", e, e)
    x32 = x64.float()
    assert torch.allclose(pairwise_distances(x32).double(), exact_d, rtol=1e-3, atol=1e-6)
    assert (angle_relation(x32).double() - exact_a).abs().max() < 1e-3


# ----------------------------------------------------------------------------- OFA-KD and CRD


def _ofa_by_hand(z_s, z_t, y, eps, tau, labelled=None):
    """OFA's loss written out per element: two outcomes per class, the label's outcome enhanced."""
    total, n = 0.0, 0
    for b in range(z_s.shape[0]):
        for c in range(z_s.shape[1]):
            p_t = 1 / (1 + np.exp(-z_t[b, c] / tau))
            p_s = 1 / (1 + np.exp(-z_s[b, c] / tau))
            teacher, student = (p_t, 1 - p_t), (p_s, 1 - p_s)
            target = 0 if y[b, c] == 1 else 1  # outcome 0 is "positive"
            enhance = labelled is None or labelled[b]
            for o in (0, 1):
                if enhance:
                    weight = (teacher[o] + 1) ** eps - 1 if o == target else teacher[o] ** eps
                else:
                    weight = teacher[o]
                total -= weight * np.log(student[o])
            n += 1
    return total / n


@pytest.mark.parametrize("eps,tau", [(1.0, 1.0), (1.5, 1.0), (2.0, 2.0)])
def test_ofa_loss_matches_the_formula_on_fixed_tensors(eps, tau):
    from evl_lite.distillation.ofa import ofa_loss

    g = torch.Generator().manual_seed(3)
    z_s, z_t = torch.randn(4, 5, generator=g, dtype=torch.float64), torch.randn(4, 5, generator=g,
                                                                                  dtype=torch.float64)
    y = (torch.rand(4, 5, generator=g) > 0.5).double()
    labelled = torch.tensor([True, False, True, True])
    for mask in (None, labelled):
        got = float(ofa_loss(z_s, z_t, y, eps, tau, mask))
        want = _ofa_by_hand(z_s.numpy(), z_t.numpy(), y.numpy(), eps, tau,
                            None if mask is None else mask.numpy())
        assert got == pytest.approx(want, rel=1e-5)


def test_ofa_with_eps_one_is_the_cross_entropy_to_the_teacher():
    from evl_lite.distillation.logit_kd import binary_kl_with_logits
    from evl_lite.distillation.ofa import ofa_loss

    g = torch.Generator().manual_seed(4)
    z_s, z_t = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    y = (torch.rand(6, 5, generator=g) > 0.5).float()
    p_t = torch.sigmoid(z_t)
    entropy = -(p_t * p_t.log() + (1 - p_t) * (1 - p_t).log()).mean()
    kl = binary_kl_with_logits(z_s, z_t, 1.0).mean()  # CE = KL + H(teacher)
    assert float(ofa_loss(z_s, z_t, y, 1.0)) == pytest.approx(float(kl + entropy), rel=1e-5)
    # eps > 1 weights the labelled outcome more where the teacher agrees with the label
    confident = torch.full((1, 5), 4.0)
    assert float(ofa_loss(torch.zeros(1, 5), confident, torch.ones(1, 5), 1.5)) > float(
        ofa_loss(torch.zeros(1, 5), confident, torch.ones(1, 5), 1.0))


def test_ofa_kd_trains_a_branch_per_stage_and_never_the_teacher():
    teacher = ECGTransformer(ECGTransformerConfig(d_model=32, n_layers=1, n_heads=2, ffn=64, patch_len=50))
    student = ECGStudentCNN(StudentConfig())
    x = torch.randn(4, 12, T)
    so, to = student(x), teacher(x)
    assert len(so.stages) == len(StudentConfig().stage_channels)
    loss_fn = OFAKD(StudentConfig().stage_channels, 5)
    assert len(loss_fn.branches) == len(StudentConfig().stage_channels) - 1
    batch = {"y": torch.tensor([[1, 0, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [1, 0, 0, 0, 1]]),
             "labelled": torch.tensor([True, True, False, True])}
    loss, extras = loss_fn(so, to, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in loss_fn.parameters())
    assert student.stem[0].weight.grad is not None and all(p.grad is None for p in teacher.parameters())
    assert len(extras["branch_logits"]) == len(loss_fn.branches)
    with pytest.raises(ValueError, match="labels"):
        loss_fn(student(x), to, {})


def test_crd_matches_the_formula_and_prefers_matching_pairs():
    from evl_lite.distillation.crd import crd_loss

    g = torch.Generator().manual_seed(5)
    s = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=1)
    t = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=1)
    tau = 0.1
    sim = (s @ t.T / tau).numpy()

    def ce_rows(m):  # -mean_i log softmax_j m_ij at j = i
        return float(np.mean([-(m[i, i] - np.log(np.exp(m[i]).sum())) for i in range(len(m))]))

    want = 0.5 * (ce_rows(sim) + ce_rows(sim.T))
    assert float(crd_loss(s, t, tau)) == pytest.approx(want, rel=1e-5)
    # the student that is its own teacher scores better than a shuffled one
    assert float(crd_loss(t, t, tau)) < float(crd_loss(t[torch.tensor([1, 2, 3, 4, 0])], t, tau))
