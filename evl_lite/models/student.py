"""The student: a compact residual 1D CNN built from depthwise-separable convolutions.

EVL-ECG distils the transformer teacher into a small model of a *different* architecture.
Here that is a MobileNet-style network (Howard et al. 2017) for 1D signals: each
convolution is split into a depthwise convolution (one filter per channel, in time) and a
pointwise 1x1 convolution (mixing channels), which cuts the parameters of a k-tap
convolution from k * C_in * C_out to k * C_in + C_in * C_out. Blocks are residual
(He et al. 2016): y = ReLU(F(x) + S(x)), with S a strided 1x1 convolution when the
shape changes.

Its tokens are the time positions of the last feature map, [B, N_s, d_s], each seeing all
12 leads over its receptive field. For a chain of convolutions with kernel k_i, dilation
d_i, stride s_i and padding p_i, output position n sees input samples

    [n * J + o, n * J + o + R),   J = prod_i s_i,
    R = 1 + sum_i (k_i - 1) d_i prod_{j<i} s_j,   o = -sum_i p_i prod_{j<i} s_j

(Araujo et al. 2019, "Computing receptive fields of convolutional neural networks").
``receptive_field()`` computes (R, J, o) from the actual layers.

Checkpoints are ``config.json`` + ``model.safetensors`` (``save_pretrained`` /
``from_pretrained``, the same interface as the ``transformers`` teacher); nothing is pickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from evl_lite.errors import ECGDataError
from evl_lite.models.output import ModelOutput, TokenLayout, check_ecg_batch, check_state_shapes

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_TYPE = "ecg_student_cnn"


@dataclass(frozen=True)
class StudentConfig:
    """Hyper-parameters of the student CNN."""

    n_leads: int = 12
    n_classes: int = 5
    stem_channels: int = 32
    stem_kernel: int = 7
    stem_stride: int = 2
    stage_channels: tuple[int, ...] = (32, 48, 64, 64)  # one residual block per stage
    stage_strides: tuple[int, ...] = (1, 2, 2, 1)  # total stride 2 * 1 * 2 * 2 * 1 = 8
    stage_dilations: tuple[int, ...] = (1, 1, 1, 1)
    kernel_size: int = 7  # odd: "same" padding keeps every position centred
    dropout: float = 0.1
    fs: float = 100.0  # sampling rate in Hz, used by the token layout

    def __post_init__(self) -> None:
        # JSON gives lists; keep tuples so configs compare and hash reliably.
        for name in ("stage_channels", "stage_strides", "stage_dilations"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not len(self.stage_channels) == len(self.stage_strides) == len(self.stage_dilations):
            raise ValueError("stage_channels, stage_strides and stage_dilations must have the same length")
        if self.kernel_size % 2 == 0 or self.stem_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd")

    @classmethod
    def from_dict(cls, values: dict, path: Path | None = None) -> StudentConfig:
        """Build from a ``config.json`` dict; unknown keys are an error naming the file."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known - {"model_type"})
        if unknown:
            raise ECGDataError(path, f"unknown student config keys {unknown}")
        return cls(**{k: v for k, v in values.items() if k in known})


# A convolution as the receptive-field arithmetic sees it: (kernel, stride, dilation, padding).
ConvGeometry = tuple[int, int, int, int]


def _compose(layers: list[ConvGeometry]) -> tuple[int, int, int]:
    """(size R, stride J, offset o) of a chain of convolutions (formula in the module docstring)."""
    size, jump, offset = 1, 1, 0
    for k, s, d, p in layers:
        size += (k - 1) * d * jump
        offset -= p * jump
        jump *= s
    return size, jump, offset


def _conv_geometry(conv: nn.Conv1d) -> ConvGeometry:
    return conv.kernel_size[0], conv.stride[0], conv.dilation[0], conv.padding[0]


