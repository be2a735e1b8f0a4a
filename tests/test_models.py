"""Teacher and student: output contract, token layouts, masked patches, checkpoints, input checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from evl_lite.errors import ECGDataError
from evl_lite.models.output import ModelOutput, TokenLayout, count_parameters
from evl_lite.models.student import ECGStudentCNN, StudentConfig
from evl_lite.models.teacher import (
    ECGTransformer,
    ECGTransformerConfig,
    StemResidualBlock,
    patch_amplitude,
    stem_strides,
)

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models, one thread


def tiny_teacher(seed: int = 0, **overrides) -> ECGTransformer:
    torch.manual_seed(seed)
    cfg = dict(d_model=32, n_layers=2, n_heads=2, ffn=64, dropout=0.0)
    return ECGTransformer(ECGTransformerConfig(**{**cfg, **overrides})).eval()


def student(seed: int = 0, **overrides) -> ECGStudentCNN:
    torch.manual_seed(seed)
    return ECGStudentCNN(StudentConfig(**overrides)).eval()


def ecg_like(batch: int, n_samples: int, seed: int = 1) -> torch.Tensor:
    """A fixed, learnable batch [B, 12, T]: a lead-specific template, scaled per record, plus noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n_samples) / 100.0
    template = torch.sin(2 * math.pi * 1.2 * t + torch.linspace(0, 3, 12)[:, None])  # [12, T]
    template = template + 0.5 * torch.sin(2 * math.pi * 3.1 * t)
    scale = 1 + 0.2 * torch.randn(batch, 12, 1, generator=g)
    return template * scale + 0.05 * torch.randn(batch, 12, n_samples, generator=g)


# --------------------------------------------------------------------------- teacher


@pytest.mark.parametrize("n_samples", [250, 1000])
def test_teacher_output_shapes_and_layout(n_samples):
    model = tiny_teacher()
    out = model(torch.randn(3, 12, n_samples))
    n_patches = n_samples // 25
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (3, 5)
    assert out.tokens.shape == (3, 12 * n_patches, 32)
    assert out.pooled.shape == (3, 32)
    assert out.attentions is None
    layout = out.token_layout
    assert len(layout) == 12 * n_patches and layout.n_samples == n_samples and layout.fs == 100.0
    assert layout.start.min() == 0 and layout.end.max() == n_samples
    assert torch.all(layout.end - layout.start == 25)
    counts = torch.bincount(layout.lead, minlength=12)
    assert counts.tolist() == [n_patches] * 12


def test_teacher_layout_points_at_the_patch_each_token_embeds():
    model = tiny_teacher()
    x = torch.randn(2, 12, 250)
    layout = model(x).token_layout
    patches = model.patchify(x).reshape(2, -1, 25)  # [B, N, patch_len] in token order
    for i in (0, 7, 13, 119):
        lead, start, end = int(layout.lead[i]), int(layout.start[i]), int(layout.end[i])
        assert torch.equal(patches[:, i], x[:, lead, start:end])
    start_s, end_s = layout.span_seconds()
    assert start_s[1].item() == pytest.approx(0.25) and end_s[1].item() == pytest.approx(0.5)


def test_teacher_accepts_any_multiple_of_patch_len():
    out = tiny_teacher()(torch.randn(1, 12, 50))
    assert out.tokens.shape == (1, 24, 32)


ENCODER_OPTIONS = [
    {}, {"encoder": "vit"}, {"tokenizer": "conv"}, {"encoder": "vit", "tokenizer": "conv"},
    {"tokenizer": "stem"}, {"pooling": "leads"},
]


@pytest.mark.parametrize("options", ENCODER_OPTIONS)
def test_teacher_attentions_are_row_stochastic_and_match_fused_attention(options):
    model = tiny_teacher(**options)
    x = torch.randn(2, 12, 250)
    plain = model(x)
    out = model(x, output_attentions=True)
    assert out.attentions is not None and len(out.attentions) == 2
    for att in out.attentions:
        assert att.shape == (2, 2, 121, 121)  # [B, heads, 1 + N, 1 + N], CLS first
        assert att.min() >= 0
        torch.testing.assert_close(att.sum(-1), torch.ones(2, 2, 121))
    # Eager attention (needed to see the weights) computes the same function as fused SDPA.
    torch.testing.assert_close(out.tokens, plain.tokens, atol=1e-5, rtol=1e-5)
    assert model.encoder.config._attn_implementation == "sdpa"


