"""The teacher: a mini ECG foundation model, a transformer encoder over lead-aware patches.

EVL-ECG distils a large transformer ECG model; this is its laptop-scale stand-in. Each lead
of ``x [B, 12, T]`` is cut into non-overlapping patches of ``patch_len`` samples (a
ViT-style patch embedding, Dosovitskiy et al. 2021, applied per lead). Every patch is
linearly embedded and gets a learned lead embedding plus a learned time-position
embedding, so the 12 * P tokens know which lead and which moment they come from:

    h_{l,p} = W x_{l,p} + b + E_lead[l] + E_time[p]            x_{l,p} in R^{patch_len}

A CLS token is prepended and the sequence runs through a stock ``transformers`` BERT
encoder (``BertEncoder``, Devlin et al. 2019; post-LayerNorm blocks). The CLS output is
the pooled embedding and feeds a linear classifier.

Foundation stage (``masked_patch_loss``): SimMIM / MAE-style masked patch modelling
(Xie et al. 2022; He et al. 2022). A random share of patches is replaced by a learned
mask token *before* the lead and time embeddings are added (so the model knows where the
hole is, not what is in it), and a linear head reconstructs the hidden samples. The loss is
the mean squared error over masked patches only:

    L = 1 / (|M| * patch_len) * sum_{(l,p) in M} || xhat_{l,p} - x_{l,p} ||^2

Options (``ECGTransformerConfig``): ``encoder="vit"`` swaps the post-LN BERT blocks for stock
pre-LN ViT blocks (:class:`PreLayerNormEncoder`); ``tokenizer="conv"`` embeds each patch with a
small CNN (:class:`PatchConvTokenizer`) instead of one linear map; ``tokenizer="stem"`` runs a
strided convolutional stem along each lead (:class:`LeadConvStem`, an "early convolutions"
hybrid), one token per lead and patch-length step; ``pooling="leads"`` pools each lead's tokens
over time and projects the 12 summaries together (:meth:`ECGTransformer.pool`). The
workshop recipe (``recipes.teacher_recipe``) uses the stem and lead pooling: together they
lifted the workshop synthetic test macro-AUC from 0.855 to 0.933; encoder, width, depth,
dropout, learning rate and per-lead stem filters then moved it by no more than the noise
(``python -m evl_lite teacher-variants --out results/teacher_variants_synthetic --table``), so
the recipe runs two blocks without dropout: a training step about 1.6x cheaper than four blocks
with dropout 0.1 (``python -m evl_lite bench teacher-step --against '{"n_layers": 4, "dropout": 0.1}'``).

Built from ``ECGTransformerConfig`` at run time; nothing is downloaded. Checkpoints are
written by ``save_pretrained`` as ``config.json`` + ``model.safetensors``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor, nn
from transformers import BertConfig, PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.bert.modeling_bert import BertEncoder, BertSelfAttention
from transformers.models.vit.modeling_vit import ViTAttention, ViTConfig, ViTLayer

from evl_lite.errors import ECGDataError
from evl_lite.models.output import ModelOutput, TokenLayout, check_ecg_batch, check_state_shapes

TOKENIZERS = ("linear", "conv", "stem")
POOLINGS = ("cls", "mean", "leads")


class ECGTransformerConfig(PretrainedConfig):
    """Hyper-parameters of the teacher (a ``transformers`` config: saved as ``config.json``)."""

    model_type = "ecg_transformer"

    n_leads: int = 12
    patch_len: int = 25  # samples per patch: 0.25 s at 100 Hz
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    ffn: int = 512  # hidden width of each block's feed-forward network
    dropout: float = 0.1
    n_classes: int = 5
    max_patches_per_lead: int = 40  # longest input: 40 * 25 = 1000 samples (10 s at 100 Hz)
    fs: float = 100.0  # sampling rate in Hz, used by the token layout
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pooling: str = "cls"  # pooled embedding: "cls" token, "mean" of the patch tokens, or "leads" (see pool())
    tokenizer: str = "linear"  # "linear" (ViT), "conv" (CNN inside each patch), "stem" (CNN along each lead)
    tokenizer_channels: int = 32  # channels of the "conv" and "stem" tokenizers
    stem_per_lead: bool = False  # "stem": each lead its own filters (grouped convolutions), not shared
    stem_blocks: int = 0  # "stem": residual blocks after each strided convolution (a deeper stem)
    stem_strides: list[int] | None = None  # "stem": strides in order (None: prime factors, small first)
    amplitude_embedding: bool = False  # add an embedding of each patch's log amplitude (patch_amplitude())
    lead_mixing: bool = False  # a learned residual lead transform before the tokenizer (mix_leads())
    embed_layer_norm: bool = True  # BERT's LayerNorm on the embedded tokens; False keeps each token's size
    encoder: str = "bert"  # blocks: "bert" (post-LayerNorm BERT) or "vit" (pre-LayerNorm ViT + final LN)

    def encoder_config(self) -> BertConfig | ViTConfig:
        """The matching ``BertConfig`` or ``ViTConfig`` for the stock encoder blocks."""
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {self.pooling!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, not {self.tokenizer!r}")
        if self.encoder not in ("bert", "vit"):
            raise ValueError(f"encoder must be 'bert' or 'vit', not {self.encoder!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        return (BertConfig if self.encoder == "bert" else ViTConfig)(
            hidden_size=self.d_model,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads,
            intermediate_size=self.ffn,
            hidden_act="gelu",
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
            layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range,
            attn_implementation="sdpa",
        )


class PreLayerNormEncoder(nn.Module):
    """Stock pre-LayerNorm ViT blocks (``ViTLayer``) and a final LayerNorm, as in ``ViTModel``.

    h <- h + Attn(LN(h)); h <- h + MLP(LN(h)), then LN(h) (Xiong et al. 2020: pre-LN trains
    stably without the careful warm-up that post-LN BERT blocks need on small data).
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList(ViTLayer(config) for _ in range(config.num_hidden_layers))
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: Tensor) -> BaseModelOutput:
        for block in self.layer:
            hidden_states = block(hidden_states)
        return BaseModelOutput(last_hidden_state=self.layernorm(hidden_states))