class SeparableResidualBlock(nn.Module):
    """Two depthwise-separable convolutions plus a shortcut: [B, C_in, L] -> [B, C_out, L / stride]."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int):
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.main = nn.Sequential(
            nn.Conv1d(c_in, c_in, kernel, stride, pad, dilation, groups=c_in, bias=False),  # depthwise
            nn.BatchNorm1d(c_in),
            nn.ReLU(inplace=True),
            nn.Conv1d(c_in, c_out, 1, bias=False),  # pointwise
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv1d(c_out, c_out, kernel, 1, pad, dilation, groups=c_out, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv1d(c_out, c_out, 1, bias=False),
            nn.BatchNorm1d(c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if c_in != c_out or stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm1d(c_out)
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.main(x) + self.shortcut(x))

    def receptive_field(self) -> tuple[int, int, int]:
        """(size, stride, offset) of the block: the union of the main path's and the shortcut's fields."""
        main = _compose([_conv_geometry(m) for m in self.main if isinstance(m, nn.Conv1d)])
        short = _compose([_conv_geometry(m) for m in self.shortcut.modules() if isinstance(m, nn.Conv1d)])
        if main[1] != short[1]:
            raise AssertionError("main path and shortcut must have the same stride")
        start = min(main[2], short[2])
        end = max(main[2] + main[0], short[2] + short[0])
        return end - start, main[1], start


class ECGStudentCNN(nn.Module):
    """Student CNN: ``forward(x [B, 12, T]) -> ModelOutput`` with about T / 8 tokens of width 64."""

    def __init__(self, config: StudentConfig | None = None):
        super().__init__()
        self.config = config = config or StudentConfig()
        self.stem = nn.Sequential(
            nn.Conv1d(
                config.n_leads,
                config.stem_channels,
                config.stem_kernel,
                config.stem_stride,
                config.stem_kernel // 2,
                bias=False,
            ),
            nn.BatchNorm1d(config.stem_channels),
            nn.ReLU(inplace=True),
        )
        blocks, c_in = [], config.stem_channels
        for c_out, stride, dilation in zip(
            config.stage_channels, config.stage_strides, config.stage_dilations, strict=True
        ):
            blocks.append(SeparableResidualBlock(c_in, c_out, config.kernel_size, stride, dilation))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head_dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(c_in, config.n_classes)

    def receptive_field(self) -> tuple[int, int, int]:
        """(size R, stride J, offset o) in samples: token n sees x[..., n * J + o : n * J + o + R]."""
        size, jump, offset = _compose([_conv_geometry(self.stem[0])])
        for block in self.blocks:
            b_size, b_jump, b_offset = block.receptive_field()
            size += (b_size - 1) * jump
            offset += b_offset * jump
            jump *= b_jump
        return size, jump, offset

    def forward(self, x: Tensor) -> ModelOutput:
        """x [B, 12, T] -> logits [B, 5], tokens [B, N_s, d_s], pooled [B, d_s] (global average)."""
        check_ecg_batch(x, self.config.n_leads, type(self).__name__)
        h = self.stem(x)
        stages = []
        for block in self.blocks:
            h = block(h)
            stages.append(h)  # [B, C_k, T_k]
        tokens = h.transpose(1, 2)  # [B, N_s, d_s]
        pooled = tokens.mean(dim=1)  # [B, d_s]
        size, jump, offset = self.receptive_field()
        layout = TokenLayout.time_positions(tokens.shape[1], x.shape[2], jump, offset, size, self.config.fs)
        return ModelOutput(
            logits=self.classifier(self.head_dropout(pooled)),
            tokens=tokens,
            pooled=pooled,
            token_layout=layout,
            stages=tuple(stages),
        )

    # ------------------------------------------------------------ checkpoints
    def save_pretrained(self, save_directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``save_directory`` (created if needed)."""
        path = Path(save_directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_NAME).write_text(
            json.dumps({"model_type": MODEL_TYPE, **asdict(self.config)}, indent=2)
        )
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, path / WEIGHTS_NAME, metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, path: str | Path, config: StudentConfig | None = None) -> ECGStudentCNN:
        """Load a directory written by ``save_pretrained``, in eval mode.

        If ``config`` is given it must equal the saved one; a checkpoint whose weights do not
        fit its config is an error too. Both errors name the directory and the mismatch.
        """
        path = Path(path)
        if not path.is_dir():
            raise ECGDataError(path, "student checkpoint directory not found")
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (path / name).is_file():
                raise ECGDataError(path, f"not a student checkpoint: {name} is missing")
        saved = StudentConfig.from_dict(json.loads((path / CONFIG_NAME).read_text()), path)
        if config is not None and config != saved:
            diff = {
                f.name: (getattr(saved, f.name), getattr(config, f.name))
                for f in fields(StudentConfig)
                if getattr(saved, f.name) != getattr(config, f.name)
            }
            raise ECGDataError(
                path, f"checkpoint config differs from the requested one: {diff} (saved, requested)"
            )
        model = cls(saved)
        state = load_file(path / WEIGHTS_NAME)
        check_state_shapes(
            {k: tuple(v.shape) for k, v in model.state_dict().items()},
            {k: tuple(v.shape) for k, v in state.items()},
            path,
        )
        model.load_state_dict(state, strict=True)
        return model.eval()  # like transformers: loaded models start in eval mode