@pytest.mark.parametrize(
    ("shape", "needle"),
    [
        ((2, 8, 250), "[2, 8, 250]"),
        ((2, 12, 260), "patch_len=25"),
        ((2, 12, 1025), "T <= 1000"),
        ((12, 250), "[12, 250]"),
    ],
)
def test_teacher_rejects_bad_shapes_with_clear_message(shape, needle):
    with pytest.raises(ValueError) as info:
        tiny_teacher()(torch.randn(*shape))
    assert isinstance(info.value, ECGDataError)
    message = str(info.value)
    assert needle in message and "[B, 12, T]" in message and str(list(shape)) in message


def test_both_models_reject_non_finite_and_integer_input():
    x = torch.randn(1, 12, 250)
    x[0, 3, 10] = float("nan")
    for model in (tiny_teacher(), student()):
        with pytest.raises(ECGDataError, match="NaN"):
            model(x)
        with pytest.raises(ECGDataError, match="dtype"):
            model(torch.zeros(1, 12, 250, dtype=torch.long))


def test_masked_patch_loss_learns_on_a_fixed_batch():
    model = tiny_teacher(max_patches_per_lead=10)
    x = ecg_like(4, 250)
    eval_mask = model.random_patch_mask(x, 0.5, torch.Generator().manual_seed(123))

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            loss, _ = model.masked_patch_loss(x, mask=eval_mask)
        return loss.item()

    before = eval_loss()
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        loss, _ = model.masked_patch_loss(x, mask_ratio=0.5, generator=generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = eval_loss()
    assert before > 0.3  # predicting ~0 at start: about the signal's variance
    assert after < 0.3 * before


def test_masked_patch_loss_counts_only_masked_patches():
    model = tiny_teacher()
    x = torch.randn(2, 12, 250)
    loss, details = model.masked_patch_loss(x, mask_ratio=0.25, generator=torch.Generator().manual_seed(0))
    mask, prediction, target = details["mask"], details["prediction"], details["target"]
    assert mask.shape == (2, 12, 10) and prediction.shape == target.shape == (2, 12, 10, 25)
    assert mask.sum(dim=(1, 2)).tolist() == [30, 30]  # round(0.25 * 120) per record
    assert torch.equal(target, model.patchify(x))
    torch.testing.assert_close(loss, (prediction - target).pow(2).mean(-1)[mask].mean())
    # The loss has no gradient with respect to predictions of visible patches.
    prediction.retain_grad()
    loss.backward()
    grad_norm = prediction.grad.abs().sum(-1)  # [B, 12, P]
    assert torch.all(grad_norm[~mask] == 0) and torch.all(grad_norm[mask] > 0)


@pytest.mark.parametrize("options", ENCODER_OPTIONS)
def test_masked_patches_are_hidden_from_the_model(options):
    model = tiny_teacher(**options)
    x = torch.randn(1, 12, 250)
    mask = torch.zeros(1, 12, 10, dtype=torch.bool)
    mask[0, 4, 3] = True  # lead 4 (AVL), patch 3 = samples 75..100
    _, base = model.masked_patch_loss(x, mask=mask)
    changed = x.clone()
    changed[0, 4, 75:100] += 5.0  # only the hidden patch: the target moves, the prediction must not
    _, hidden = model.masked_patch_loss(changed, mask=mask)
    assert torch.equal(hidden["prediction"], base["prediction"])
    assert not torch.equal(hidden["target"], base["target"])
    changed = x.clone()
    changed[0, 4, 100:125] += 5.0  # a visible neighbour: context, so the prediction moves
    _, visible = model.masked_patch_loss(changed, mask=mask)
    assert not torch.allclose(visible["prediction"][0, 4, 3], base["prediction"][0, 4, 3])


def test_masked_patch_loss_normalised_targets_and_bad_masks():
    model = tiny_teacher()
    x = 3.0 + 2.0 * torch.randn(1, 12, 250)
    _, details = model.masked_patch_loss(x, normalize_target=True, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(details["target"].mean(-1), torch.zeros(1, 12, 10), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="mask_ratio"):
        model.masked_patch_loss(x, mask_ratio=1.0)
    with pytest.raises(ValueError, match=r"\[1, 12, 10\]"):
        model.masked_patch_loss(x, mask=torch.ones(1, 12, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="no patch"):
        model.masked_patch_loss(x, mask=torch.zeros(1, 12, 10, dtype=torch.bool))


def assert_no_pickle(directory: Path) -> None:
    suffixes = {p.suffix for p in directory.rglob("*") if p.is_file()}
    assert not suffixes & PICKLE_SUFFIXES, suffixes


@pytest.mark.parametrize("options", ENCODER_OPTIONS)
def test_teacher_save_load_round_trip(tmp_path, options):
    model = tiny_teacher(**options)
    x = torch.randn(2, 12, 250)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    assert_no_pickle(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    assert ("patch_embed.weight" in stored) == (options.get("tokenizer", "linear") == "linear")
    loaded = ECGTransformer.from_pretrained(tmp_path)
    assert not loaded.training
    assert loaded.config.d_model == 32 and loaded.config.n_layers == 2
    assert {k: getattr(loaded.config, k) for k in options} == options
    assert torch.equal(loaded(x).logits, model(x).logits)


def test_teacher_options_are_checked_and_a_checkpoint_of_other_blocks_is_refused(tmp_path):
    for bad, needle in (({"encoder": "gpt"}, "encoder must be 'bert' or 'vit'"),
                        ({"tokenizer": "fft"}, r"tokenizer must be one of \('linear', 'conv', 'stem'\)"),
                        ({"pooling": "max"}, r"pooling must be one of \('cls', 'mean', 'leads'\)")):
        with pytest.raises(ValueError, match=needle):
            tiny_teacher(**bad)
    tiny_teacher(encoder="vit").save_pretrained(tmp_path)
    with pytest.raises(ECGDataError, match=r"'encoder': \('vit', 'bert'\)"):
        ECGTransformer.from_pretrained(tmp_path, config=tiny_teacher().config)


def test_conv_tokenizer_sees_a_shifted_wave_alike_and_the_pre_ln_encoder_ends_normalised():
    model = tiny_teacher(tokenizer="conv")
    wave = torch.zeros(1, 12, 1, 25)
    wave[..., 8:13] = torch.tensor([0.2, 1.0, 2.0, 1.0, 0.2])
    shifted = torch.roll(wave, 2, dims=-1)  # the same wave two samples (one stride) later
    conv = model.patch_embed.convs
    a, b = conv(wave.reshape(-1, 1, 25)), conv(shifted.reshape(-1, 1, 25))
    # equivariant inside the patch: the feature map moves by one position
    torch.testing.assert_close(torch.roll(a, 1, dims=-1)[..., 2:-2], b[..., 2:-2])
    hidden = tiny_teacher(encoder="vit").encoder(torch.randn(2, 5, 32)).last_hidden_state
    torch.testing.assert_close(hidden.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)


def test_lead_pooling_projects_the_per_lead_token_means():
    model = tiny_teacher(pooling="leads")
    out = model(torch.randn(2, 12, 250))  # 10 patches per lead
    per_lead = out.tokens.reshape(2, 12, 10, 32).mean(2)  # [B, 12, d]
    expected = per_lead.flatten(1) @ model.lead_pool.weight.T + model.lead_pool.bias
    torch.testing.assert_close(out.pooled, expected)
    torch.testing.assert_close(out.logits, model.classifier(expected))


@pytest.mark.parametrize(
    "options",
    [{}, {"stem_per_lead": True}, {"amplitude_embedding": True}, {"stem_blocks": 1},
     {"stem_blocks": 2, "stem_per_lead": True}],
)
def test_stem_tokens_stay_in_their_lead_and_masked_samples_stay_hidden(options):
    model = tiny_teacher(tokenizer="stem", **options).eval()
    assert [m.stride[0] for m in model.patch_embed.convs if isinstance(m, torch.nn.Conv1d)] == [5, 5, 1]
    x = torch.randn(1, 12, 250)
    changed = x.clone()
    changed[0, 3, 100:125] += 5.0  # lead 3, patch 4 (patch_len 25)
    with torch.no_grad():
        a, b = (model.patch_embed(model.patchify(v)) for v in (x, changed))  # [1, 12, P, d]
    moved = (a - b).abs().amax(-1)[0]  # [12, P]
    assert moved[3, 4] > 0 and moved[3, 3] > 0 and moved[3, 5] > 0  # neighbours see it: ~1 patch of context
    assert torch.equal(moved[torch.arange(12) != 3], torch.zeros(11, 10))  # no other lead does
    mask = torch.zeros(1, 12, 10, dtype=torch.bool)
    mask[0, 3, 4] = True
    with torch.no_grad():
        _, da = model.masked_patch_loss(x, mask=mask)
        _, db = model.masked_patch_loss(changed, mask=mask)
    torch.testing.assert_close(da["prediction"], db["prediction"])  # the hidden patch leaks nowhere


def test_stem_strides_can_be_ordered_coarse_first_and_a_bad_order_is_refused():
    assert stem_strides(50) == [2, 5, 5]
    coarse = tiny_teacher(tokenizer="stem", patch_len=50, stem_blocks=1, stem_strides=[5, 5, 2])
    convs = [m for m in coarse.patch_embed.convs if isinstance(m, torch.nn.Conv1d) and m.stride[0] > 1]
    assert [(m.kernel_size[0], m.stride[0]) for m in convs] == [(11, 5), (11, 5), (5, 2)]
    x = torch.randn(2, 12, 250)
    assert coarse(x).tokens.shape == tiny_teacher(tokenizer="stem", patch_len=50)(x).tokens.shape
    # same weights, other resolutions: the blocks now run on 50 + 10 + 5 positions, not 125 + 25 + 5
    assert count_parameters(coarse) == count_parameters(
        tiny_teacher(tokenizer="stem", patch_len=50, stem_blocks=1)
    ) + 1 * 32 * (11 - 5) + 32 * 32 * (5 - 11)  # kernels 11, 11, 5 against 5, 11, 11: first and last differ
    for bad in ([5, 5], [5, 5, 3], [0, 50], [2.5, 20]):
        with pytest.raises(ValueError, match="product is patch_len"):
            tiny_teacher(tokenizer="stem", patch_len=50, stem_strides=bad)


def test_stem_residual_blocks_are_identity_plus_a_branch_at_every_resolution():
    model = tiny_teacher(tokenizer="stem", stem_blocks=2)
    blocks = [m for m in model.patch_embed.convs if isinstance(m, StemResidualBlock)]
    assert len(blocks) == 2 * len(stem_strides(model.config.patch_len))  # two after each strided layer
    block = blocks[0].eval()
    h = torch.randn(3, 32, 40)
    with torch.no_grad():
        assert not torch.allclose(block(h), h.relu())
        block.main[-1].weight.zero_()  # the branch's last BatchNorm silenced: y = ReLU(x)
        block.main[-1].bias.zero_()
        torch.testing.assert_close(block(h), h.relu())
    extra = count_parameters(model) - count_parameters(tiny_teacher(tokenizer="stem"))
    assert extra == sum(count_parameters(b) for b in blocks)  # the blocks are the only new weights


def test_amplitude_embedding_sees_the_size_of_each_patch():
    square = torch.tensor([1.0, -1.0] * 10)  # RMS 1, peak-to-peak 2
    amplitude = patch_amplitude(torch.stack([3.0 * square, torch.zeros(20)]), eps=1e-3)
    torch.testing.assert_close(amplitude[0], torch.tensor([3.0 + 1e-3, 6.0 + 1e-3]).log())
    torch.testing.assert_close(amplitude[1], torch.full((2,), 1e-3).log())
    model = tiny_teacher(tokenizer="stem", amplitude_embedding=True)
    plain = tiny_teacher(tokenizer="stem")
    assert model.amplitude_embed.weight.abs().max() > 0.1  # PyTorch's init: not drowned by the stem
    missing = model.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["amplitude_embed.bias", "amplitude_embed.weight"]
    x = torch.randn(1, 12, 250)
    with torch.no_grad():
        assert not torch.allclose(model(x).tokens, plain(x).tokens, atol=1e-3)
        model.amplitude_embed.weight.zero_()
        model.amplitude_embed.bias.zero_()
        torch.testing.assert_close(model(x).tokens, plain(x).tokens)  # the one difference is that term


def test_without_the_embedding_layer_norm_a_taller_patch_gives_a_larger_token():
    x = torch.randn(1, 12, 250)
    x[0, 3, 100:125] *= 4.0  # lead 3, patch 4 (patch_len 25): four times as tall
    sizes = {}
    for norm in (True, False):
        model = tiny_teacher(tokenizer="stem", embed_layer_norm=norm)
        seen: list[torch.Tensor] = []
        model.embed_norm.register_forward_hook(lambda _m, _inp, out, seen=seen: seen.append(out))
        with torch.no_grad():
            model(x)
        tokens = seen[0][0, 1:].reshape(12, 10, -1)  # CLS first, then lead-major
        sizes[norm] = tokens.norm(dim=-1)
    torch.testing.assert_close(sizes[True], torch.full((12, 10), 32**0.5), rtol=1e-3, atol=1e-3)
    assert sizes[False][3, 4] > 1.5 * sizes[False][3].median()  # the tall patch stands out
    assert isinstance(tiny_teacher(embed_layer_norm=False).embed_norm, torch.nn.Identity)


def test_lead_mixing_starts_as_the_identity_and_keeps_masked_patches_hidden():
    model = tiny_teacher(tokenizer="stem", lead_mixing=True)
    plain = tiny_teacher(tokenizer="stem")
    assert torch.equal(model.lead_mix, torch.zeros(12, 12))
    model.load_state_dict({**plain.state_dict(), "lead_mix": model.lead_mix.detach()})
    x = torch.randn(1, 12, 250)
    with torch.no_grad():
        torch.testing.assert_close(model(x).tokens, plain(x).tokens)  # W = 0: each lead is itself
        model.lead_mix[0, 3] = 0.5  # lead 0 now also hears lead 3
        patches = model.patchify(x)
        mixed = model.mix_leads(patches)
        torch.testing.assert_close(mixed[:, 0], patches[:, 0] + 0.5 * patches[:, 3])
        torch.testing.assert_close(mixed[:, 1:], patches[:, 1:])
        changed = x.clone()
        changed[0, 3, 100:125] += 5.0  # lead 3, patch 4
        moved = (model.patch_embed(model.mix_leads(model.patchify(changed))) - model.patch_embed(mixed))
        moved = moved.abs().amax(-1)[0]  # [12, P]
        assert moved[0, 4] > 0 and moved[3, 4] > 0 and moved[5, 4] == 0  # lead 0 sees lead 3, lead 5 does not
        mask = torch.zeros(1, 12, 10, dtype=torch.bool)
        mask[0, 3, 4] = True
        _, da = model.masked_patch_loss(x, mask=mask)
        _, db = model.masked_patch_loss(changed, mask=mask)
    torch.testing.assert_close(da["prediction"], db["prediction"])  # zeroed before mixing: still hidden


def test_per_lead_stem_with_every_lead_given_the_shared_filters_is_the_shared_stem():
    shared = tiny_teacher(tokenizer="stem").patch_embed.eval()
    per_lead = tiny_teacher(tokenizer="stem", stem_per_lead=True).patch_embed.eval()
    assert per_lead.groups == 12
    with torch.no_grad():
        for mine, theirs in zip(per_lead.convs, shared.convs, strict=True):
            for name, value in theirs.state_dict().items():
                if value.ndim:  # conv weights [out, in, k] and BatchNorm vectors: lead-major blocks
                    getattr(mine, name).copy_(value.repeat(12, *[1] * (value.ndim - 1)))
        patches = tiny_teacher().patchify(torch.randn(2, 12, 250))
        torch.testing.assert_close(per_lead(patches), shared(patches))
        with pytest.raises(ValueError, match="12 lead groups got 11 leads"):
            per_lead(patches[:, :11])


def test_teacher_checkpoint_errors_are_clear(tmp_path):
    missing = tmp_path / "no-such-teacher"
    with pytest.raises(ECGDataError, match="no-such-teacher: teacher checkpoint directory not found"):
        ECGTransformer.from_pretrained(missing)
    tiny_teacher().save_pretrained(tmp_path)
    other = ECGTransformerConfig(d_model=48, n_layers=2, n_heads=2, ffn=64, dropout=0.0)
    with pytest.raises(ECGDataError, match=r"'d_model': \(32, 48\)"):
        ECGTransformer.from_pretrained(tmp_path, config=other)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_layers": 3}))  # weights hold only 2 layers
    with pytest.raises(ECGDataError, match="missing encoder.layer.2"):
        ECGTransformer.from_pretrained(tmp_path)


# --------------------------------------------------------------------------- student


@pytest.mark.parametrize(("n_samples", "n_tokens"), [(250, 32), (1000, 125)])
def test_student_output_shapes_and_layout(n_samples, n_tokens):
    out = student()(torch.randn(3, 12, n_samples))
    assert out.logits.shape == (3, 5)
    assert out.tokens.shape == (3, n_tokens, 64)
    torch.testing.assert_close(out.pooled, out.tokens.mean(1))
    assert out.attentions is None
    layout = out.token_layout
    assert len(layout) == n_tokens and layout.n_samples == n_samples
    assert torch.all(layout.lead == -1)
    assert layout.start.min() == 0 and layout.end.max() == n_samples
    assert torch.all(layout.start < layout.end)


def test_student_receptive_field_formula():
    # Worked by hand: stem k7/s2 -> R=7, J=2, o=-3; each block adds two k7 depthwise convs
    # (the first one strided): +12*2 (J 2), +6*2+6*4 (J 2->4), +6*4+6*8 (J 4->8), +12*8 (J 8).
    assert student().receptive_field() == (235, 8, -117)


def test_student_receptive_field_matches_gradients():
    model = student()
    x = torch.randn(3, 12, 400, requires_grad=True)
    out = model(x)
    n_tokens = out.tokens.shape[1]
    for n in (0, 2, n_tokens // 2, n_tokens - 1):
        (grad,) = torch.autograd.grad(out.tokens[:, n].sum(), x, retain_graph=True)
        touched = (grad.abs().sum(dim=(0, 1)) > 0).nonzero().squeeze(1)  # input samples that matter
        start, end = int(out.token_layout.start[n]), int(out.token_layout.end[n])
        assert touched.min() >= start and touched.max() < end
        if n == n_tokens // 2:  # away from the edges the span is exact, not just an upper bound
            assert (touched.min().item(), touched.max().item()) == (start, end - 1)
            assert end - start == 235


def test_student_rejects_wrong_lead_count():
    with pytest.raises(ECGDataError, match=r"ECGStudentCNN expects .*\[B, 12, T\]; got shape \[2, 1, 250\]"):
        student()(torch.randn(2, 1, 250))


def test_student_save_load_round_trip(tmp_path):
    model = student()
    with torch.no_grad():  # non-trivial batch-norm statistics must survive too
        model.train()(torch.randn(8, 12, 250))
    model.eval()
    x = torch.randn(2, 12, 250)
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    assert_no_pickle(tmp_path)
    loaded = ECGStudentCNN.from_pretrained(tmp_path / "ckpt")
    assert not loaded.training and loaded.config == model.config
    assert torch.equal(loaded(x).logits, model(x).logits)


def test_student_checkpoint_errors_are_clear(tmp_path):
    with pytest.raises(ECGDataError, match="no-such-student: student checkpoint directory not found"):
        ECGStudentCNN.from_pretrained(tmp_path / "no-such-student")
    student().save_pretrained(tmp_path)
    with pytest.raises(ECGDataError, match=r"'stem_channels': \(32, 16\)"):
        ECGStudentCNN.from_pretrained(tmp_path, config=StudentConfig(stem_channels=16))
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "stage_channels": [32, 48, 64, 80]}))
    expected = r"blocks.3.main.3.weight: checkpoint \[64, 64, 1\] vs model \[80, 64, 1\]"
    with pytest.raises(ECGDataError, match=expected):
        ECGStudentCNN.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ECGDataError, match="model.safetensors is missing"):
        ECGStudentCNN.from_pretrained(tmp_path)


# --------------------------------------------------------------------------- both


def test_default_models_differ_and_student_is_ten_times_smaller():
    teacher, small = ECGTransformer(ECGTransformerConfig()).eval(), student()
    n_teacher, n_student = count_parameters(teacher), count_parameters(small)
    assert 700_000 < n_teacher < 1_000_000 and 20_000 < n_student < 60_000
    assert n_teacher / n_student >= 10
    x = torch.randn(1, 12, 250)
    t_out, s_out = teacher(x), small(x)
    assert t_out.tokens.shape[1:] != s_out.tokens.shape[1:]  # N and d differ
    for p in small.parameters():
        p.requires_grad_(False)
    assert count_parameters(small, trainable_only=True) == 0


def test_token_layout_rejects_inconsistent_spans():
    with pytest.raises(ValueError, match="start < end"):
        TokenLayout(torch.tensor([0]), torch.tensor([5]), torch.tensor([5]), fs=100.0, n_samples=10)
    with pytest.raises(ValueError, match=r"\[N\]"):
        TokenLayout(torch.tensor([0, 1]), torch.tensor([0]), torch.tensor([5]), fs=100.0, n_samples=10)


def test_teacher_mean_pooling_is_the_mean_of_the_patch_tokens():
    torch.manual_seed(0)
    model = ECGTransformer(
        ECGTransformerConfig(d_model=16, n_layers=1, n_heads=2, ffn=32, pooling="mean")
    ).eval()
    out = model(torch.randn(2, 12, 250))
    torch.testing.assert_close(out.pooled, out.tokens.mean(1))
    model.config.pooling = "cls"
    assert not torch.allclose(model(torch.randn(2, 12, 250)).pooled, out.tokens.mean(1))


def test_teacher_step_benchmark_pairs_the_recipe_with_its_override(capsys):
    from evl_lite.cli import main
    from evl_lite.experiments.benchmarks import bench_teacher_step
    from evl_lite.training.recipes import teacher_recipe

    result = bench_teacher_step(batch_size=2, repeats=1)  # against the recipe without stem blocks
    recipe = ECGTransformer(teacher_recipe(smoke=False)[0])
    blocks = [m for m in recipe.patch_embed.modules() if isinstance(m, StemResidualBlock)]
    assert blocks and result["against"] == {"stem_blocks": 0}
    assert result["recipe_parameters"] == count_parameters(recipe)
    extra = result["recipe_parameters"] - result["against_parameters"]
    assert extra == sum(count_parameters(b) for b in blocks)
    assert result["recipe_step_ms"] > 0 and result["against_step_ms"] > 0
    assert result["ratio"] == pytest.approx(result["recipe_step_ms"] / result["against_step_ms"])
    nan_fill = result["recipe_nan_fill_step_ms"] / result["recipe_step_ms"]
    assert result["nan_fill_ratio"] == pytest.approx(nan_fill)
    assert torch.utils.deterministic.fill_uninitialized_memory is False  # left as the training loop sets it
    assert main(["bench", "teacher-step", "--against", "stem_blocks=0"]) == 2
    assert "--against 'stem_blocks=0' is not valid JSON" in capsys.readouterr().err
    assert main(["bench", "teacher-step", "--against", "[0]"]) == 2
    assert "must be a JSON object" in capsys.readouterr().err