class PatchConvTokenizer(nn.Module):
    """A small CNN inside each patch: [..., patch_len] -> [..., d] (the "conv" tokenizer).

    Two convolutions (kernel 7, then kernel 5 with stride 2) run over the samples of one patch
    only, so a QRS complex gives similar features wherever it falls in the patch (a linear
    embedding must learn every shift separately), and no token sees its neighbours' samples
    (masked patches stay hidden in the foundation stage). The feature map is flattened and
    linearly projected to ``d``, as in convolutional stems for ViTs (Xiao et al. 2021).
    """

    def __init__(self, patch_len: int, channels: int, d: int):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(1, channels, 7, padding=3),
            nn.GELU(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2),
            nn.GELU(),
        )
        self.project = nn.Linear(channels * ((patch_len + 1) // 2), d)

    def forward(self, patches: Tensor) -> Tensor:
        shape = patches.shape
        h = self.convs(patches.reshape(-1, 1, shape[-1]))  # [M, channels, ceil(patch_len / 2)]
        return self.project(h.flatten(1)).reshape(*shape[:-1], -1)


def patch_amplitude(patches: Tensor, eps: float = 1e-3) -> Tensor:
    """[..., patch_len] -> [..., 2]: log RMS and log peak-to-peak amplitude of each patch.

    ``log(sqrt(mean(x^2)) + eps)`` and ``log(max(x) - min(x) + eps)``. The embedding
    LayerNorm rescales every token to unit variance, and a ReLU stem is nearly positively
    homogeneous, so a token barely knows how large its patch is next to the others of its lead
    (a tall R wave, a small ST shift: hypertrophy and ST-T changes). These two numbers,
    linearly embedded and added before the LayerNorm, say it explicitly.
    """
    rms = patches.pow(2).mean(-1).sqrt()
    peak_to_peak = patches.amax(-1) - patches.amin(-1)
    return torch.stack([(rms + eps).log(), (peak_to_peak + eps).log()], dim=-1)


def stem_strides(patch_len: int, strides: list[int] | None = None) -> list[int]:
    """The stem's strides, whose product is one patch: ``strides`` as given (checked), or the
    prime factors of ``patch_len``, smallest first.

    The order sets where the stem's residual blocks run: ``[2, 5, 5]`` for 50-sample patches puts
    the first ones at 50 Hz, ``[5, 5, 2]`` at 20 Hz (2.5x fewer positions, so cheaper).
    """
    if strides is not None:
        if not strides or any(int(s) != s or s < 1 for s in strides) or math.prod(strides) != patch_len:
            raise ValueError(f"stem strides {strides} must be positive integers whose product is "
                             f"patch_len ({patch_len})")
        return [int(s) for s in strides]
    strides, n, f = [], patch_len, 2
    while n > 1:
        while n % f == 0:
            strides.append(f)
            n //= f
        f += 1
    return strides


class StemResidualBlock(nn.Module):
    """y = ReLU(x + BN(conv(ReLU(BN(conv(x)))))): two kernel-7 convolutions at one resolution.

    A basic ResNet block (He et al. 2016) in one dimension; with ``groups`` leads each lead
    keeps its own channels, so nothing crosses from one lead to another.
    """

    def __init__(self, channels: int, groups: int = 1, kernel: int = 7):
        super().__init__()
        width = channels * groups
        self.main = nn.Sequential(
            nn.Conv1d(width, width, kernel, padding=kernel // 2, bias=False, groups=groups),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Conv1d(width, width, kernel, padding=kernel // 2, bias=False, groups=groups),
            nn.BatchNorm1d(width),
        )

    def forward(self, h: Tensor) -> Tensor:
        return torch.relu(h + self.main(h))


class LeadConvStem(nn.Module):
    """A convolutional stem along each lead: [..., P, patch_len] -> [..., P, d] (the "stem" tokenizer).

    The patches of one lead are put back end to end and run through strided convolutions
    (kernel 2s + 1, stride s, padding s, BatchNorm, ReLU) whose strides multiply to
    ``patch_len`` (:func:`stem_strides`), then a kernel-3 convolution to ``d`` at token
    resolution. Leads never mix, so token (l, p) still belongs to lead l and is centred on
    patch p, but it sees about one patch either side. The filters are shared by the leads, or
    with ``groups=n_leads`` each lead has its own (grouped convolutions, ``stem_per_lead``: a
    CNN's first layer also has lead-specific weights; the operation count is the same). Early
    convolutions of this kind make vision transformers train faster and tolerate larger
    learning rates (Xiao et al. 2021, "Early convolutions help transformers see better").
    In the foundation stage the masked patches are zeroed before the stem, so no token sees
    what it must reconstruct. With ``blocks > 0`` each strided layer is followed by that many
    :class:`StemResidualBlock` at its resolution: a deeper stem, as in hybrid ViTs whose tokens
    come from a ResNet's feature map (Dosovitskiy et al. 2021), still one lead per token.
    """

    def __init__(self, patch_len: int, channels: int, d: int, groups: int = 1, blocks: int = 0,
                 strides: list[int] | None = None):
        super().__init__()
        self.groups = groups
        layers: list[nn.Module] = []
        c_in = 1
        for s in stem_strides(patch_len, strides):
            conv = nn.Conv1d(c_in * groups, channels * groups, 2 * s + 1, s, s, bias=False, groups=groups)
            layers += [conv, nn.BatchNorm1d(channels * groups), nn.ReLU()]
            layers += [StemResidualBlock(channels, groups) for _ in range(blocks)]
            c_in = channels
        layers.append(nn.Conv1d(c_in * groups, d * groups, 3, padding=1, groups=groups))
        self.convs = nn.Sequential(*layers)

    def reset_parameters(self) -> None:
        """PyTorch's own initialisation (Kaiming-uniform convolutions, unit BatchNorm)."""
        for m in self.convs.modules():
            if isinstance(m, nn.Conv1d | nn.BatchNorm1d):
                m.reset_parameters()

    def forward(self, patches: Tensor) -> Tensor:
        *lead_shape, n_patches, patch_len = patches.shape
        if self.groups > 1 and lead_shape[-1] != self.groups:
            raise ValueError(f"a stem with {self.groups} lead groups got {lead_shape[-1]} leads")
        signal = patches.reshape(-1, self.groups, n_patches * patch_len)  # each lead end to end
        h = self.convs(signal)  # [M, groups * d, P], each group's d channels together
        return h.reshape(*lead_shape, -1, n_patches).transpose(-1, -2)  # [..., P, d]


class ECGTransformer(PreTrainedModel):
    """Transformer teacher: ``forward(x [B, 12, T]) -> ModelOutput`` with 12 * T / patch_len tokens."""

    config_class = ECGTransformerConfig
    config: ECGTransformerConfig
    base_model_prefix = "ecg_transformer"
    main_input_name = "x"

    def __init__(self, config: ECGTransformerConfig):
        super().__init__(config)
        d = config.d_model
        if config.tokenizer == "conv":
            self.patch_embed: nn.Module = PatchConvTokenizer(config.patch_len, config.tokenizer_channels, d)
        elif config.tokenizer == "stem":
            groups = config.n_leads if config.stem_per_lead else 1
            self.patch_embed = LeadConvStem(config.patch_len, config.tokenizer_channels, d, groups,
                                            config.stem_blocks, config.stem_strides)
        else:
            self.patch_embed = nn.Linear(config.patch_len, d)  # one patch [patch_len] -> [d]
        if config.lead_mixing:  # W [12, 12], zero at first: every lead starts as itself
            self.lead_mix = nn.Parameter(torch.zeros(config.n_leads, config.n_leads))
        if config.amplitude_embedding:  # [log RMS, log peak-to-peak] -> [d]
            self.amplitude_embed = nn.Linear(2, d)
        self.lead_embed = nn.Embedding(config.n_leads, d)
        self.time_embed = nn.Embedding(config.max_patches_per_lead, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        # Without it a token keeps its size, so a tall QRS patch stays larger than a flat one.
        norm = config.embed_layer_norm
        self.embed_norm = nn.LayerNorm(d, eps=config.layer_norm_eps) if norm else nn.Identity()
        self.embed_dropout = nn.Dropout(config.dropout)
        encoder_config = config.encoder_config()
        blocks = BertEncoder if config.encoder == "bert" else PreLayerNormEncoder
        self.encoder = blocks(encoder_config)
        self.head_dropout = nn.Dropout(config.dropout)
        if config.pooling == "leads":  # 12 per-lead summaries [12 * d] -> pooled [d]
            self.lead_pool = nn.Linear(config.n_leads * d, d)
        self.classifier = nn.Linear(d, config.n_classes)
        self.reconstruction_head = nn.Linear(d, config.patch_len)  # token [d] -> patch [patch_len]
        self.post_init()
        if isinstance(self.patch_embed, LeadConvStem):  # PyTorch's init for the stem, not BERT's N(0, 0.02)
            self.patch_embed.reset_parameters()
        if config.amplitude_embedding:  # as large as the stem's tokens, or the LayerNorm drowns it
            self.amplitude_embed.reset_parameters()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, ECGTransformer):
            init.normal_(module.cls_token, std=self.config.initializer_range)
            init.normal_(module.mask_token, std=self.config.initializer_range)

    # ------------------------------------------------------------------ input
    def check_input(self, x: Tensor) -> int:
        """Validate ``x [B, n_leads, T]`` and return the number of patches per lead P = T / patch_len."""
        cfg = self.config
        check_ecg_batch(x, cfg.n_leads, type(self).__name__)
        t, max_t = x.shape[2], cfg.max_patches_per_lead * cfg.patch_len
        if t % cfg.patch_len or t > max_t:
            raise ECGDataError(
                None,
                f"{type(self).__name__} expects x of shape [B, {cfg.n_leads}, T] with T a multiple of "
                f"patch_len={cfg.patch_len} and T <= {max_t}; got shape {list(x.shape)}",
            )
        return t // cfg.patch_len

    def patchify(self, x: Tensor) -> Tensor:
        """[B, 12, T] -> [B, 12, P, patch_len] non-overlapping patches of each lead."""
        b, n_leads, t = x.shape
        return x.reshape(b, n_leads, t // self.config.patch_len, self.config.patch_len)

    def mix_leads(self, patches: Tensor) -> Tensor:
        """[B, 12, P, L] -> [B, 12, P, L]: x_l + sum_m W_lm x_m, sample by sample (``lead_mixing``).

        A CNN's first layer combines all leads at every sample, so it can average away
        electrode noise and rebuild the heart's dipole before any nonlinearity (as the Kors
        matrix turns 12 leads into a vectorcardiogram); lead tokens that never mix below the
        attention cannot. W starts at zero and weight decay pulls it back there, so token l
        stays lead l plus what the task needs of the others. Masked patches are zeroed before
        the mixing, so a hidden patch still reaches no token.
        """
        return patches + torch.einsum("lm,bmpt->blpt", self.lead_mix, patches)

    # ---------------------------------------------------------------- encoder
    def _encode(self, x: Tensor, mask: Tensor | None, output_attentions: bool) -> tuple[Tensor, tuple | None]:
        """Embed, optionally mask, encode: hidden [B, 1 + 12 * P, d] (CLS first) and attentions."""
        patches = self.patchify(x)  # [B, 12, P, L]
        b, n_leads, n_patches, _ = patches.shape
        if mask is not None:  # [B, 12, P] bool: zero the hidden samples (the stem sees neighbours)
            patches = patches.masked_fill(mask[..., None], 0.0)
        if self.config.lead_mixing:
            patches = self.mix_leads(patches)
        h = self.patch_embed(patches)  # [B, 12, P, d]
        if self.config.amplitude_embedding:
            h = h + self.amplitude_embed(patch_amplitude(patches))
        if mask is not None:  # hide the content, keep the position
            h = torch.where(mask[..., None], self.mask_token.to(h.dtype), h)
        h = h + self.lead_embed.weight[None, :, None, :] + self.time_embed.weight[None, None, :n_patches, :]
        h = h.reshape(b, n_leads * n_patches, -1)  # [B, N, d], lead-major
        h = torch.cat([self.cls_token.expand(b, -1, -1), h], dim=1)  # [B, 1 + N, d]
        h = self.embed_dropout(self.embed_norm(h))
        with self._recording_attentions(output_attentions) as attentions:
            h = self.encoder(h).last_hidden_state  # [B, 1 + N, d]
        return h, (tuple(attentions) if output_attentions else None)

    @contextmanager
    def _recording_attentions(self, enabled: bool) -> Iterator[list[Tensor]]:
        """Collect each layer's attention weights [B, heads, 1 + N, 1 + N] while enabled.

        Fused SDPA attention does not expose its weights, so the encoder switches to the
        (mathematically identical) eager implementation for the duration.
        """
        maps: list[Tensor] = []
        if not enabled:
            yield maps
            return
        bert_config = self.encoder.config
        previous = bert_config._attn_implementation
        bert_config._attn_implementation = "eager"
        hooks = [
            m.register_forward_hook(lambda _m, _inp, out: maps.append(out[1]))
            for m in self.encoder.modules()
            if isinstance(m, BertSelfAttention | ViTAttention)
        ]
        try:
            yield maps
        finally:
            for hook in hooks:
                hook.remove()
            bert_config._attn_implementation = previous

    def pool(self, hidden: Tensor) -> Tensor:
        """Pooled embedding [B, d] from the encoder output [B, 1 + N, d] (CLS first).

        ``"cls"``: the CLS token; ``"mean"``: the mean of the N patch tokens; ``"leads"``: the mean
        over time of each lead's tokens, the 12 lead summaries concatenated and linearly
        projected, ``W [m_1; ...; m_12] + b``, so the classifier sees which lead said what.
        """
        pooling = self.config.pooling
        if pooling == "cls":
            return hidden[:, 0]
        if pooling == "mean":
            return hidden[:, 1:].mean(1)
        tokens, n_leads = hidden[:, 1:], self.config.n_leads  # [B, 12 * P, d], lead-major
        per_lead = tokens.reshape(tokens.shape[0], n_leads, -1, tokens.shape[2]).mean(2)  # [B, 12, d]
        return self.lead_pool(per_lead.flatten(1))

    def forward(self, x: Tensor, output_attentions: bool = False) -> ModelOutput:
        """x [B, 12, T] -> logits [B, 5], tokens [B, 12 * T / patch_len, d], pooled [B, d] (see pool())."""
        n_patches = self.check_input(x)
        hidden, attentions = self._encode(x, mask=None, output_attentions=output_attentions)
        cfg = self.config
        pooled = self.pool(hidden)  # [B, d]
        return ModelOutput(
            logits=self.classifier(self.head_dropout(pooled)),  # [B, n_classes]
            tokens=hidden[:, 1:],  # [B, N, d]
            pooled=pooled,
            token_layout=TokenLayout.lead_patches(
                cfg.n_leads, n_patches * cfg.patch_len, cfg.patch_len, cfg.fs
            ),
            attentions=attentions,
        )

    # ------------------------------------------------------- foundation stage
    def random_patch_mask(
        self, x: Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> Tensor:
        """Mask [B, 12, P] bool hiding exactly round(mask_ratio * 12 * P) (at least 1) patches per record."""
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1); got {mask_ratio}")
        n_patches = self.check_input(x)
        b, n_tokens = x.shape[0], self.config.n_leads * n_patches
        n_masked = max(1, round(mask_ratio * n_tokens))
        # Drawn on the generator's device, so a CPU generator gives the same mask for CPU and GPU input.
        device = generator.device if generator is not None else x.device
        scores = torch.rand(b, n_tokens, generator=generator, device=device).to(x.device)  # [B, N]
        ranks = scores.argsort(dim=1).argsort(dim=1)  # rank of each token's score
        return (ranks < n_masked).reshape(b, self.config.n_leads, n_patches)

    def masked_patch_loss(
        self,
        x: Tensor,
        mask_ratio: float = 0.5,
        generator: torch.Generator | None = None,
        mask: Tensor | None = None,
        normalize_target: bool = False,
    ) -> tuple[Tensor, dict[str, Any]]:
        """Masked patch reconstruction loss on x [B, 12, T] (see the module docstring).

        ``mask`` [B, 12, P] bool (True = hidden) overrides the random mask drawn with
        ``mask_ratio`` and ``generator``. Targets are the raw samples of each patch (inputs are
        already standardised per lead by the preprocessing); with ``normalize_target`` each
        patch is z-scored first, as in MAE's normalised-pixel variant.

        Returns the scalar loss and ``details``: ``mask`` [B, 12, P], ``prediction`` and
        ``target`` [B, 12, P, patch_len] (prediction for every patch; only masked ones count).
        """
        n_patches = self.check_input(x)
        if mask is None:
            mask = self.random_patch_mask(x, mask_ratio, generator)
        expected = (x.shape[0], self.config.n_leads, n_patches)
        if mask.shape != expected or mask.dtype != torch.bool:
            got = f"{mask.dtype} {list(mask.shape)}"
            raise ValueError(f"mask must be a bool tensor of shape {list(expected)}; got {got}")
        if not mask.any():
            raise ValueError("mask hides no patch: the loss would be empty")
        hidden, _ = self._encode(x, mask=mask, output_attentions=False)
        prediction = self.reconstruction_head(hidden[:, 1:]).reshape(*expected, -1)  # [B, 12, P, L]
        target = self.patchify(x)  # [B, 12, P, L]
        if normalize_target:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        per_patch = (prediction - target).pow(2).mean(-1)  # [B, 12, P]
        loss = per_patch[mask].mean()
        return loss, {"mask": mask, "prediction": prediction, "target": target}

    # ------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | Path, *args: Any, **kwargs: Any
    ) -> ECGTransformer:
        """Load a local checkpoint directory written by ``save_pretrained`` (never the hub).

        Stricter than ``transformers``: a ``config=`` that differs from the saved one, or weights
        that do not fit the saved config (missing, unexpected or mis-shaped tensors), raise an
        ``ECGDataError`` naming the directory, where ``transformers`` would re-initialise layers.
        """
        path = Path(pretrained_model_name_or_path)
        if not path.is_dir():
            raise ECGDataError(path, "teacher checkpoint directory not found")
        for name in ("config.json", "model.safetensors"):
            if not (path / name).is_file():
                raise ECGDataError(path, f"not a teacher checkpoint: {name} is missing")
        saved = ECGTransformerConfig.from_pretrained(path)
        requested = kwargs.get("config")
        if isinstance(requested, ECGTransformerConfig):
            diff = {k: (getattr(saved, k), getattr(requested, k)) for k in CONFIG_FIELDS}
            diff = {k: v for k, v in diff.items() if v[0] != v[1]}
            if diff:
                raise ECGDataError(
                    path, f"checkpoint config differs from the requested one: {diff} (saved, requested)"
                )
        with torch.device("meta"):  # shapes only, no memory
            expected = {k: tuple(v.shape) for k, v in cls(saved).state_dict().items()}
        with safe_open(path / "model.safetensors", framework="pt") as weights:
            found = {k: tuple(weights.get_slice(k).get_shape()) for k in weights.keys()}
        check_state_shapes(expected, found, path)
        kwargs.setdefault("local_files_only", True)
        kwargs.setdefault("use_safetensors", True)
        with quiet_transformers():  # no "Loading weights" bar in every notebook and command
            return super().from_pretrained(path, *args, **kwargs)

    def save_pretrained(self, save_directory: str | Path, *args: Any, **kwargs: Any) -> Any:
        """``transformers``' ``save_pretrained``, without its progress bar."""
        with quiet_transformers():
            return super().save_pretrained(save_directory, *args, **kwargs)


@contextmanager
def quiet_transformers():
    """Switch ``transformers``' progress bars off for the block (and back on if they were on)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


# The teacher's own hyper-parameters (not the transformers bookkeeping such as `dtype`).
CONFIG_FIELDS: tuple[str, ...] = tuple(ECGTransformerConfig.__annotations__)
